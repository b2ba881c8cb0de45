"""Body schemas per envelope kind.

``action`` and ``context`` are checked here in full. ``directory``, ``visit`` and ``mcp``
bodies only have to be maps until their owning modules register a validator with
:func:`register_body_validator`; every validator raises :class:`SchemaError` naming the
field it refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from keys.canonical import field_label
from keys.errors import KeyUsageError, SchemaError
from keys.kinds import KIND_ACTION, KIND_CONTEXT, KIND_DIRECTORY, KIND_MCP, KIND_VISIT, KINDS

BodyValidator = Callable[[Mapping[str, Any]], None]

ACTION_TYPES: Final = frozenset({"speak", "move", "look", "gesture"})
IMAGE_MIME_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
MAX_SPEAK_CHARS: Final = 2000
MAX_CONTEXT_TEXT_CHARS: Final = 8000
MAX_IMAGE_BYTES: Final = 192 * 1024
MAX_ALT_CHARS: Final = 500
_GESTURE_NAME = re.compile(r"[a-z_]+")


def _fields(
    body: Mapping[str, Any], required: Collection[str], optional: Collection[str] = ()
) -> None:
    missing = [name for name in required if name not in body]
    if missing:
        raise SchemaError(f"body.{missing[0]}: required field is missing")
    for name in body:
        if name not in required and name not in optional:
            raise SchemaError(f"body.{field_label(name)}: unknown field")


def _text(body: Mapping[str, Any], name: str, low: int, high: int) -> str:
    value = body[name]
    if type(value) is not str:
        raise SchemaError(f"body.{name}: must be a string")
    # len() counts code points, which is what the limits are written in.
    if not low <= len(value) <= high:
        raise SchemaError(f"body.{name}: must be {low}..{high} characters, got {len(value)}")
    return value


def _type(body: Mapping[str, Any], allowed: Collection[str]) -> str:
    value = body.get("type")
    if type(value) is not str or value not in allowed:
        raise SchemaError(f"body.type: must be one of {', '.join(sorted(allowed))}")
    return value


def validate_action(body: Mapping[str, Any]) -> None:
    """Check an ``action`` body: speak, move, look or gesture."""
    action = _type(body, ACTION_TYPES)
    if action == "speak":
        _fields(body, ("type", "text"), ("visit", "to"))
        _text(body, "text", 1, MAX_SPEAK_CHARS)
        if "visit" in body:
            _text(body, "visit", 1, 64)
        if "to" in body:
            _text(body, "to", 1, 128)
    elif action == "move":
        _fields(body, ("type", "to"))
        _text(body, "to", 1, 128)
    elif action == "look":
        _fields(body, ("type", "at"))
        _text(body, "at", 1, 128)
    else:
        # "to": the character the gesture is aimed at (a PeerID), e.g. a greeting wave.
        _fields(body, ("type", "name"), ("to",))
        name = _text(body, "name", 1, 32)
        if _GESTURE_NAME.fullmatch(name) is None:
            raise SchemaError("body.name: must match [a-z_]+")
        if "to" in body:
            _text(body, "to", 1, 128)


def validate_context(body: Mapping[str, Any]) -> None:
    """Check a ``context`` body: text or a small image."""
    if _type(body, ("text", "image")) == "text":
        _fields(body, ("type", "text"))
        _text(body, "text", 1, MAX_CONTEXT_TEXT_CHARS)
        return
    _fields(body, ("type", "mime", "data"), ("alt",))
    mime = body["mime"]
    if type(mime) is not str or mime not in IMAGE_MIME_TYPES:
        raise SchemaError(f"body.mime: must be one of {', '.join(sorted(IMAGE_MIME_TYPES))}")
    data = body["data"]
    if type(data) is not bytes:
        raise SchemaError("body.data: must be bytes")
    if not 1 <= len(data) <= MAX_IMAGE_BYTES:
        raise SchemaError(f"body.data: must be 1..{MAX_IMAGE_BYTES} bytes, got {len(data)}")
    if "alt" in body:
        _text(body, "alt", 0, MAX_ALT_CHARS)


def _any_map(body: Mapping[str, Any]) -> None:
    """Accept any map: the kind's owner has not registered its schema yet."""


_BUILT_IN: Final[Mapping[str, BodyValidator]] = {
    KIND_ACTION: validate_action,
    KIND_CONTEXT: validate_context,
}
_REGISTRABLE: Final = frozenset({KIND_DIRECTORY, KIND_VISIT, KIND_MCP})
_validators: dict[str, BodyValidator] = {
    **_BUILT_IN,
    **{kind: _any_map for kind in _REGISTRABLE},
}


def register_body_validator(kind: str, validator: BodyValidator) -> BodyValidator:
    """Install the body schema of ``directory``, ``visit`` or ``mcp``; return the one replaced.

    ``validator`` receives a body already checked for value types and must raise
    :class:`SchemaError` naming the field it refuses. Any other exception it raises is
    turned into :class:`SchemaError` so remote input can never crash verification.
    """
    if kind not in _REGISTRABLE:
        raise KeyUsageError(f"no validator can be registered for kind {kind!r}")
    previous = _validators[kind]
    _validators[kind] = validator
    return previous


def validate_body(kind: str, body: Mapping[str, Any]) -> None:
    """Raise :class:`SchemaError` unless ``body`` is a valid body of ``kind``.

    ``body`` must already be normalized (see :func:`keys.canonical.normalize`).
    """
    if kind not in KINDS:
        raise SchemaError(f"kind {kind!r} has no body schema")
    if not isinstance(body, Mapping):
        raise SchemaError("body: must be a map")
    validator = _validators[kind]
    if kind in _BUILT_IN:
        validator(body)
        return
    try:
        validator(body)
    except SchemaError:
        raise
    except Exception as exc:
        raise SchemaError(f"body: {kind} validator failed ({type(exc).__name__})") from exc
