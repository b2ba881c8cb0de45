"""PII redaction for what we store and what we log.

:func:`redact` replaces personal data with typed placeholders (``[email]``, ``[phone]``,
``[address]``, ``[card]``, ``[iban]``, ``[secret]``, ``[ip]``) before speech reaches the
database, and :class:`~node.agent.log_scrub.RedactingFilter` does the same to every log
record, after also decoding hex and base64 runs (py-libp2p logs whole payloads as hex at
DEBUG) and replacing a run with ``[redacted-encoded]`` when what it decodes to holds PII.
The patterns are in :mod:`node.privacy.pii_finders`, the checks that validate what they
find in :mod:`node.privacy.pii_checks`; this module scans with them and replaces.

Choices, and why:

- Detection runs on a *view* of the text with invisible characters dropped (zero-width,
  bidi, tags, variation selectors: :data:`node.privacy.invisible.INVISIBLE`) and each
  character NFKC-normalised, so ``mina\\u200b@example.com`` and fullwidth digits are
  caught; the replacement is applied to the original text, which otherwise stays as it was.
- False positives are kept low by validating what the patterns find: card numbers need
  a known issuer prefix and the Luhn check (a 13-digit millisecond timestamp passes Luhn
  one time in ten, but starts with 1, which no card network uses), IBANs need their
  country's length and the mod-97 check, phone numbers need a ``+``/``00``/trunk ``0``
  prefix, the US 3-3-4 grouping or a cue word ("call me at"), and 9–15 digits. Dates,
  times, versions, amounts and plain counts are left alone. Street addresses need a house
  number and a street-type word (or a known European street suffix); postcodes count only
  in unambiguous shapes (UK, Canada, US state + ZIP, Japan with 〒).
- Public identifiers stay readable: multiaddrs (``/ip4/127.0.0.1/tcp/4001/p2p/...``),
  PeerIDs (``12D3KooW...``) and UUIDs are never redacted, because they appear in our own
  logs and the directory publishes them anyway. A finding counts as exempt only if it
  lies wholly inside such an identifier, so ``/dns4/mina@example.com`` still loses the
  e-mail.
- IPv4 and IPv6 addresses are redacted (``[ip]``) unless loopback, unspecified,
  link-local, private (RFC 1918, ULA) or multicast: those identify no one outside the
  machine or LAN, and our logs are full of them.
- High-entropy tokens of 32+ characters (mixed case and digits, or hex) count as
  secrets in :func:`redact`. In logs, plain hex runs are kept (digests, signatures,
  payload dumps) after the decode check, so ``keep_hex=True`` there.

Limits: lower-case street names ("42 main street"), person names and free-form
addresses without a house number are not detected; double-encoded payloads are decoded
one level only; in logs a secret written as bare hex (no known prefix, no ``api_key=``)
stays, the price of readable digests.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from node.privacy.invisible import INVISIBLE
from node.privacy.pii_finders import FINDERS, NEED_DIGITS

KINDS = ("secret", "email", "iban", "card", "phone", "ip", "address")
"""Every kind a finding can have; earlier kinds win where two findings overlap."""


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int
    """Offsets in the text that was scanned (the original, not the normalised view)."""


_BASE58 = r"[1-9A-HJ-NP-Za-km-z]"
_MULTIADDR_PART = (
    r"/(?:ip4/[\d.]{7,15}|ip6/[0-9A-Fa-f:.]{2,45}|(?:dns|dns4|dns6|dnsaddr|sni)/[A-Za-z0-9.-]{1,253}"
    rf"|(?:tcp|udp)/\d{{1,5}}|(?:p2p|ipfs)/{_BASE58}{{32,60}}|certhash/[A-Za-z0-9_-]{{8,100}}"
    r"|quic-v1|quic|wss|ws|tls|noise|yamux|mplex|p2p-circuit|webtransport|webrtc-direct|webrtc"
    r"|https|http)(?![A-Za-z0-9_-])"
)
PUBLIC_IDS = re.compile(
    rf"(?:{_MULTIADDR_PART})+"
    rf"|\b(?:12D3KooW{_BASE58}{{44}}|Qm{_BASE58}{{44}})\b"
    r"|\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
"""Public identifiers that stay readable: multiaddrs, PeerIDs, UUIDs."""


def _view(text: str) -> tuple[str, list[int] | None]:
    """The text as detection sees it, and where each of its characters came from."""
    if text.isascii() or (not INVISIBLE.search(text) and unicodedata.is_normalized("NFKC", text)):
        return text, None
    parts: list[str] = []
    origin: list[int] = []
    for index, ch in enumerate(text):
        if INVISIBLE.match(ch):
            continue
        normal = unicodedata.normalize("NFKC", ch)
        parts.append(normal)
        origin.extend([index] * len(normal))
    return "".join(parts), origin


def find_pii(text: str, *, keep_hex: bool = False) -> list[Finding]:
    """Every PII finding in ``text``, in order, no two overlapping."""
    view, origin = _view(text)
    exempt = [m.span() for m in PUBLIC_IDS.finditer(view)]
    has_digit = any(ch.isdigit() for ch in view)
    accepted: list[tuple[int, int, str]] = []
    for kind in KINDS:
        if kind in NEED_DIGITS and not has_digit:
            continue
        for finder in FINDERS[kind]:
            for start, end in finder(view, keep_hex):
                if start == end or any(s <= start and end <= e for s, e in exempt):
                    continue
                if all(end <= s or e <= start for s, e, _ in accepted):
                    accepted.append((start, end, kind))
    accepted.sort()
    if origin is None:
        return [Finding(kind, start, end) for start, end, kind in accepted]
    return [Finding(kind, origin[start], origin[end - 1] + 1) for start, end, kind in accepted]


_MAX_PASSES = 4


def _redact_passes(text: str, keep_hex: bool) -> tuple[str, list[Finding]]:
    """Redaction passes until nothing is found, and every pass's findings.

    A finding that lost an overlap to another one (two numbers in a row read as one) is
    found on the next pass, next to the placeholder. Text without PII costs one scan.
    """
    everything: list[Finding] = []
    for _ in range(_MAX_PASSES):
        findings = find_pii(text, keep_hex=keep_hex)
        if not findings:
            break
        everything.extend(findings)
        out: list[str] = []
        position = 0
        for finding in findings:
            out.append(text[position : finding.start])
            out.append(f"[{finding.kind}]")
            position = finding.end
        out.append(text[position:])
        text = "".join(out)
    return text, everything


def contains_pii(text: str) -> list[str]:
    """The kinds of PII in ``text``, one entry per finding (first pass in text order, then
    any found next to its placeholders); empty: none."""
    return [finding.kind for finding in _redact_passes(text, False)[1]]


def redact(text: str, *, keep_hex: bool = False) -> str:
    """``text`` with every finding replaced by ``[kind]``; everything else unchanged.

    ``keep_hex`` leaves plain hex runs (digests, signatures) alone; the log filter sets it
    after it has checked what those runs decode to.
    """
    return _redact_passes(text, keep_hex)[0]
