"""What a character's engines did since the node started: calls by engine and result, how
long they took, the tokens they spent. Plain counters, read by the metrics at scrape time
(:mod:`node.metrics`); pure, the caller measures the time."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

OK: Final = "ok"
"""The result of a call that answered; a failed call's result is its failure reason
(:class:`node.engine.errors.EngineCallFailed`: ``timeout``, ``http_500``...)."""

LATENCY_BOUNDS_S: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Upper bounds of the latency buckets (seconds): a local model on a CPU takes seconds
to a minute for a turn, a hosted one a fraction of a second."""


@dataclass
class LatencyBuckets:
    """A histogram of durations: how many fell at or under each bound, their sum."""

    bounds: tuple[float, ...] = LATENCY_BOUNDS_S
    counts: list[int] = field(default_factory=list)
    """Per bound, then one for above the last (not cumulative)."""
    sum_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.sum_s += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, count at or under it)``, ending with ``(inf, total)``."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


@dataclass
class EngineCallStats:
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(engine, result) → calls; result is :data:`OK` or the failure reason."""
    latency: dict[str, LatencyBuckets] = field(default_factory=dict)
    """engine → the durations of its calls, answered or failed."""
    tokens: Counter[str] = field(default_factory=Counter)
    """engine → the tokens its answers spent."""

    def record(self, engine: str, result: str, seconds: float, tokens: int = 0) -> None:
        self.calls[(engine, result)] += 1
        self.latency.setdefault(engine, LatencyBuckets()).observe(max(0.0, seconds))
        if tokens:
            self.tokens[engine] += tokens
