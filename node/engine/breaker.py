"""One circuit breaker per engine: stop hammering an engine that keeps failing, and let
exactly one probe through after a cool-down that doubles while it stays down.

Pure logic: time is passed in as ``now`` (monotonic seconds).
"""

from __future__ import annotations

import math
from enum import StrEnum

from keys.errors import ConfigError


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
