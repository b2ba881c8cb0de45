"""How often a character may react: pure rules, ``now`` passed in.

- At most ``per_hour`` reactions in any hour, whatever they were about.
- A public exchange with one other character rests after ``exchange_turns`` reactions to
  it, until ``exchange_quiet_s`` pass without one: two characters answering each other's
  gestures and words stop after a few turns each (our owner's contexts are no exchange).

The hourly limit counts reactions tried (the engine was asked: tokens were spent); an
exchange counts the actions that went to the other character (a reaction that does
nothing, or only looks around, gives it nothing to answer and does not extend it).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Final

from node.config import ReactionSettings

HOUR_MS: Final = 3_600_000
PARTNERS_KEPT: Final = 256
"""Exchanges remembered; the oldest is forgotten first (it is long over by then)."""


class Restraint:
    def __init__(self, settings: ReactionSettings) -> None:
        self.settings = settings
        self._recent: deque[int] = deque(maxlen=settings.per_hour)
        self._exchanges: OrderedDict[str, tuple[int, int]] = OrderedDict()
        """Partner → (reactions to it in the current exchange, when the last one was)."""

    def refusal(self, partner: str | None, now_ms: int) -> str | None:
        """Why a reaction (to ``partner``; None: our owner) may not happen now, or None."""
        if len(self._recent) >= self.settings.per_hour and now_ms - self._recent[0] < HOUR_MS:
            return "rate_limited"
        if partner is not None and self._turns(partner, now_ms) >= self.settings.exchange_turns:
            return "exchange_resting"
        return None

    def tried(self, now_ms: int) -> None:
        """A reaction is being tried now (the engine is asked)."""
        self._recent.append(now_ms)

    def answered(self, partner: str, now_ms: int) -> None:
        """A reaction went to ``partner`` now: one more turn of the exchange with it."""
        self._exchanges[partner] = (self._turns(partner, now_ms) + 1, now_ms)
        self._exchanges.move_to_end(partner)
        while len(self._exchanges) > PARTNERS_KEPT:
            self._exchanges.popitem(last=False)

    def _turns(self, partner: str, now_ms: int) -> int:
        turns, last = self._exchanges.get(partner, (0, 0))
        if now_ms - last >= self.settings.exchange_quiet_s * 1000:
            return 0
        return turns


__all__ = ["Restraint"]
