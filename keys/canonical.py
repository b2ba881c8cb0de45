"""Canonical msgpack: the one byte string a given value encodes to.

Rules: map keys sorted (code-point order, which equals bytewise UTF-8 order), ints in
their smallest msgpack form, ``str`` as msgpack str, ``bytes`` as bin, floats as
float64, no ext types. Values are limited to None, bool, int, float, str, bytes, list
and dict with str keys, nested at most :data:`MAX_DEPTH` deep.

msgpack-python's packer already picks minimal int widths and float64; this module adds
the key order and the value rules, and decodes with limits so hostile input cannot
allocate more than its own size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import msgpack

from keys.errors import Malformed, SchemaError

# Deep enough for any body we design; shallow enough that recursion stays far from
# Python's limit whatever msgpack lets through (it allows 1024 levels).
MAX_DEPTH: Final = 32
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1


def normalize(value: Any, path: str = "body", depth: int = 0) -> Any:
    """Return ``value`` as exact builtin types, or raise :class:`SchemaError` naming ``path``.

    Accepts subclasses (``StrEnum``, ``IntEnum``), any ``Mapping``, tuples, ``bytearray``
    and ``memoryview`` so callers can seal what they have; the result decodes back equal.
    """
    if depth > MAX_DEPTH:
        raise SchemaError(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        number = int(value)
        if not INT_MIN <= number <= INT_MAX:
            raise SchemaError(f"{path}: integer outside the 64-bit range")
        return number
    if isinstance(value, float):
        real = float(value)
        if not math.isfinite(real):
            raise SchemaError(f"{path}: float must be finite")
        return real
    if isinstance(value, str):
        return _normalize_str(value, path)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [normalize(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SchemaError(f"{path}: map keys must be strings")
            name = _normalize_str(key, path)
            result[name] = normalize(item, f"{path}.{field_label(name)}", depth + 1)
        return result
    raise SchemaError(f"{path}: unsupported type {type(value).__name__}")


def field_label(name: str) -> str:
    """Return ``name`` fit for an error message: short, printable, never attacker-sized."""
    if name.isidentifier() and len(name) <= 32:
        return name
    return repr(name[:32])


def _normalize_str(value: str, path: str) -> str:
    text = str.__str__(value)  # drops a subclass (e.g. StrEnum) to its plain value
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SchemaError(f"{path}: string is not valid Unicode (lone surrogate)") from None
    return text


def _sorted(value: Any) -> Any:
    if type(value) is dict:
        return {key: _sorted(value[key]) for key in sorted(value)}
    if type(value) is list:
        return [_sorted(item) for item in value]
    return value


def packb(value: Any) -> bytes:
    """Return the canonical encoding of an already :func:`normalize`-d value."""
    return msgpack.packb(  # type: ignore[no-any-return]
        _sorted(value), use_bin_type=True, use_single_float=False, strict_types=True
    )


def unpackb(data: bytes) -> Any:
    """Decode one msgpack value with limits bounded by ``len(data)``; raise :class:`Malformed`."""
    size = len(data)
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size // 2,
            max_ext_len=0,
        )
    except Exception as exc:
        # msgpack raises many types (ValueError, ExtraData, StackError, UnicodeDecodeError,
        # TypeError, ...); to a peer they all mean the same thing.
        raise Malformed(f"not valid msgpack ({type(exc).__name__})") from exc
