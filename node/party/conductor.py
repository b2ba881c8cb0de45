"""The party's pace: the first visit soon after the engine is ready, then one every minute
or two, never to a character already in a visit.

The conductor does not choose whom to visit: it picks whose turn it is to go out, and
that character's own autonomy (:meth:`node.agent.agent.Agent.visit_someone`: affinity,
novelty, cool-downs) chooses the host. One visit at a time keeps the one shared engine
answering quickly. :func:`next_visitor` is pure; :class:`Conductor` is the trio loop.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio

from node.clock import monotonic, poll_until
from node.events import EventLog
from node.visits.contracts import VisitResult

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pacing:
    first_after_s: float = 10.0
    """After the engine is ready and everyone has met: a moment to see them join."""
    gap_s: tuple[float, float] = (60.0, 120.0)
    """From the start of one visit to the start of the next, drawn uniformly."""
    retry_s: float = 15.0
    """When nobody could go out (all cooling down, all busy), look again after this."""
    meet_timeout_s: float = 60.0
    """How long the first visit waits for the characters to see each other online."""

    def gap(self, rng: random.Random) -> float:
        return rng.uniform(*self.gap_s)


class Guest(Protocol):
    """A character as the conductor sees it."""

    @property
    def name(self) -> str: ...

    @property
    def peer_id(self) -> str: ...

    def ready(self) -> bool:
        """Its engine answers and it sees someone online to visit."""
        ...

    async def visit_someone(self, *, busy: frozenset[str]) -> VisitResult | None: ...


def next_visitor(
    guests: Sequence[str],
    *,
    busy: frozenset[str],
    last_out: dict[str, float],
    tried: frozenset[str],
    rng: random.Random,
) -> str | None:
    """Whose turn it is to go out: not in a visit, not tried this round, the one out
    least recently (never-out first, ties broken at random)."""
    free = [g for g in guests if g not in busy and g not in tried]
    if not free:
        return None
    rng.shuffle(free)
    return min(free, key=lambda g: last_out.get(g, float("-inf")))


@dataclass
class Conductor:
    guests: Sequence[Guest]
    events: EventLog
    pacing: Pacing = field(default_factory=Pacing)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = monotonic
    busy: dict[str, set[str]] = field(default_factory=dict)
    """The visits each character is in now (hosting or visiting), from its own events."""
    last_out: dict[str, float] = field(default_factory=dict)

    def visit_started(self, peer_id: str, visit: str) -> None:
        self.busy.setdefault(peer_id, set()).add(visit)

    def visit_ended(self, peer_id: str, visit: str) -> None:
        """(A declined visit ends without having started: nothing to forget.)"""
        visits = self.busy.get(peer_id)
        if visits is not None:
            visits.discard(visit)
            if not visits:
                del self.busy[peer_id]

    def busy_now(self) -> frozenset[str]:
        return frozenset(self.busy)

    async def run(self) -> None:
        """Pace visits until cancelled."""
        met = await poll_until(
            lambda: all(g.ready() for g in self.guests), self.pacing.meet_timeout_s
        )
        if not met:
            waiting = [g.name for g in self.guests if not g.ready()]
            self.events.emit("party_waiting", waiting=waiting)
        await trio.sleep(self.pacing.first_after_s)
        while True:
            started = self.clock()
            result = await self.one_visit()
            if result is None:
                await trio.sleep(self.pacing.retry_s)
                continue
            rest = started + self.pacing.gap(self.rng) - self.clock()
            await trio.sleep(max(rest, self.pacing.retry_s))

    async def one_visit(self) -> VisitResult | None:
        """Send out whoever's turn it is; if they find nobody to visit, the next one."""
        by_peer = {g.peer_id: g for g in self.guests}
        tried: set[str] = set()
        while True:
            peer = next_visitor(
                list(by_peer),
                busy=self.busy_now(),
                last_out=self.last_out,
                tried=frozenset(tried),
                rng=self.rng,
            )
            if peer is None:
                self.events.emit("party_idle", busy=len(self.busy))
                return None
            tried.add(peer)
            guest = by_peer[peer]
            if not guest.ready():
                continue
            self.last_out[peer] = self.clock()
            result = await guest.visit_someone(busy=self.busy_now())
            if result is not None:
                return result


__all__ = ["Conductor", "Guest", "Pacing", "next_visitor"]
