"""Whether a host lets a visitor in: the visit policy, its status, the budget, the rate.

Pure: the caller passes the facts and ``now``; :class:`KnockRateLimiter` keeps the only
state (recent knocks per visitor).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from node.config import VisitSettings
from registry_crdt import Status

RATE_WINDOW_S: Final = 3600.0
TRACKED_VISITORS: Final = 4096
"""Visitors whose knock times are remembered; the oldest is forgotten past this."""


@dataclass(frozen=True, slots=True)
class KnockDecision:
    welcome: bool
    reason: str = ""
    """Why not (a ``decline`` reason) when ``welcome`` is False."""
    answering_machine: bool = False
    """Away or asleep: reply once in persona and keep the message for the owner."""
    max_turns: int = 0
    max_ms: int = 0


def decide_knock(
    settings: VisitSettings,
    *,
    status: Status,
    known_visitor: bool,
    within_rate: bool,
    busy: bool,
    may_reply: bool,
    requested_turns: int,
) -> KnockDecision:
    """The host's answer to a knock, most fundamental refusal first."""
    if settings.policy == "ask-owner":
        return KnockDecision(False, "closed")
    if settings.policy == "friends" and not known_visitor:
        return KnockDecision(False, "unknown_visitor")
    if not within_rate:
        return KnockDecision(False, "rate_limited")
    if status in (Status.AWAY, Status.ASLEEP):
        return KnockDecision(False, status.value, answering_machine=may_reply)
    if busy:
        return KnockDecision(False, "busy")
    if not may_reply:
        return KnockDecision(False, "resting")
    turns = settings.max_turns
    if requested_turns:
        # At least the first line and one answer, whatever the guest asked for.
        turns = max(2, min(turns, requested_turns))
    return KnockDecision(True, max_turns=turns, max_ms=int(settings.max_minutes * 60_000))


class KnockRateLimiter:
    """At most ``per_hour`` knocks per visitor in any sliding hour (refused ones count:
    knocking is what costs the host)."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._knocks: dict[bytes, deque[float]] = {}

    def allow(self, visitor: bytes, now_s: float) -> bool:
        """Record a knock at ``now_s`` and say whether it is within the rate."""
        times = self._knocks.pop(visitor, None) or deque()
        while times and now_s - times[0] >= RATE_WINDOW_S:
            times.popleft()
        allowed = len(times) < self.per_hour
        if allowed:
            times.append(now_s)
        self._knocks[visitor] = times  # re-inserted: dict order is least recently seen first
        while len(self._knocks) > TRACKED_VISITORS:
            del self._knocks[next(iter(self._knocks))]
        return allowed
