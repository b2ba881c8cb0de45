"""What a visit needs from the rest of the character, and what it gives back: the
partner, the voice that speaks for us, the keeper of relations, the result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from keys.errors import RemoteError
from node.souvenirs.wire import ToolAnswer, ToolListing
from node.storage.memory import Relation
from node.visits.conversation import Line


@dataclass(frozen=True, slots=True)
class Partner:
    peer_id: str
    name: str
    description: str = ""
    addr: str = ""
    languages: tuple[str, ...] = ()
    """What their name card says they speak (BCP 47); empty when we have no card."""


@dataclass(frozen=True)
class Recollection:
    """What our voice keeps of a visit: the memory text, and how the partner treated us
    as the summary call judged it (``friendly``, ``neutral``, ``unfriendly``; None when it
    gave no verdict)."""

    memory: str | None
    tone: str | None = None


class VisitTools(Protocol):
    """The partner's souvenirs in one visit (:class:`node.souvenirs.borrowing.VisitSouvenirs`)."""

    partner_name: str
    calls: int
    """Calls our engine made in this visit so far."""

    async def listing(self) -> tuple[ToolListing, ...]: ...

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> ToolAnswer: ...


class SouvenirDesk(Protocol):
    """Lends our souvenirs to a visit's partner and borrows its own, for one visit."""

    def visit(
        self, visit: str, partner_id: str, partner_name: str, private: bool
    ) -> AbstractAsyncContextManager[VisitTools]: ...


class Voice(Protocol):
    """Speaks for our character through its engines (see :mod:`node.agent.voice`).

    Raises :class:`node.engine.errors.EngineError` when no engine may or can answer.
    """

    async def opening(self, partner: Partner, relation: Relation | None) -> str: ...

    async def reply(
        self,
        partner: Partner,
        relation: Relation | None,
        lines: list[Line],
        role: str,
        tools: VisitTools | None = None,
    ) -> str: ...

    async def answering_machine(self, partner: Partner, message: str, status: str) -> str: ...

    async def summary(
        self, partner: Partner, relation: Relation | None, lines: list[Line]
    ) -> Recollection: ...


class RelationKeeper(Protocol):
    async def after_visit(
        self,
        partner: Partner,
        outcome: str,
        lines: list[Line],
        ended_ms: int,
        recollection: Recollection | None,
    ) -> None: ...


@dataclass
class VisitResult:
    visit: str
    partner: Partner
    role: str
    outcome: str
    lines: list[Line] = field(default_factory=list)
    reason: str = ""
    """Why it ended: the farewell's reason (``goodbye``, ``max_turns``, ``owner``...) or
    what stopped it (``partner_gone``...); "" while it runs or when it never started."""
    transcript: bytes | None = None
    receipt: bytes | None = None
    message: str = ""
    """A decline's answering-machine reply."""
    relation: Relation | None = None
    """Our relation to the partner before the visit."""
    needs_remembering: bool = False
    """A hosted visit: call :meth:`node.visits.session.VisitSession.remember` once the
    guest is let go."""


Reject = Callable[[bytes, str, RemoteError], None]
"""Report what a partner sent that we refuse: ``(peer, channel, error)``."""
OnLine = Callable[[str, Partner, Line, bool], Awaitable[None]]
"""Called after each line is stored: ``(visit, partner, line, mine)``."""
