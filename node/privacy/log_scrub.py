"""PII in log lines, encoded or not: py-libp2p logs whole payloads in hex at DEBUG, and
other libraries print base64, so runs of either are decoded and replaced if they hold
PII; then the line is redacted like any text (:func:`node.privacy.redact.redact`).
:class:`RedactingFilter` applies it to every log record, :func:`scrub_log_text` to the
node's event lines."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Iterator

from node.privacy.redact import PUBLIC_IDS, find_pii, redact

ENCODED_PLACEHOLDER = "[redacted-encoded]"

_HEX_RUN = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{12,}|[0-9A-Fa-f]{2}(?:[ :][0-9A-Fa-f]{2}){5,})(?![0-9A-Fa-f])"
)
_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{12,}={0,2}")
_B64_SYMBOLS = re.compile(r"[0-9+/_=-]")
_CAPITALS = re.compile(r"[A-Z]")


def _b64_likely(run: str) -> bool:
    """A digit, a symbol or 3+ capitals: ordinary words ("Authentication") are not base64
    worth decoding, and base64 of anything useful almost never looks like one."""
    return _B64_SYMBOLS.search(run) is not None or len(_CAPITALS.findall(run)) >= 3


_TEXT_SEGMENT = re.compile(r"[^\x00-\x08\x0e-\x1f\x7f\ufffd]{5,}")


def _hex_decodings(run: str) -> Iterator[bytes]:
    digits = run.replace(" ", "").replace(":", "")
    for offset in (0, 1):
        chunk = digits[offset:]
        yield bytes.fromhex(chunk[: len(chunk) - len(chunk) % 2])


def _b64_decodings(run: str) -> Iterator[bytes]:
    if not _b64_likely(run):
        return
    standard = run.rstrip("=").translate(str.maketrans("-_", "+/"))
    for offset in range(4):
        chunk = standard[offset:]
        if len(chunk) % 4 == 1:
            chunk = chunk[:-1]
        try:
            yield base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue


def _encodes_pii(decodings: Iterator[bytes]) -> bool:
    """Whether any decoding holds PII in its text segments (binary framing around the
    strings of a msgpack payload is dropped first, which also keeps the scan cheap)."""
    for raw in decodings:
        segments = _TEXT_SEGMENT.findall(raw.decode("utf-8", "replace"))
        if segments and find_pii("\n".join(segments), keep_hex=True):
            return True
    return False


def _replace_encoded(
    text: str, pattern: re.Pattern[str], decode: Callable[[str], Iterator[bytes]]
) -> str:
    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        if PUBLIC_IDS.fullmatch(run) or not _encodes_pii(decode(run)):
            return run
        return ENCODED_PLACEHOLDER

    return pattern.sub(replace, text)


def scrub_log_text(text: str) -> str:
    """Log text with hex/base64 runs that decode to PII replaced, then :func:`redact`-ed."""
    text = _replace_encoded(text, _HEX_RUN, _hex_decodings)
    text = _replace_encoded(text, _B64_RUN, _b64_decodings)
    return redact(text, keep_hex=True)


class RedactingFilter(logging.Filter):
    """Redacts each record's formatted message, traceback and stack before any handler
    writes it. Attach it to *handlers*: a handler's filters see records from every
    child logger (libp2p's included), a logger's filters only that logger's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must still be logged, and still redacted
            message = f"{record.msg!s} {record.args!r}"
        record.msg = scrub_log_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_log_text(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_log_text(record.stack_info)
        return True
