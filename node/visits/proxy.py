"""Visits a bridge makes for a legacy HTTP participant, and visits it hosts for one
(``roomverse bridge``).

The bridge is a node with no character; when a legacy participant visits a libp2p
character through it, the bridge runs the guest side of a real ``/roomverse/visit/1.0.0``
visit whose lines come from HTTP instead of an engine: :class:`RelayedLines` is that
visit's voice. The knock says whom the bridge speaks for (``for``: the participant's
vouched PeerID), so the host's door, memory and affinity treat the participant as
itself; the lines are signed by the bridge, which says so. The bridge keeps the visit
in its own memory but has no feelings about anyone (:class:`NoRelations`).

The other way round, a character visiting a legacy participant knocks at the door of
the bridge that vouches for it (``to``: the participant's PeerID); the bridge hosts the
visit for the participant, each of the host's lines coming from the participant's HTTP
server through a :class:`LegacyHost` (:class:`RelayedHostVoice`). A participant that
fails ends the visit like an engine that fails: a farewell, ``engine_unavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

import trio

from keys import Verified
from keys.errors import RemoteError
from node.engine.errors import EngineError
from node.storage.memory import Relation
from node.visits.contracts import Partner, Recollection, VisitTools
from node.visits.conversation import Line
from node.visits.messages import VisitMessage
from node.visits.wire import VisitChannel

DEFAULT_IDLE_S: Final = 120.0
"""A legacy visitor silent this long has left: the visit ends with a goodbye."""


@dataclass(frozen=True, slots=True)
class ProxyVisitor:
    """The legacy participant a bridge visits for."""

    peer_id: bytes
    """Its PeerID, whose directory entry the bridge vouches for."""
    name: str
    card_digest: bytes
    """The digest of the card in that entry (the knock carries it)."""


class RelayedLines:
    """The voice of a proxied visit: the first line given, each next line relayed from the
    legacy side with :meth:`say`; none for ``idle_s`` ends the visit politely."""

    def __init__(self, first_line: str, *, idle_s: float = DEFAULT_IDLE_S) -> None:
        self.first_line = first_line
        self.idle_s = idle_s
        self._send, self._receive = trio.open_memory_channel[str](1)
        self.waiting = trio.Event()
        """Set while the visit waits for the legacy side's next line."""

    def say(self, text: str) -> bool:
        """Hand over the legacy side's next line; False if one is already waiting."""
        try:
            self._send.send_nowait(text)
        except trio.WouldBlock:
            return False
        return True

    async def opening(self, partner: Partner, relation: Relation | None) -> str:
        return self.first_line

    async def reply(
        self,
        partner: Partner,
        relation: Relation | None,
        lines: list[Line],
        role: str,
        tools: VisitTools | None = None,
    ) -> str:
        self.waiting.set()
        try:
            with trio.move_on_after(self.idle_s):
                return await self._receive.receive()
        finally:
            self.waiting = trio.Event()
        return ""  # silence: the session says goodbye

    async def answering_machine(self, partner: Partner, message: str, status: str) -> str:
        return ""  # a bridge is never visited as a host

    async def summary(
        self, partner: Partner, relation: Relation | None, lines: list[Line]
    ) -> Recollection:
        return Recollection(None)


class NoRelations:
    """A bridge remembers visits, not feelings."""

    async def after_visit(
        self,
        partner: Partner,
        outcome: str,
        lines: list[Line],
        ended_ms: int,
        recollection: Recollection | None,
    ) -> None:
        return None


class RelayFailed(RemoteError):
    """The legacy participant's server failed, timed out or answered garbage."""

    reason = "participant_failed"


class LegacyHost(Protocol):
    """A legacy participant hosting a visit over HTTP (the bridge implements it)."""

    async def first_reply(self, guest: Partner, line: str, context: str) -> tuple[str, bool]:
        """``POST {url}/visit``: the participant's answer to the guest's first line, and
        whether it is done; raises :class:`RelayFailed`."""
        ...

    async def next_reply(self, guest: Partner, line: str) -> tuple[str, bool]:
        """``POST {url}/chat``: the answer to the guest's next line, and whether it is done."""
        ...


class RelayedHostVoice:
    """The voice of a visit a bridge hosts for a legacy participant."""

    def __init__(self, host: LegacyHost, context: str = "") -> None:
        self._host = host
        self._context = context
        self._started = False
        self._done = False

    async def opening(self, partner: Partner, relation: Relation | None) -> str:
        raise EngineError("a legacy participant does not make visits through here")

    async def reply(
        self,
        partner: Partner,
        relation: Relation | None,
        lines: list[Line],
        role: str,
        tools: VisitTools | None = None,
    ) -> str:
        if self._done or not lines:
            return ""  # the participant said it is done: goodbye
        try:
            if self._started:
                text, self._done = await self._host.next_reply(partner, lines[-1].text)
            else:
                self._started = True
                text, self._done = await self._host.first_reply(
                    partner, lines[-1].text, self._context
                )
        except RelayFailed as exc:
            raise EngineError(str(exc), reason="participant_failed") from exc
        return text

    async def answering_machine(self, partner: Partner, message: str, status: str) -> str:
        return ""

    async def summary(
        self, partner: Partner, relation: Relation | None, lines: list[Line]
    ) -> Recollection:
        return Recollection(None)


class KnockedChannel(VisitChannel):
    """A visit channel whose first message (the knock) was already read, to see whom it
    is for: it hands that message out again first."""

    def __init__(self, channel: VisitChannel, first: tuple[Verified, VisitMessage]) -> None:
        super().__init__(channel.stream, channel.partner_id, channel._seal, channel._clock_ms)
        self._reader = channel._reader
        self._first: tuple[Verified, VisitMessage] | None = first

    async def receive(self, timeout_s: float) -> tuple[Verified, VisitMessage]:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return await super().receive(timeout_s)


__all__ = [
    "DEFAULT_IDLE_S",
    "KnockedChannel",
    "LegacyHost",
    "NoRelations",
    "ProxyVisitor",
    "RelayFailed",
    "RelayedHostVoice",
    "RelayedLines",
]
