"""Strict checks for untrusted decoded values; each failure names the field's path.

Everything here is deterministic across Python versions on purpose (no ``unicodedata``):
replicas must agree on which entries are valid, or they would never converge.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from keys import InvalidPeerId, peer_id_from_str
from keys.canonical import field_label
from keys.identity import is_peer_id
from registry_crdt.errors import InvalidField, UnknownField

# C0 controls (newline is allowed where text may span lines), DEL, C1 controls, the line
# and paragraph separators, and the bidirectional overrides that make text display in an
# order other than the one it is stored in.
_FORBIDDEN_ONE_LINE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_FORBIDDEN_MULTILINE: Final = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_ADDR_CHARS: Final = re.compile(r"[\x21-\x7e]+")
_HEX: Final = re.compile(r"[0-9a-f]+")


def fields(value: Any, path: str, required: Collection[str]) -> Mapping[str, Any]:
    """Return ``value`` if it is a map with exactly the keys ``required``."""
    if not isinstance(value, Mapping):
        raise InvalidField(path, "must be a map")
    for name in value:
        if name not in required:
            label = field_label(name) if isinstance(name, str) else repr(name)[:32]
            raise UnknownField(f"{path}.{label}", "unknown field")
    for name in required:
        if name not in value:
            raise InvalidField(f"{path}.{name}", "required field is missing")
    return value


def text(value: Any, path: str, low: int, high: int, *, multiline: bool = False) -> str:
    """Return ``value`` if it is a str of ``low..high`` code points with no control chars."""
    if type(value) is not str:
        raise InvalidField(path, "must be a string")
    if not low <= len(value) <= high:
        raise InvalidField(path, f"must be {low}..{high} characters, got {len(value)}")
    forbidden = _FORBIDDEN_MULTILINE if multiline else _FORBIDDEN_ONE_LINE
    if forbidden.search(value) is not None:
        raise InvalidField(path, "contains a control or bidirectional-override character")
    return value


def pattern(value: Any, path: str, regex: re.Pattern[str], high: int, what: str) -> str:
    """Return ``value`` if it is a str of at most ``high`` chars matching ``regex`` fully."""
    if type(value) is not str or len(value) > high or regex.fullmatch(value) is None:
        raise InvalidField(path, f"must be {what}")
    return value


def integer(value: Any, path: str, low: int, high: int) -> int:
    """Return ``value`` if it is an int (not a bool) in ``low..high``."""
    if type(value) is not int:
        raise InvalidField(path, "must be an integer")
    if not low <= value <= high:
        raise InvalidField(path, f"must be in {low}..{high}")
    return value


def boolean(value: Any, path: str) -> bool:
    """Return ``value`` if it is a bool."""
    if type(value) is not bool:
        raise InvalidField(path, "must be true or false")
    return value


def binary(value: Any, path: str, size: int) -> bytes:
    """Return ``value`` if it is exactly ``size`` bytes."""
    if type(value) is not bytes or len(value) != size:
        raise InvalidField(path, f"must be {size} bytes")
    return value


def array(value: Any, path: str, high: int, *, low: int = 0) -> list[Any]:
    """Return ``value`` if it is a list of ``low..high`` items."""
    if type(value) is not list:
        raise InvalidField(path, "must be a list")
    if not low <= len(value) <= high:
        raise InvalidField(path, f"must have {low}..{high} items, got {len(value)}")
    return value


def unique(items: list[Any], path: str) -> None:
    """Refuse a list with repeated items (they would only pad the entry)."""
    if len(set(items)) != len(items):
        raise InvalidField(path, "items must be unique")


def one_of(value: Any, path: str, allowed: Collection[str]) -> str:
    """Return ``value`` if it is one of the strings ``allowed``."""
    if type(value) is not str or value not in allowed:
        raise InvalidField(path, f"must be one of {', '.join(sorted(allowed))}")
    return value


def peer_id(value: Any, path: str) -> bytes:
    """Return ``value`` if it is the bytes of an Ed25519 libp2p PeerID."""
    if type(value) is not bytes or not is_peer_id(value):
        raise InvalidField(path, "must be an Ed25519 PeerID (38 bytes)")
    return value


def peer_id_text(value: Any, path: str) -> bytes:
    """Return the PeerID bytes of ``value``, a ``12D3KooW...`` string."""
    if type(value) is not str:
        raise InvalidField(path, "must be a PeerID string")
    try:
        return peer_id_from_str(value)
    except InvalidPeerId as exc:
        raise InvalidField(path, str(exc)) from None


def hex_text(value: Any, path: str, size: int) -> str:
    """Return ``value`` if it is ``size`` bytes as lowercase hex."""
    if type(value) is not str or len(value) != 2 * size or _HEX.fullmatch(value) is None:
        raise InvalidField(path, f"must be {size} bytes as lowercase hex")
    return value


def multiaddr(value: Any, path: str) -> str:
    """Return ``value`` if it looks like a multiaddr: ``/``-led printable ASCII, no spaces.

    Only the shape is checked (the sans-IO core does not parse protocol tables); a node
    that dials it parses it properly and treats failure as an unreachable address.
    """
    if (
        type(value) is not str
        or not 2 <= len(value) <= 256
        or not value.startswith("/")
        or _ADDR_CHARS.fullmatch(value) is None
    ):
        raise InvalidField(path, "must be a multiaddr (/ip4/.../tcp/...), printable ASCII")
    return value


def url(value: Any, path: str, high: int, *, schemes: Collection[str] = ("http", "https")) -> str:
    """Return ``value`` if it is an absolute http(s) URL of printable ASCII with a host."""
    if type(value) is not str or not 1 <= len(value) <= high:
        raise InvalidField(path, f"must be a URL of at most {high} characters")
    if _ADDR_CHARS.fullmatch(value) is None:
        raise InvalidField(path, "must be printable ASCII with no spaces")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise InvalidField(path, "is not a valid URL") from None
    if parts.scheme not in schemes or not host:
        raise InvalidField(path, f"must be an absolute {'/'.join(sorted(schemes))} URL")
    return value
