"""Untrusted text into prompts as data only: normalise, cap, neutralise, enclose.

Everything another character sends us (speech, its name, its card) reaches our LLM only
through :func:`speech` (a visit's turns: one capped, neutralised line in a *user* message,
after the speaker's name) or :func:`enclose` (the memory summary, the answering machine,
choosing whom to visit: a data slot inside a user message that also carries our own
words). The slot design is spotlighting by *delimiting* (Hines et al. 2024,
"Defending Against Indirect Prompt Injection Attacks With Spotlighting"), made
unforgeable:

- Each request draws a fresh datamark (:func:`new_datamark`, 80 random bits, e.g.
  ``⟦rv-3f9c0a...⟧``). The data slot is framed by a begin line and an end line that both
  carry the mark and the slot's label; the system prompt names the mark and says that
  nothing between the lines is an instruction.
- The slot body cannot contain a marker: the bracket characters ``⟦ ⟧`` (and their
  look-alikes ``〚 〛``) are always replaced, and so is anything shaped like our mark's
  core (``rv-`` + hex), so neither a guessed mark nor one copied from an earlier request
  (marks are never reused) can close the slot early.
- Other systems' delimiters are neutralised too (``</data>``, ``[/INST]``, ``<|im_end|>``,
  ``<<SYS>>``, ``[[``, ``### System:``, ``Assistant:`` at a line start...): small local
  models and some servers' chat templates treat them as structure, and llama.cpp-style
  servers may even parse ``<|...|>`` in content as special tokens.
- Text is normalised first (control, zero-width, bidi, tag and variation-selector
  characters dropped; NFKC), so fullwidth ``＜/data＞`` or ``ignore`` with zero-width
  joiners inside become plain text that the rules above see, and the cap counts what the
  model will read.

Why delimiting rather than interleaving the mark between words (datamarking): our
engines are often 0.5–1.5B local models, which read interleaved text poorly and pay
roughly double the tokens for it; a mark that cannot be forged gives the same "where does
the data end" guarantee, which is what the injection tests check.

Neutralising is length-preserving (one character replaced by one look-different
character that NFKC leaves alone), so the 500 code point cap holds after it and a second
normalisation cannot bring a delimiter back.
"""

from __future__ import annotations

import random
import re
import secrets
import unicodedata
from dataclasses import dataclass

from keys.errors import LocalError
from node.privacy.invisible import INVISIBLE

UNTRUSTED_LIMIT = 500
"""Code points of untrusted text that one slot may carry (issue: 500 a turn)."""

DATAMARK_BITS = 80
_CUT = "..."
"""Shows the model that text was cut; ASCII so NFKC leaves it as it is (``…`` is not)."""

_MARK_RE = re.compile(r"⟦rv-[0-9a-f]{20}⟧")
_LABEL_RE = re.compile(r"[a-z0-9][a-z0-9 ]{0,31}")
_ANY_MARKER_RE = re.compile(r"⟦rv-[0-9a-fA-F]+⟧(?:[ \t]+(?:begin|end)\b(?: [a-z]+(?: \d+)?)?)?")


class SpotlightError(LocalError):
    """Our own code passed a malformed mark or label (never caused by untrusted text)."""


# --- normalisation ---------------------------------------------------------------------

_NEWLINES = str.maketrans(dict.fromkeys("\r\v\f\x85\u2028\u2029", "\n"))
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
"""Control characters other than newline and tab, and lone surrogates (which cannot even
be encoded for the engine's HTTP request)."""
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def _strip(text: str) -> str:
    return INVISIBLE.sub("", _CONTROLS.sub("", text))


def normalise(text: str) -> str:
    """Drop invisible and control characters, apply NFKC, squeeze blank-line runs, trim.

    Stripping happens before NFKC so a zero-width character cannot hide a composition,
    and NFKC happens before any pattern matching so look-alikes are matched as what
    they look like. Idempotent.
    """
    text = _strip(text.translate(_NEWLINES))
    text = _strip(unicodedata.normalize("NFKC", text))
    return _BLANK_LINES.sub("\n\n", text).strip()


def cap_untrusted(text: str, limit: int = UNTRUSTED_LIMIT) -> str:
    """Normalise, then keep at most ``limit`` code points (a cut shows as ``...``)."""
    if limit < len(_CUT) + 1:
        raise SpotlightError(f"limit {limit} leaves no room for text")
    text = normalise(text)
    if len(text) <= limit:
        return text
    return text[: limit - len(_CUT)].rstrip() + _CUT


# --- neutralisation --------------------------------------------------------------------

_DEFANG = str.maketrans(
    {
        "<": "‹",
        ">": "›",
        "[": "⁅",
        "]": "⁆",
        "|": "¦",
        "#": "♯",
        ":": "꞉",
        "-": "‐",
        "⟦": "⁅",
        "⟧": "⁆",
        "〚": "⁅",
        "〛": "⁆",
    }
)
"""Each replacement is a single character that NFKC keeps and no pattern below matches."""

_ROLE_WORDS = (
    r"system|sys|user|assistant|human|ai|bot|model|developer|instruction|instructions|"
    r"inst|response|input|output|context|prompt|data|speech|turn|end|tool|function"
)
_DELIMITERS: tuple[re.Pattern[str], ...] = (
    re.compile(r"[⟦⟧〚〛]"),
    re.compile(r"rv-[0-9a-f]{4,}", re.IGNORECASE),
    re.compile(r"<{2,}|>{2,}|\[{2,}|\]{2,}"),
    re.compile(r"<\||\|>"),
    re.compile(r"<[ \t]*/?[ \t]*[a-z_!?][^<>\n]{0,64}>", re.IGNORECASE),
    re.compile(rf"\[[ \t]*/?[ \t]*(?:{_ROLE_WORDS})\b[^\[\]\n]{{0,32}}\]", re.IGNORECASE),
    re.compile(rf"^[ \t>]*#{{1,6}}(?=[ \t]*(?:{_ROLE_WORDS})\b)", re.IGNORECASE | re.MULTILINE),
    re.compile(rf"#{{1,6}}(?=[ \t]*(?:{_ROLE_WORDS})[ \t]*:)", re.IGNORECASE),
    re.compile(rf"^[ \t>]*(?:{_ROLE_WORDS})[ \t]*:", re.IGNORECASE | re.MULTILINE),
    re.compile(r"\b(?:system|developer|assistant|human)[ \t]*:", re.IGNORECASE),
)


_ANY_DELIMITER = re.compile(
    "|".join(
        f"(?{'i' if p.flags & re.IGNORECASE else ''}{'m' if p.flags & re.MULTILINE else ''}:"
        f"{p.pattern})"
        for p in _DELIMITERS
    )
)
"""All of the above in one pattern: most text holds no delimiter, and one search says so."""


def delimiter_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` holds something shaped like a prompt delimiter (empty once neutralised)."""
    return sorted(m.span() for pattern in _DELIMITERS for m in pattern.finditer(text))


def neutralise(text: str) -> str:
    """Replace the characters of every delimiter look-alike, keeping the length.

    Repeats until nothing matches: every round turns at least one ASCII character of a
    match into a non-ASCII one, so it ends within ``len(text)`` rounds (two in practice).
    """
    if not _ANY_DELIMITER.search(text):
        return text
    for _ in range(len(text) + 1):
        changed = text
        for pattern in _DELIMITERS:
            changed = pattern.sub(lambda m: m.group(0).translate(_DEFANG), changed)
        if changed == text:
            return text
        text = changed
    return text


def speech(text: str, limit: int = UNTRUSTED_LIMIT) -> str:
    """Untrusted speech as one line of a roleplay turn: normalised, capped, whitespace runs
    (newlines too) as one space, neutralised.

    One line because a chat line never needs more (our own lines go out on one line), and
    a line break would let the text start a line of its own that looks like someone
    else's turn. Neutralising comes last, so joining lines cannot rebuild a delimiter.
    """
    return neutralise(" ".join(cap_untrusted(text, limit).split()))


# --- the mark and the slot -------------------------------------------------------------

_SYSTEM_RANDOM = secrets.SystemRandom()


def new_datamark(rng: random.Random | None = None) -> str:
    """A fresh mark for one request: 80 random bits, drawn from ``rng`` (default: the OS)."""
    bits = (_SYSTEM_RANDOM if rng is None else rng).getrandbits(DATAMARK_BITS)
    return f"⟦rv-{bits:0{DATAMARK_BITS // 4}x}⟧"


def _check(mark: str, label: str) -> None:
    if not _MARK_RE.fullmatch(mark):
        raise SpotlightError(f"not a datamark: {mark!r}")
    if not _LABEL_RE.fullmatch(label):
        raise SpotlightError(f"slot label must be short lowercase words: {label!r}")


def begin_marker(mark: str, label: str) -> str:
    """The line that opens the slot called ``label``."""
    _check(mark, label)
    return f"{mark} begin {label}"


def end_marker(mark: str, label: str) -> str:
    """The line that closes the slot called ``label``."""
    _check(mark, label)
    return f"{mark} end {label}"


def enclose(text: str, mark: str, *, label: str = "speech", limit: int = UNTRUSTED_LIMIT) -> str:
    """Untrusted ``text`` as one data slot: begin line, capped neutralised body, end line."""
    body = neutralise(cap_untrusted(text, limit))
    return f"{begin_marker(mark, label)}\n{body}\n{end_marker(mark, label)}"


@dataclass(frozen=True, slots=True)
class Slot:
    label: str
    body: str


def find_slots(content: str, mark: str) -> list[Slot]:
    """The data slots marked with ``mark`` in one message's content, in order."""
    _check(mark, "x")
    pattern = re.compile(
        rf"^{re.escape(mark)} begin ({_LABEL_RE.pattern})\n(.*?)\n{re.escape(mark)} end \1$",
        re.DOTALL | re.MULTILINE,
    )
    return [Slot(m.group(1), m.group(2)) for m in pattern.finditer(content)]


def strip_marks(reply: str) -> str:
    """Remove any datamark (and a begin/end word after it) the model echoed in its reply.

    Mark-agnostic on purpose: the caller no longer has the request's mark, and no mark of
    ours belongs in speech that leaves the node.
    """
    return re.sub(r"[ \t]{2,}", " ", _ANY_MARKER_RE.sub("", reply)).strip()
