"""Which LLM engine a character may call now, and how much autonomy its token budget allows.

Characters talk to OpenAI-compatible servers through an ordered list of engines with
failover. This module is the pure decision logic behind that (no I/O, time passed in as
``now``, monotonic seconds, or ``day``, an ISO date string), so every rule is testable
without a server:

* :class:`CircuitBreaker` (one per engine) stops hammering an engine that keeps failing,
  and lets exactly one probe through after a cool-down that doubles while it stays down.
* :class:`TokenBudget` counts the tokens spent today and maps the fraction spent to a
  :class:`BudgetTier`; :func:`policy_for` says what autonomy may do in that tier.
* :class:`EngineChooser` combines both into the list of engines to try, in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final

from keys.errors import ConfigError, LocalError


class BreakerState(StrEnum):
    CLOSED = "closed"
    """Calls flow; consecutive failures are counted."""
    OPEN = "open"
    """The engine is considered down: no calls until the cool-down has passed."""
    HALF_OPEN = "half_open"
    """The cool-down passed and one probe call is out; its outcome decides the next state."""


class CircuitBreaker:
    """Closed → open → half-open breaker for one engine.

    Opening after ``failure_threshold`` consecutive failures keeps a dead server from
    costing every reply a timeout. After ``open_for_s`` a single probe is let through
    (:meth:`allows` grants it once): a success closes the breaker and resets the cool-down,
    a failure re-opens it with the cool-down doubled, up to ``max_open_for_s``, so an engine
    that stays down is probed less and less often.

    The state only moves on :meth:`allows`, :meth:`record_success`, :meth:`record_failure`
    and :meth:`release_probe`: while open, :attr:`state` still says ``open`` after the
    cool-down until someone asks to call.
    """

    def __init__(
        self,
        failure_threshold: int = 3,
        open_for_s: float = 30.0,
        max_open_for_s: float = 600.0,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigError("failure_threshold", "must be at least 1")
        if not (math.isfinite(open_for_s) and open_for_s > 0):
            raise ConfigError("open_for_s", "must be a positive number of seconds")
        if not (math.isfinite(max_open_for_s) and max_open_for_s >= open_for_s):
            raise ConfigError("max_open_for_s", "must be a number of seconds >= open_for_s")
        self.failure_threshold = failure_threshold
        self.open_for_s = open_for_s
        self.max_open_for_s = max_open_for_s
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._cooldown_s = open_for_s
        self._opened_at = 0.0
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def cooldown_s(self) -> float:
        """The cool-down the breaker uses the next (or current) time it is open."""
        return self._cooldown_s

    @property
    def retry_at(self) -> float | None:
        """When open: the earliest ``now`` at which :meth:`allows` grants a probe."""
        if self._state is not BreakerState.OPEN:
            return None
        return self._opened_at + self._cooldown_s

    def allows(self, now: float) -> bool:
        """May the caller call the engine now? A True in half-open is the one probe.

        The caller must then report the call with :meth:`record_success` or
        :meth:`record_failure`, or with :meth:`release_probe` if it never made it;
        otherwise the probe stays out and the engine is never tried again.
        """
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if now < self._opened_at + self._cooldown_s:
                return False
            self._state = BreakerState.HALF_OPEN
            self._probe_out = False
        if self._probe_out:
            return False
        self._probe_out = True
        return True

    def release_probe(self) -> None:
        """The probe :meth:`allows` granted was never sent (an earlier engine answered, or
        the call was cancelled first): let the next caller probe instead. No-op otherwise."""
        if self._state is BreakerState.HALF_OPEN:
            self._probe_out = False

    def record_success(self, now: float) -> None:
        """The engine answered. In half-open this closes the breaker and resets the cool-down.

        A success reported while open is the late answer to a call made before the breaker
        opened; it says nothing about the engine now, so the cool-down runs on.
        """
        if self._state is BreakerState.OPEN:
            return
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._cooldown_s = self.open_for_s
        self._probe_out = False

    def record_failure(self, now: float) -> None:
        """The engine failed (error, timeout, garbage). Counts toward opening; a failed
        half-open probe re-opens with the cool-down doubled (capped).

        A failure reported while open (a call made before it opened) changes nothing: the
        engine is already treated as down, and extending the cool-down for it would punish
        the engine twice for one outage.
        """
        if self._state is BreakerState.OPEN:
            return
        if self._state is BreakerState.HALF_OPEN:
            self._cooldown_s = min(self.max_open_for_s, self._cooldown_s * 2)
            self._open(now)
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._open(now)

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._failures = 0
        self._probe_out = False


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


@dataclass(frozen=True)
class EngineSpec:
    name: str
    cheap: bool = False


class EngineChooser:
    """The engines a character should try for one call, in order, with one breaker each.

    Failover is the caller's loop: try :meth:`candidates` in order until one answers,
    :meth:`record` every attempt's outcome, and :meth:`release` the candidates it did not
    get an outcome for (so a half-open probe granted to an engine that was never called,
    or whose call was cancelled, is given back)::

        pending = chooser.candidates(now, tier)
        try:
            while pending:
                ok = await attempt(pending[0])
                chooser.record(pending.pop(0), ok, clock())
                if ok:
                    break
        finally:
            chooser.release(pending)

    An empty list means no engine may be called: either all are down, or the budget is
    spent (see :func:`policy_for`).
    """

    def __init__(
        self,
        engines: Sequence[EngineSpec],
        *,
        breaker: Callable[[], CircuitBreaker] = CircuitBreaker,
    ) -> None:
        if not engines:
            raise ConfigError("engines", "must list at least one engine")
        seen: set[str] = set()
        for i, spec in enumerate(engines):
            if spec.name in seen:
                raise ConfigError(f"engines[{i}].name", f"duplicate engine {spec.name!r}")
            seen.add(spec.name)
        self.engines: tuple[EngineSpec, ...] = tuple(engines)
        self._breakers = {spec.name: breaker() for spec in engines}

    def breaker(self, name: str) -> CircuitBreaker:
        try:
            return self._breakers[name]
        except KeyError:
            raise LocalError(f"unknown engine {name!r}") from None

    def candidates(
        self, now: float, tier: BudgetTier, *, cheapest_first: bool = False
    ) -> list[str]:
        """Engines to try in order, skipping those whose breaker refuses a call now.

        The preferred order is the configured one; when the tier asks for the cheapest
        engine, or the caller does (``cheapest_first``: a call that must stay cheap
        whatever the budget, such as the answering machine's), cheap engines move to the
        front (keeping their order among themselves).
        """
        policy = policy_for(tier)
        if not policy.may_reply:
            return []
        order = list(self.engines)
        if cheapest_first or policy.prefer_cheapest_engine:
            order.sort(key=lambda spec: not spec.cheap)
        return [spec.name for spec in order if self._breakers[spec.name].allows(now)]

    def record(self, name: str, ok: bool, now: float) -> None:
        """Feed one attempt's outcome to the engine's breaker."""
        if ok:
            self.breaker(name).record_success(now)
        else:
            self.breaker(name).record_failure(now)

    def release(self, names: Iterable[str]) -> None:
        """Give back the half-open probes of candidates that got no outcome (not tried, or
        cancelled mid-call). Pass only those: a recorded engine's breaker may meanwhile
        have granted its probe to another caller."""
        for name in names:
            self.breaker(name).release_probe()
