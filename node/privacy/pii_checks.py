"""Whether a candidate the PII patterns found really is PII (see :mod:`node.privacy.redact`):
the Luhn check and issuer prefixes of card numbers, the length and mod-97 check of IBANs,
the entropy of would-be secrets, and whether an IP address is public. Plain functions of
a string, kept apart from the patterns so each check reads and tests on its own."""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter

_NOT_DIGIT = re.compile(r"[^0-9]")


def only_digits(text: str) -> str:
    """``text`` with everything but ASCII digits dropped."""
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


def card_ok(digits: str) -> bool:
    """A card number: 13–19 digits, a known issuer prefix and the Luhn check."""
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


def entropy(token: str) -> float:
    """Shannon entropy of ``token``, in bits per character."""
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


def public_ip(text: str) -> bool:
    """A valid IP address outside the unspecified, loopback, private, link-local and
    multicast ranges (those identify no one outside the machine or LAN)."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return not any(address.version == net.version and address in net for net in _KEEP_NETWORKS)
