"""Synthetic PII for tests: fake but realistic items, the same for the same seed.

Other tests reuse it: send :func:`pii_items` through visits, then check database dumps
and captured logs with :func:`leaks`. Values use reserved or fictional ranges where they
exist (``example.com``, US 555-01xx, UK Ofcom drama numbers, documentation IP ranges);
card numbers carry real issuer prefixes and a valid Luhn digit, IBANs a valid mod-97
check, because the redactor validates both.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass

KINDS = ("email", "phone", "address", "card", "iban", "secret", "ip")


@dataclass(frozen=True, slots=True)
class PiiItem:
    kind: str
    """The placeholder kind the redactor should use (``[kind]``)."""
    text: str

    def needles(self) -> tuple[str, ...]:
        """Forms in which this item must not appear anywhere after redaction: as written,
        hex of its UTF-8 (a substring of the hex of any payload that contains it), base64
        (when it was the whole encoded payload), and for number-like items its digits."""
        raw = self.text.encode()
        forms = [
            self.text,
            raw.hex(),
            raw.hex().upper(),
            base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
        ]
        if self.kind in ("phone", "card", "iban"):
            compact = "".join(ch for ch in self.text if ch.isalnum())
            if len(compact) >= 9:
                forms.append(compact)
        return tuple(forms)


def leaks(haystack: str, items: Iterable[PiiItem]) -> list[PiiItem]:
    """The items any of whose needles occur in ``haystack`` (a log, a database dump)."""
    return [item for item in items if any(needle in haystack for needle in item.needles())]


# --- generators ------------------------------------------------------------------------

Gen = Callable[[random.Random], str]

FIRST = ["mina", "kenji", "ada", "oliver", "sofia", "lukas", "amelie", "haruto", "nora", "ravi"]
LAST = ["tanaka", "lovelace", "smith", "muller", "dubois", "sato", "okafor", "garcia", "kim"]
STREET_NAMES = ["Baker", "Maple", "Elm", "Wallaby", "Oak Hill", "Cherry Tree", "Victoria"]
STREET_TYPES = ["Street", "Road", "Avenue", "Lane", "Drive", "Way", "St", "Ave", "Blvd"]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    local = rng.choice([f"{first}.{last}", f"{first}{rng.randint(1, 99)}", f"{first}+rv"])
    domain = rng.choice(["example.com", "example.org", "example.net", "mail.example.com"])
    return f"{local}@{domain}"


def _phone(rng: random.Random) -> str:
    line = f"01{_digits(rng, 2)}"
    formats: list[Gen] = [
        lambda r: f"({r.choice(['212', '415', '303'])}) 555-{line}",
        lambda r: f"{r.choice(['212', '415', '303'])}-555-{line}",
        lambda r: f"+1 {r.choice(['212', '415'])} 555 {line}",
        lambda r: f"+44 20 7946 0{_digits(r, 3)}",
        lambda r: f"020 7946 0{_digits(r, 3)}",
        lambda r: f"07700 900{_digits(r, 3)}",
        lambda r: f"+49 30 {_digits(r, 4)} {_digits(r, 4)}",
        lambda r: f"030 {_digits(r, 8)}",
        lambda r: f"+33 1 {_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)}",
        lambda r: f"03-{_digits(r, 4)}-{_digits(r, 4)}",
        lambda r: f"090-{_digits(r, 4)}-{_digits(r, 4)}",
        lambda r: f"+81 90-{_digits(r, 4)}-{_digits(r, 4)}",
    ]
    return rng.choice(formats)(rng)


def _address(rng: random.Random) -> str:
    number = rng.randint(1, 2999)
    street = f"{rng.choice(STREET_NAMES)} {rng.choice(STREET_TYPES)}"
    formats: list[Gen] = [
        lambda r: f"{number} {street}",
        lambda r: f"{number} {street}, Springfield, IL 627{_digits(r, 2)}",
        lambda r: f"{r.randint(1, 300)}B {street}, London SW1A 1AA",
        lambda r: (
            f"{r.choice(['Haupt', 'Linden', 'Garten'])}straße {r.randint(1, 99)}, 10115 Berlin"
        ),
        lambda r: (
            f"{r.randint(1, 99)} rue de la {r.choice(['Paix', 'Roquette', 'Gare'])}, 75011 Paris"
        ),
        lambda r: f"Keizersgracht {r.randint(1, 800)}",
        lambda r: f"〒100-{_digits(r, 4)} 東京都千代田区千代田{r.randint(1, 9)}-{r.randint(1, 9)}",
    ]
    return rng.choice(formats)(rng)


def luhn_digit(partial: str) -> str:
    """The check digit that makes ``partial + digit`` pass the Luhn check."""
    total = 0
    for position, ch in enumerate(reversed(partial)):
        value = int(ch)
        if position % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str(-total % 10)


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice(
        [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)]
    )
    body = prefix + _digits(rng, length - len(prefix) - 1)
    number = body + luhn_digit(body)
    style = rng.choice(["space", "dash", "plain"])
    if style == "plain":
        return number
    sep = " " if style == "space" else "-"
    groups = (4, 6, 5) if length == 15 else (4, 4, 4, 4)
    parts, start = [], 0
    for size in groups:
        parts.append(number[start : start + size])
        start += size
    return sep.join(parts)


def iban_check(country: str, bban: str) -> str:
    """The two check digits of an IBAN (ISO 13616, mod 97)."""
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    return f"{98 - int(numeric) % 97:02d}"


def _iban(rng: random.Random) -> str:
    country, bban = rng.choice(
        [
            ("DE", _digits(rng, 18)),
            ("GB", "WEST" + _digits(rng, 14)),
            (
                "FR",
                _digits(rng, 10)
                + "".join(rng.choices(string.ascii_uppercase, k=3))
                + _digits(rng, 10),
            ),
            ("NL", "ABNA" + _digits(rng, 10)),
            ("ES", _digits(rng, 20)),
        ]
    )
    compact = country + iban_check(country, bban) + bban
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


_B62 = string.ascii_letters + string.digits


def _token(rng: random.Random, n: int, alphabet: str = _B62) -> str:
    # At least one of each class, so the high-entropy rule's mixed-case check holds.
    core = [
        rng.choice(string.ascii_uppercase),
        rng.choice(string.ascii_lowercase),
        rng.choice(string.digits),
    ]
    core += [rng.choice(alphabet) for _ in range(n - 3)]
    rng.shuffle(core)
    return "".join(core)


def _secret(rng: random.Random) -> str:
    formats: list[Gen] = [
        lambda r: f"sk-proj-{_token(r, 40)}",
        lambda r: f"sk-{_token(r, 48)}",
        lambda r: f"ghp_{_token(r, 36)}",
        lambda r: f"github_pat_{_token(r, 22)}_{_token(r, 59)}",
        lambda r: "AKIA" + "".join(r.choices(string.ascii_uppercase + string.digits, k=16)),
        lambda r: f"xoxb-{_digits(r, 12)}-{_digits(r, 13)}-{_token(r, 24)}",
        lambda r: f"Bearer {_token(r, 40, _B62 + '-_')}",
        lambda r: _token(r, 40, _B62 + "+/"),
    ]
    return rng.choice(formats)(rng)


def _ip(rng: random.Random) -> str:
    formats: list[Gen] = [
        lambda r: f"203.0.113.{r.randint(1, 254)}",
        lambda r: f"198.51.100.{r.randint(1, 254)}",
        lambda r: f"192.0.2.{r.randint(1, 254)}:{r.randint(1024, 65535)}",
        lambda r: f"2001:db8::{r.randint(1, 0xFFFF):x}",
    ]
    return rng.choice(formats)(rng)


GENERATORS: dict[str, Gen] = {
    "email": _email,
    "phone": _phone,
    "address": _address,
    "card": _card,
    "iban": _iban,
    "secret": _secret,
    "ip": _ip,
}


def pii_items(seed: int = 4, per_kind: int = 8) -> list[PiiItem]:
    """``per_kind`` distinct items of each kind (56 by default), deterministic in ``seed``."""
    rng = random.Random(seed)
    items: list[PiiItem] = []
    for kind in KINDS:
        seen: set[str] = set()
        for _ in range(per_kind * 50):
            if len(seen) == per_kind:
                break
            text = GENERATORS[kind](rng)
            if text not in seen:
                seen.add(text)
                items.append(PiiItem(kind, text))
    return items
