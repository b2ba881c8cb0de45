"""How much a character may spend today: the daily token budget, its tiers, and what
autonomy may do in each tier.

:class:`TokenBudget` counts the tokens spent today and maps the fraction spent to a
:class:`BudgetTier`; :func:`policy_for` says what autonomy may do in that tier. Pure logic:
the day is passed in as an ISO date string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final

from keys.errors import ConfigError


class BudgetTier(StrEnum):
    NORMAL = "normal"
    LOW = "low"
    CRITICAL = "critical"
    STOPPED = "stopped"


def _check_day(day: str) -> str:
    """Days must be ISO dates so that comparing the strings compares the days."""
    try:
        date.fromisoformat(day)
    except (TypeError, ValueError):
        raise ConfigError("day", f"not an ISO date (YYYY-MM-DD): {day!r}") from None
    if len(day) != 10:
        raise ConfigError("day", f"not an ISO date (YYYY-MM-DD): {day!r}")
    return day


class TokenBudget:
    """Tokens spent per day against ``daily_tokens``, and the tier that puts us in.

    The owner pays for the tokens, so autonomy (visiting rooms unprompted) is what gives
    way first as the day's budget runs down; replies to people go on until it is spent.
    The count starts again from zero when ``day`` moves on (the caller decides what a day
    is, e.g. the owner's local date).
    """

    def __init__(self, daily_tokens: int, low_at: float = 0.5, critical_at: float = 0.8) -> None:
        if isinstance(daily_tokens, bool) or not isinstance(daily_tokens, int) or daily_tokens <= 0:
            raise ConfigError("daily_tokens", "must be a positive whole number of tokens")
        if not 0 < low_at < 1:
            raise ConfigError("low_at", "must be a fraction between 0 and 1 (exclusive)")
        if not 0 < critical_at < 1:
            raise ConfigError("critical_at", "must be a fraction between 0 and 1 (exclusive)")
        if not low_at < critical_at:
            raise ConfigError("critical_at", "must be greater than low_at")
        self.daily_tokens = daily_tokens
        self.low_at = low_at
        self.critical_at = critical_at
        self._day: str | None = None
        self._spent = 0

    def spend(self, tokens: int, day: str) -> BudgetTier:
        """Add ``tokens`` to ``day``'s count and return the tier after it.

        Tokens reported for a day earlier than the current one (a call that began before
        midnight) are dropped: that day's budget is closed and must not eat into today's.
        """
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ConfigError("tokens", "must be a non-negative whole number")
        _check_day(day)
        if self._day is None or day > self._day:
            self._day = day
            self._spent = 0
        if day == self._day:
            self._spent += tokens
        return self.tier(day)

    def spent(self, day: str) -> int:
        """Tokens counted for ``day`` (0 for a day that has not been spent on yet)."""
        _check_day(day)
        return self._spent if day == self._day else 0

    def remaining(self, day: str) -> int:
        return max(0, self.daily_tokens - self.spent(day))

    def tier(self, day: str) -> BudgetTier:
        # Division, not multiplying the threshold: spent/daily is correctly rounded, so an
        # exact fraction such as 400/500 lands exactly on 0.8 and counts as reached.
        fraction = self.spent(day) / self.daily_tokens
        if fraction < self.low_at:
            return BudgetTier.NORMAL
        if fraction < self.critical_at:
            return BudgetTier.LOW
        if fraction < 1.0:
            return BudgetTier.CRITICAL
        return BudgetTier.STOPPED


@dataclass(frozen=True)
class TierPolicy:
    """What a character may do in a budget tier.

    Check ``autonomous_visits`` before using ``visit_interval_factor``: it is ``inf``
    (never) when visits are off.
    """

    autonomous_visits: bool
    visit_interval_factor: float
    """Multiplies the normal interval between autonomous visits."""
    prefer_cheapest_engine: bool
    may_reply: bool
    """False: do not call any engine; the caller answers politely that it is resting."""


_POLICIES: Final[dict[BudgetTier, TierPolicy]] = {
    BudgetTier.NORMAL: TierPolicy(True, 1.0, prefer_cheapest_engine=False, may_reply=True),
    BudgetTier.LOW: TierPolicy(True, 2.0, prefer_cheapest_engine=True, may_reply=True),
    BudgetTier.CRITICAL: TierPolicy(False, math.inf, prefer_cheapest_engine=True, may_reply=True),
    BudgetTier.STOPPED: TierPolicy(False, math.inf, prefer_cheapest_engine=True, may_reply=False),
}


def policy_for(tier: BudgetTier) -> TierPolicy:
    return _POLICIES[tier]
