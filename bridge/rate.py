"""Token buckets per client key (an IP address, a token): pure, time passed in."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

MAX_KEYS: Final = 10_000
"""Buckets kept; the least recently used go first (a full bucket is the default)."""


@dataclass(frozen=True, slots=True)
class Rate:
    per_minute: float
    burst: int

    def check(self, what: str) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError(f"{what}: a rate needs per_minute > 0 and burst >= 1")


class RateLimiter:
    def __init__(self, rate: Rate, max_keys: int = MAX_KEYS) -> None:
        rate.check("rate")
        self.rate = rate
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """key → (tokens, at seconds)."""

    def take(self, key: str, now_s: float) -> float | None:
        """Take one token for ``key``: None if there was one, else the seconds until there is."""
        per_second = self.rate.per_minute / 60
        tokens, at = self._buckets.pop(key, (float(self.rate.burst), now_s))
        tokens = min(float(self.rate.burst), tokens + max(0.0, now_s - at) * per_second)
        wait: float | None = None
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / per_second
        self._buckets[key] = (tokens, now_s)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait
