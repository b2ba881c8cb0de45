"""PII redaction for what we store and what we log.

:func:`redact` replaces personal data with typed placeholders (``[email]``, ``[phone]``,
``[address]``, ``[card]``, ``[iban]``, ``[secret]``, ``[ip]``) before speech reaches the
database, and :class:`RedactingFilter` does the same to every log record, after also
decoding hex and base64 runs (py-libp2p logs whole payloads as hex at DEBUG) and
replacing a run with ``[redacted-encoded]`` when what it decodes to holds PII.

Choices, and why:

- Detection runs on a *view* of the text with invisible characters dropped (zero-width,
  bidi, tags, variation selectors: :data:`node.agent.spotlight.INVISIBLE`) and each
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

import ipaddress
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from node.agent.spotlight import INVISIBLE

KINDS = ("secret", "email", "iban", "card", "phone", "ip", "address")
"""Every kind a finding can have; earlier kinds win where two findings overlap."""


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int
    """Offsets in the text that was scanned (the original, not the normalised view)."""


Span = tuple[int, int]
Finder = Callable[[str, bool], Iterator[Span]]

# --- validators ------------------------------------------------------------------------


_NOT_DIGIT = re.compile(r"[^0-9]")


def _digits(text: str) -> str:
    return _NOT_DIGIT.sub("", text)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for position, ch in enumerate(reversed(digits)):
        value = int(ch)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


_CARD_PREFIX = re.compile(
    r"4|5[1-5]|2(?:2[2-9][1-9]|[3-6]\d\d|7[01]\d|720)|3[47]|30[0-5]|3[68]|35(?:2[89]|[3-8]\d)"
    r"|6(?:011|5|4[4-9]|2)|5[06-9]|6\d"
)
"""Visa, Mastercard, Amex, Diners, JCB, Discover, UnionPay, Maestro issuer prefixes."""


def _card_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and luhn_ok(digits)


IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21,
    "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24,
    "SI": 19, "SK": 24, "SM": 27, "TR": 26, "UA": 29,
}  # fmt: skip
"""Countries whose IBANs we check by length; others only by mod 97 and 15–34 chars."""


def iban_ok(compact: str) -> bool:
    """Length for the country (where known) and the ISO 13616 mod-97 check."""
    expected = IBAN_LENGTHS.get(compact[:2])
    if not 15 <= len(compact) <= 34 or (expected is not None and len(compact) != expected):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _entropy(token: str) -> float:
    counts = Counter(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


_KEEP_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8", "10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.168.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
    )
)  # fmt: skip


def _public_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return not any(address.version == net.version and address in net for net in _KEEP_NETWORKS)


# --- finders ---------------------------------------------------------------------------


def _regex(pattern: str, flags: int = 0, check: Callable[[str], bool] | None = None) -> Finder:
    """A finder from a pattern; a group named ``v`` narrows the span to the value.

    ASCII matching, so ``\\b`` and ``\\w`` treat CJK text next to an e-mail or phone number
    as a boundary (Japanese has no spaces); letters beyond ASCII are spelled out.
    """
    compiled = re.compile(pattern, flags | re.ASCII)

    group = "v" if "v" in compiled.groupindex else 0

    def find(view: str, keep_hex: bool) -> Iterator[Span]:
        # A candidate that fails its check may hide a valid one starting inside it
        # (two phone numbers in a row read as one too long), so search again from the
        # next character rather than from its end.
        position = 0
        while (match := compiled.search(view, position)) is not None:
            if check is None or check(match.group(group)):
                yield match.span(group)
                position = max(match.end(), match.start() + 1)
            else:
                position = match.start() + 1

    return find


_SECRET = [
    _regex(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
    _regex(r"\bsk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{16,}"),
    _regex(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    _regex(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b"),
    _regex(r"\bxox[abprse]-[A-Za-z0-9-]{10,}"),
    _regex(r"\bAIza[0-9A-Za-z_-]{35}"),
    _regex(r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    _regex(r"\b(?:glpat-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,})"),
    _regex(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    _regex(r"\bbearer\s+(?P<v>[A-Za-z0-9._~+/-]{8,}=*)", re.I),
    _regex(
        r"\b(?:password|passwd|passphrase|pwd|api[_-]?key|secret[_-]?key|client[_-]?secret"
        r"|access[_-]?token|auth[_-]?token|private[_-]?key)\b[\"']?\s*[:=]\s*[\"']?"
        r"(?P<v>[^\s\"',;]{4,})",
        re.I,
    ),
    _regex(r"://(?P<v>[^/\s:@]+:[^/\s@]+)@"),
]

_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{32,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = frozenset("0123456789abcdefABCDEF")


def _find_high_entropy(view: str, keep_hex: bool) -> Iterator[Span]:
    for match in _TOKEN.finditer(view):
        token = match.group(0).rstrip("=")
        if set(token) <= _HEX:
            mixed = any(c.isdigit() for c in token) and any(c.isalpha() for c in token)
            if not keep_hex and mixed and _entropy(token) >= 3.0:
                yield match.span()
        elif (
            any(c.isupper() for c in token)
            and any(c.islower() for c in token)
            and any(c.isdigit() for c in token)
            and _entropy(token) >= 4.0
        ):
            yield match.span()


_LOCAL = r"[\w%+-](?:[\w.%+-]{0,63})"
_DOMAIN = r"[A-Za-z0-9](?:[\w-]{0,62})(?:\.[A-Za-z0-9](?:[\w-]{0,62}))*\.[A-Za-z]{2,24}"
_EMAIL = [
    _regex(rf"(?<![\w.%+-]){_LOCAL}@{_DOMAIN}\b"),
    _regex(
        r"(?<![\w.+-])[\w.+-]{1,64}\s?[\[(]\s?at\s?[\])]\s?[\w-]{1,63}"
        r"(?:\s?[\[(]\s?dot\s?[\])]\s?[\w-]{1,63}){1,4}",
        re.I,
    ),
]


_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}")


def _find_iban(view: str, keep_hex: bool) -> Iterator[Span]:
    """Candidates are trimmed to their country's length, so one match may hold two IBANs
    in a row: the search resumes right after each one found."""
    position = 0
    while (match := _IBAN.search(view, position)) is not None:
        compact, ends = "", []
        for offset, ch in enumerate(match.group(0)):
            if ch != " ":
                compact += ch
                ends.append(match.start() + offset + 1)
        length = IBAN_LENGTHS.get(compact[:2], len(compact))
        if len(compact) >= length and iban_ok(compact[:length]):
            yield match.start(), ends[length - 1]
            position = ends[length - 1]
        else:
            position = match.start() + 1


_CARD = [
    _regex(
        r"(?<![\d-])\d{4}([ -])\d{4}\1\d{4}\1\d{4}\1\d{3}(?![\d-])",
        check=lambda s: _card_ok(_digits(s)),
    ),
    _regex(
        r"(?<![\d-])\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?![\d-])", check=lambda s: _card_ok(_digits(s))
    ),
    _regex(r"(?<![\d-])\d{4}([ -])\d{6}\1\d{4,5}(?![\d-])", check=lambda s: _card_ok(_digits(s))),
    _regex(r"(?<![\d-])\d{13,19}(?![\d-])", check=_card_ok),
]

_DATE_LIKE = re.compile(r"\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b")
_DIGIT_RUN_END = re.compile(r"\d(?!\d)")


def _phone_digits(low: int, high: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        return low <= len(_digits(text)) <= high and not _DATE_LIKE.search(text)

    return check


def _phone_run(pattern: str, low: int, high: int) -> Finder:
    """A finder for numbers written as digit groups, where one candidate may run into the
    next number ("+33 1 40 49 48 36 07700 900835"): it keeps the longest prefix, ending
    at a group, that has ``low``..``high`` digits (exactly 11 for a +1/001 number)."""
    compiled = re.compile(pattern, re.ASCII)
    ok = _phone_digits(low, high)

    def best_end(candidate: str) -> int | None:
        nanp = re.match(r"(?:\+|00)1\D", candidate) is not None
        for run in reversed(list(_DIGIT_RUN_END.finditer(candidate))):
            prefix = candidate[: run.end()]
            if ok(prefix) and (not nanp or len(_digits(prefix)) == 11):
                return run.end()
        return None

    def find(view: str, keep_hex: bool) -> Iterator[Span]:
        position = 0
        while (match := compiled.search(view, position)) is not None:
            end = best_end(match.group(0))
            if end is None:
                position = match.start() + 1
                continue
            yield match.start(), match.start() + end
            position = match.start() + end

    return find


_PHONE_END = r"(?![\d:]|[.-]\d)"
_PHONE = [
    _phone_run(rf"(?<![\w+])\+\d[\d ().-]{{6,40}}\d{_PHONE_END}", 8, 15),
    _phone_run(rf"(?<![\w+])00[1-9]\d{{0,2}}[ .-]\d[\d .-]{{5,40}}\d{_PHONE_END}", 9, 15),
    _regex(
        r"(?<![\w.-])(?:1[ .-])?(?:\([2-9]\d{2}\)[ .-]?|[2-9]\d{2}[ .-])"
        rf"[2-9]\d{{2}}[ .-]\d{{4}}{_PHONE_END}"
    ),
    _phone_run(rf"(?<![\w.+-])0\d{{1,4}}(?:[ .-]\d{{2,8}}){{1,6}}{_PHONE_END}", 9, 13),
    _regex(
        r"\b(?:phone|tel|telephone|mobile|cell|fax|whatsapp|sms|call me(?: at| on)?"
        r"|text me(?: at| on)?)\b[:.]?\s*(?P<v>\+?\d[\d ().-]{5,18}\d)(?![\d:])",
        re.I,
        check=_phone_digits(7, 15),
    ),
]

_IPV4 = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
_IP = [
    _regex(rf"(?<![\d.]){_IPV4}(?!\d|\.\d)", check=_public_ip),
    _regex(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])", check=_public_ip),
]

_STREET_TYPES = (
    r"Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Terrace"
    r"|Way|Square|Sq|Parkway|Pkwy|Highway|Hwy|Close|Crescent|Row|Mews|Gardens|Alley|Circle"
)
_US_STATES = (
    r"AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV"
    r"|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC"
)
_LETTER = "A-Za-zÀ-ÖØ-öø-ÿ"
_CAP = rf"[A-ZÀ-ÖØ-Þ][{_LETTER}0-9'’.-]{{0,30}}"
_CITY = r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ'’.-]{1,30}"
_UK_POSTCODE = r"\b(?:[A-Z]{1,2}\d[A-Z\d]?|GIR) ?\d[ABD-HJLNP-UW-Z]{2}\b"
_ADDRESS = [
    _regex(
        rf"\b\d{{1,5}}[A-Za-z]?(?: +{_CAP}){{1,4}} +(?i:{_STREET_TYPES})\b\.?"
        r"(?: (?:N|S|E|W|NE|NW|SE|SW)\b)?"
        r"(?:,? +(?:Apt|Apartment|Suite|Ste|Unit|Flat|#)\.? ?[\w-]{1,10})?"
        rf"(?:, *{_CITY}(?: +{_CITY}){{0,2}})?"
        rf"(?:,? +(?:{_US_STATES}) +\d{{5}}(?:-\d{{4}})?|,? +{_UK_POSTCODE})?"
    ),
    _regex(rf"\b{_CITY}(?: +{_CITY}){{0,2}}, *(?:{_US_STATES}) +\d{{5}}(?:-\d{{4}})?\b"),
    _regex(
        rf"\b[A-ZÄÖÜ][{_LETTER}-]{{0,40}}(?:straße|strasse|str\.|weg|gasse|platz|allee|damm|straat"
        rf"|gracht|laan|kade|vej|gatan|veien) +\d{{1,4}}[a-z]?\b(?:,? +\d{{4,5}} +{_CITY})?"
    ),
    _regex(
        r"\b(?:Calle|Avenida|Via|Viale|Piazza|Corso|Rua|Carrer|Plaza) +"
        rf"(?:(?:de|del|la|las|los|di|da|do|dos|della) +){{0,3}}{_CAP}(?: +{_CAP}){{0,3}},? +"
        rf"\d{{1,4}}\b(?:,? +\d{{5}} +{_CITY})?"
    ),
    _regex(
        r"\b\d{1,4}(?: ?(?:bis|ter))?,? +(?i:rue|avenue|boulevard|bd|place|chemin|allée"
        rf"|impasse|quai|cours|route) +(?:(?:de|du|des|la|le) +|l'|d'){{0,3}}{_CAP}"
        rf"(?: +{_CAP}){{0,3}}(?:,? +\d{{5}} +{_CITY})?"
    ),
    _regex(_UK_POSTCODE),
    _regex(r"\b[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] ?\d[ABCEGHJ-NPRSTV-Z]\d\b"),
    _regex(r"〒 ?\d{3}-?\d{4}"),
    _regex(r"\d{1,2}丁目 ?\d{1,3}(?:番地?|-) ?\d{1,3}号?"),
    _regex(r"[都道府県市区町村][^\s\d]{0,12}?\d{1,4}-\d{1,4}(?:-\d{1,4})?"),
]

_FINDERS: dict[str, list[Finder]] = {
    "secret": [*_SECRET, _find_high_entropy],
    "email": _EMAIL,
    "iban": [_find_iban],
    "card": _CARD,
    "phone": _PHONE,
    "ip": _IP,
    "address": _ADDRESS,
}

_NEED_DIGITS = frozenset({"iban", "card", "phone", "ip", "address"})
"""Kinds every pattern of which needs a digit: skipped at once for digit-free text."""

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

# --- scanning --------------------------------------------------------------------------


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
        if kind in _NEED_DIGITS and not has_digit:
            continue
        for finder in _FINDERS[kind]:
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
