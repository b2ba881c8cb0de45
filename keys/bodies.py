"""Body schemas per envelope kind, passed to :func:`keys.verify` and :func:`keys.seal`.

What an envelope's body may hold is decided by the caller, never by what happens to be
imported: every ``verify``/``seal`` takes ``bodies``, a frozen map from kind to validator,
and refuses a kind that map has no validator for. :data:`BODIES` holds the kinds ``keys``
owns (``action`` and ``context``, checked here in full) and is the default; the owner of
another kind ships its validator (``registry_crdt.DIRECTORY_BODIES``, the visit
protocol's ``VISIT_BODIES``) and the code that handles that kind passes it, joined with
:func:`join_bodies` where one path carries several. Every validator raises
:class:`SchemaError` naming the field it refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any, Final

from keys.canonical import field_label
from keys.errors import KeyUsageError, SchemaError
from keys.kinds import KIND_ACTION, KIND_CONTEXT, KINDS

BodyValidator = Callable[[Mapping[str, Any]], None]
"""Raises :class:`SchemaError` naming the field it refuses; returns None for a good body."""
Bodies = Mapping[str, BodyValidator]
"""Kind → the validator of its bodies: every kind a path accepts, and only those."""

ACTION_TYPES: Final = frozenset({"speak", "move", "look", "gesture", "souvenir"})
IMAGE_MIME_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
MAX_SPEAK_CHARS: Final = 2000
MAX_CONTEXT_TEXT_CHARS: Final = 8000
MAX_IMAGE_BYTES: Final = 192 * 1024
MAX_ALT_CHARS: Final = 500
EVERYONE: Final = "*"
"""A context's ``to`` when it is for every character that hears it."""
_GESTURE_NAME = re.compile(r"[a-z_]+")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]+")


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
    """Check an ``action`` body: speak, move, look, gesture or souvenir."""
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
    elif action == "souvenir":
        # A lent tool was used in a public visit: who lent it and which tool, never the
        # arguments or the result (the sender is the character whose engine called it).
        _fields(body, ("type", "visit", "lender", "tool"))
        _text(body, "visit", 1, 64)
        _text(body, "lender", 1, 128)
        name = _text(body, "tool", 1, 64)
        if _TOOL_NAME.fullmatch(name) is None:
            raise SchemaError("body.tool: must match [A-Za-z0-9_-]+")
    else:
        # "to": the character the gesture is aimed at (a PeerID), e.g. a greeting wave.
        _fields(body, ("type", "name"), ("to",))
        name = _text(body, "name", 1, 32)
        if _GESTURE_NAME.fullmatch(name) is None:
            raise SchemaError("body.name: must match [a-z_]+")
        if "to" in body:
            _text(body, "to", 1, 128)


def validate_context(body: Mapping[str, Any]) -> None:
    """Check a ``context`` body: text or a small image.

    ``to`` (optional) says who it is for: a character's PeerID, or :data:`EVERYONE`.
    Without it, a context is the sender's owner talking to its own character."""
    kind = _type(body, ("text", "image"))
    if "to" in body:
        _text(body, "to", 1, 128)
    if kind == "text":
        _fields(body, ("type", "text"), ("to",))
        _text(body, "text", 1, MAX_CONTEXT_TEXT_CHARS)
        return
    _fields(body, ("type", "mime", "data"), ("alt", "to"))
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


BODIES: Final[Bodies] = MappingProxyType(
    {KIND_ACTION: validate_action, KIND_CONTEXT: validate_context}
)
"""The kinds ``keys`` owns; the default of :func:`keys.verify` and :func:`keys.seal`."""


def join_bodies(*parts: Bodies) -> Bodies:
    """One frozen map of the validators in ``parts`` (a kind in two parts is a mistake)."""
    joined: dict[str, BodyValidator] = {}
    for part in parts:
        for kind, validator in part.items():
            if kind not in KINDS:
                raise KeyUsageError(f"no envelope kind is called {kind!r}")
            if kind in joined and joined[kind] is not validator:
                raise KeyUsageError(f"two validators for {kind!r} bodies")
            joined[kind] = validator
    return MappingProxyType(joined)


def validate_body(kind: str, body: Mapping[str, Any], bodies: Bodies = BODIES) -> None:
    """Raise :class:`SchemaError` unless ``body`` is a valid body of ``kind`` in ``bodies``.

    ``body`` must already be normalized (see :func:`keys.canonical.normalize`). A kind
    ``bodies`` has no validator for is refused. A validator that raises anything but
    :class:`SchemaError` is reported as one, so remote input can never crash verification.
    """
    if kind not in KINDS:
        raise SchemaError(f"kind {kind!r} has no body schema")
    if not isinstance(body, Mapping):
        raise SchemaError("body: must be a map")
    validator = bodies.get(kind)
    if validator is None:
        raise SchemaError(f"body: {kind} bodies are not accepted here")
    try:
        validator(body)
    except SchemaError:
        raise
    except Exception as exc:
        raise SchemaError(f"body: {kind} validator failed ({type(exc).__name__})") from exc
