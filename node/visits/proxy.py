"""Visits a bridge makes for a legacy HTTP participant (``roomverse bridge``).

The bridge is a node with no character; when a legacy participant visits a libp2p
character through it, the bridge runs the guest side of a real ``/roomverse/visit/1.0.0``
visit whose lines come from HTTP instead of an engine: :class:`RelayedLines` is that
visit's voice. The knock says whom the bridge speaks for (``for``: the participant's
vouched PeerID), so the host's door, memory and affinity treat the participant as
itself; the lines are signed by the bridge, which says so. The bridge keeps the visit
in its own memory but has no feelings about anyone (:class:`NoRelations`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import trio

from node.storage.memory import Relation
from node.visits.contracts import Partner, Recollection
from node.visits.conversation import Line

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
        self, partner: Partner, relation: Relation | None, lines: list[Line], role: str
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


__all__ = ["DEFAULT_IDLE_S", "NoRelations", "ProxyVisitor", "RelayedLines"]
