"""The rows of the character's memory (see :mod:`node.storage.memory`): what a visit,
a message, a conversation and a relation look like outside the database, the visit
outcomes, and the memory's errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, Self

from keys.errors import LocalError

Role = Literal["host", "guest"]
ROLES: tuple[Role, ...] = ("host", "guest")

OPEN = "open"
COMPLETED = "completed"
ENDED_BY_PARTNER = "ended_by_partner"
PARTNER_VANISHED = "partner_vanished"
INTERRUPTED = "interrupted"
LEFT_MESSAGE = "left_message"
DECLINED_PREFIX = "declined:"
FAILED_PREFIX = "failed:"
"""A visit broken off by an error (``failed:<reason>``): the partner broke the protocol,
or something failed here."""
FINAL_OUTCOMES = frozenset(
    {COMPLETED, ENDED_BY_PARTNER, PARTNER_VANISHED, INTERRUPTED, LEFT_MESSAGE}
)

VISIT_ID = re.compile(r"[0-9a-f]{32}")


class MemoryUsageError(LocalError):
    """A memory call got an argument it cannot use (a bad id, range, order or state)."""


class UnknownVisit(MemoryUsageError):
    """No visit with this id is in memory."""


class VisitIdTaken(MemoryUsageError):
    """A visit with this id is already in memory (a repeated knock, or a chosen collision):
    the caller declines the knock; the stored visit is left untouched."""


def declined(reason: str) -> str:
    """The outcome of a declined visit (the reason is free text and is redacted on write)."""
    return DECLINED_PREFIX + reason


# -- rows -----------------------------------------------------------------------------


class _JsonRow:
    """``to_json`` for the control socket (bytes as hex) and ``from_json`` back, for the
    CLI that renders what the node sent."""

    __slots__ = ()
    _BYTES: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {f.name: _json_value(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        values = {
            key: bytes.fromhex(value) if key in cls._BYTES and value is not None else value
            for key, value in data.items()
        }
        return cls(**values)


def _json_value(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, _JsonRow):
        return value.to_json()
    if isinstance(value, tuple):
        return [_json_value(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class VisitStart:
    """What is known when a visit begins (the knock, on either side)."""

    visit_id: str
    partner_id: str
    partner_name: str
    role: Role
    remote_addr: str | None
    private: bool
    started_ms: int
    first_line: str


@dataclass(frozen=True, slots=True)
class VisitRow(_JsonRow):
    visit_id: str
    partner: bytes
    partner_id: str
    partner_name: str
    role: Role
    remote_addr: str | None
    private: bool
    started_ms: int
    ended_ms: int | None
    outcome: str
    turns: int
    transcript_hash: bytes | None
    receipt: bytes | None
    first_line: str

    _BYTES = frozenset({"partner", "transcript_hash", "receipt"})


@dataclass(frozen=True, slots=True)
class MessageRow(_JsonRow):
    idx: int
    speaker: str
    text: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Conversation(_JsonRow):
    """A visit and everything said in it, in turn order."""

    visit: VisitRow
    summary: str
    messages: tuple[MessageRow, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            visit=VisitRow.from_json(data["visit"]),
            summary=data["summary"],
            messages=tuple(MessageRow.from_json(m) for m in data["messages"]),
        )


@dataclass(frozen=True, slots=True)
class RelationStats(_JsonRow):
    """How the character stands with one partner, without anything remembered about them."""

    partner_id: str
    partner_name: str
    affinity: int
    visit_count: int
    completed_count: int
    last_visit_ms: int | None
    updated_ms: int


@dataclass(frozen=True, slots=True)
class Relation(RelationStats):
    """One partner's full relation: the standing plus the memory summary and owner notes."""

    summary: str
    notes: str
