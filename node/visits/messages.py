"""The ``/roomverse/visit/1.0.0`` messages, their body schema and their encoding, as pure code.

Every message is a signed ``visit`` envelope whose body is a map with a ``type``::

    knock     visit id, name, card digest, first line (turn 0), context, private, turns,
              ``for``: the PeerID of the legacy participant a bridge knocks for, and
              ``to``: the legacy participant a guest visits at the bridge that vouches for it
    welcome   the turn and time budget, whether the visit is private
    decline   a reason, and the answering machine's reply if the host is away or asleep
    say       one turn of speech
    farewell  the turns spoken, why the visit ends
    receipt   transcript hash, turns, duration (the guest's also holds the host's receipt)

What may come when is :mod:`node.visits.conversation`'s business; this module only says
what each message holds. :data:`VISIT_BODIES` is what to pass ``keys.verify`` /
``keys.seal`` as ``bodies`` on the visit stream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Final

from keys import Bodies
from keys.errors import SchemaError
from keys.kinds import KIND_VISIT

MAX_LINE: Final = 500
"""Code points in one turn of speech (the prompt caps untrusted text to the same)."""
MAX_CONTEXT: Final = 500
MAX_NAME: Final = 64
MAX_TURNS: Final = 64
MAX_VISIT_MS: Final = 4 * 3600 * 1000
VISIT_ID_HEX: Final = 32
MAX_PEER_ID_BYTES: Final = 64
DECLINE_REASONS: Final = frozenset(
    {"closed", "unknown_visitor", "away", "asleep", "busy", "rate_limited", "resting", "error"}
)
FAREWELL_REASONS: Final = frozenset(
    {"goodbye", "max_turns", "time_up", "engine_unavailable", "resting", "owner"}
)
_VISIT_ID = re.compile(r"[0-9a-f]{32}")


def cap_line(text: str) -> str:
    """Our speech, trimmed to what one line may hold."""
    return text.strip()[:MAX_LINE].strip()


@dataclass(frozen=True, slots=True)
class Knock:
    TYPE: ClassVar[str] = "knock"
    visit: str
    name: str
    card: bytes
    first_line: str
    context: str = ""
    private: bool = False
    turns: int = 0
    """Turns the guest would like (0: the host decides)."""
    on_behalf_of: bytes = b""
    """A bridge knocking for a legacy HTTP participant: that participant's PeerID, whose
    directory entry this bridge vouches for (the host checks); empty otherwise."""
    to: bytes = b""
    """Knocking at a bridge's door to visit the legacy participant it vouches for: that
    participant's PeerID; empty when the host is the peer the stream goes to."""


@dataclass(frozen=True, slots=True)
class Welcome:
    TYPE: ClassVar[str] = "welcome"
    visit: str
    max_turns: int
    max_ms: int
    private: bool


@dataclass(frozen=True, slots=True)
class Decline:
    TYPE: ClassVar[str] = "decline"
    visit: str
    reason: str
    message: str = ""
    """The answering machine's reply, when the host is away or asleep."""


@dataclass(frozen=True, slots=True)
class Say:
    TYPE: ClassVar[str] = "say"
    visit: str
    turn: int
    text: str


@dataclass(frozen=True, slots=True)
class Farewell:
    TYPE: ClassVar[str] = "farewell"
    visit: str
    turns: int
    reason: str


@dataclass(frozen=True, slots=True)
class Receipt:
    TYPE: ClassVar[str] = "receipt"
    visit: str
    transcript: bytes
    turns: int
    duration_ms: int
    host_receipt: bytes = b""
    """In the guest's receipt only: the host's receipt envelope, countersigned."""


VisitMessage = Knock | Welcome | Decline | Say | Farewell | Receipt


def to_body(message: VisitMessage) -> dict[str, Any]:
    """The envelope body of ``message`` (validated by :func:`validate_visit_body`)."""
    if isinstance(message, Knock):
        body: dict[str, Any] = {
            "type": message.TYPE,
            "visit": message.visit,
            "name": message.name,
            "card": message.card,
            "first_line": message.first_line,
            "private": message.private,
            "turns": message.turns,
        }
        if message.context:
            body["context"] = message.context
        if message.on_behalf_of:
            body["for"] = message.on_behalf_of
        if message.to:
            body["to"] = message.to
        return body
    if isinstance(message, Welcome):
        return {
            "type": message.TYPE,
            "visit": message.visit,
            "max_turns": message.max_turns,
            "max_ms": message.max_ms,
            "private": message.private,
        }
    if isinstance(message, Decline):
        body = {"type": message.TYPE, "visit": message.visit, "reason": message.reason}
        if message.message:
            body["message"] = message.message
        return body
    if isinstance(message, Say):
        return {
            "type": message.TYPE,
            "visit": message.visit,
            "turn": message.turn,
            "text": message.text,
        }
    if isinstance(message, Farewell):
        return {
            "type": message.TYPE,
            "visit": message.visit,
            "turns": message.turns,
            "reason": message.reason,
        }
    body = {
        "type": message.TYPE,
        "visit": message.visit,
        "transcript": message.transcript,
        "turns": message.turns,
        "duration_ms": message.duration_ms,
    }
    if message.host_receipt:
        body["host_receipt"] = message.host_receipt
    return body


def from_body(body: Mapping[str, Any]) -> VisitMessage:
    """The message in a verified ``visit`` body (the schema was checked by ``verify``)."""
    kind = body["type"]
    visit = body["visit"]
    if kind == Knock.TYPE:
        return Knock(
            visit,
            body["name"],
            body["card"],
            body["first_line"],
            body.get("context", ""),
            body["private"],
            body["turns"],
            body.get("for", b""),
            body.get("to", b""),
        )
    if kind == Welcome.TYPE:
        return Welcome(visit, body["max_turns"], body["max_ms"], body["private"])
    if kind == Decline.TYPE:
        return Decline(visit, body["reason"], body.get("message", ""))
    if kind == Say.TYPE:
        return Say(visit, body["turn"], body["text"])
    if kind == Farewell.TYPE:
        return Farewell(visit, body["turns"], body["reason"])
    return Receipt(
        visit,
        body["transcript"],
        body["turns"],
        body["duration_ms"],
        body.get("host_receipt", b""),
    )


_SCHEMAS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    Knock.TYPE: (
        frozenset({"type", "visit", "name", "card", "first_line", "private", "turns"}),
        frozenset({"context", "for", "to"}),
    ),
    Welcome.TYPE: (frozenset({"type", "visit", "max_turns", "max_ms", "private"}), frozenset()),
    Decline.TYPE: (frozenset({"type", "visit", "reason"}), frozenset({"message"})),
    Say.TYPE: (frozenset({"type", "visit", "turn", "text"}), frozenset()),
    Farewell.TYPE: (frozenset({"type", "visit", "turns", "reason"}), frozenset()),
    Receipt.TYPE: (
        frozenset({"type", "visit", "transcript", "turns", "duration_ms"}),
        frozenset({"host_receipt"}),
    ),
}


def validate_visit_body(body: Mapping[str, Any]) -> None:
    """The ``visit`` body schema (see :data:`VISIT_BODIES`)."""
    kind = body.get("type")
    if type(kind) is not str or kind not in _SCHEMAS:
        raise SchemaError(f"body.type: must be one of {', '.join(sorted(_SCHEMAS))}")
    required, optional = _SCHEMAS[kind]
    for name in required:
        if name not in body:
            raise SchemaError(f"body.{name}: required field is missing")
    for name in body:
        if name not in required and name not in optional:
            raise SchemaError(f"body.{name}: unknown field")
    visit = body["visit"]
    if type(visit) is not str or _VISIT_ID.fullmatch(visit) is None:
        raise SchemaError(f"body.visit: must be {VISIT_ID_HEX} lowercase hex digits")
    checks = {
        "name": lambda v: _text(v, 1, MAX_NAME),
        "first_line": lambda v: _text(v, 1, MAX_LINE),
        "context": lambda v: _text(v, 0, MAX_CONTEXT),
        "text": lambda v: _text(v, 1, MAX_LINE),
        "message": lambda v: _text(v, 0, MAX_LINE),
        "card": lambda v: type(v) is bytes and len(v) == 32,
        "for": lambda v: type(v) is bytes and 0 < len(v) <= MAX_PEER_ID_BYTES,
        "to": lambda v: type(v) is bytes and 0 < len(v) <= MAX_PEER_ID_BYTES,
        "transcript": lambda v: type(v) is bytes and len(v) == 32,
        "host_receipt": lambda v: type(v) is bytes and 0 < len(v) <= 4096,
        "private": lambda v: type(v) is bool,
        "turns": lambda v: _int(v, 0, MAX_TURNS),
        "max_turns": lambda v: _int(v, 1, MAX_TURNS),
        "turn": lambda v: _int(v, 1, MAX_TURNS - 1),
        "max_ms": lambda v: _int(v, 1, MAX_VISIT_MS),
        "duration_ms": lambda v: _int(v, 0, 2 * MAX_VISIT_MS),
        "reason": lambda v: v in (DECLINE_REASONS if kind == Decline.TYPE else FAREWELL_REASONS),
    }
    for name, value in body.items():
        check = checks.get(name)
        if check is not None and not check(value):
            raise SchemaError(f"body.{name}: not a valid {kind} {name}")


def _text(value: Any, low: int, high: int) -> bool:
    return type(value) is str and low <= len(value) <= high


def _int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


VISIT_BODIES: Final[Bodies] = MappingProxyType({KIND_VISIT: validate_visit_body})
"""The ``visit`` body validator, as ``keys.verify(..., bodies=)`` takes it."""
