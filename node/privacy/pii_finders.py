"""The PII finders :func:`node.privacy.redact.find_pii` runs, one list per kind: the
patterns for secrets, e-mails, IBANs, cards, phone numbers, IP addresses and street
addresses, each paired with the check (:mod:`node.privacy.pii_checks`) that keeps its false
positives low. Why each pattern is shaped as it is: :mod:`node.privacy.redact`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from node.privacy.pii_checks import IBAN_LENGTHS, card_ok, entropy, iban_ok, only_digits, public_ip

Span = tuple[int, int]
Finder = Callable[[str, bool], Iterator[Span]]
"""Called with the normalised view and ``keep_hex``; yields spans of the view."""


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
            if not keep_hex and mixed and entropy(token) >= 3.0:
                yield match.span()
        elif (
            any(c.isupper() for c in token)
            and any(c.islower() for c in token)
            and any(c.isdigit() for c in token)
            and entropy(token) >= 4.0
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
        check=lambda s: card_ok(only_digits(s)),
    ),
    _regex(
        r"(?<![\d-])\d{4}([ -])\d{4}\1\d{4}\1\d{4}(?![\d-])",
        check=lambda s: card_ok(only_digits(s)),
    ),
    _regex(
        r"(?<![\d-])\d{4}([ -])\d{6}\1\d{4,5}(?![\d-])", check=lambda s: card_ok(only_digits(s))
    ),
    _regex(r"(?<![\d-])\d{13,19}(?![\d-])", check=card_ok),
]

_DATE_LIKE = re.compile(r"\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b")
_DIGIT_RUN_END = re.compile(r"\d(?!\d)")


def _phone_digits(low: int, high: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        return low <= len(only_digits(text)) <= high and not _DATE_LIKE.search(text)

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
            if ok(prefix) and (not nanp or len(only_digits(prefix)) == 11):
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
    _regex(rf"(?<![\d.]){_IPV4}(?!\d|\.\d)", check=public_ip),
    _regex(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])", check=public_ip),
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

FINDERS: dict[str, list[Finder]] = {
    "secret": [*_SECRET, _find_high_entropy],
    "email": _EMAIL,
    "iban": [_find_iban],
    "card": _CARD,
    "phone": _PHONE,
    "ip": _IP,
    "address": _ADDRESS,
}

NEED_DIGITS = frozenset({"iban", "card", "phone", "ip", "address"})
"""Kinds every pattern of which needs a digit: skipped at once for digit-free text."""
