"""The firehose's own families (beside its node's): what its fan-out reads at scrape time.

The firehose builds a :class:`FirehoseReading` from its hub's counters on each call of
the ``read`` it passes here; the names are fixed here so every face of the network
documents its metrics in one place (README, "Metrics and health").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from node.metrics.families import Family, one


@dataclass(frozen=True, slots=True)
class FirehoseReading:
    viewers: int
    """WebSocket viewers connected now."""
    frames: int
    """Event frames fanned out since start (each encoded once, written to every viewer)."""
    slow_consumer_drops: int
    """Viewers dropped because their outbox filled (they did not keep up)."""


def firehose_families(read: Callable[[], FirehoseReading]) -> list[Family]:
    return [
        Family(
            "roomverse_firehose_viewers",
            "WebSocket viewers connected now.",
            "gauge",
            lambda: one(read().viewers),
        ),
        Family(
            "roomverse_firehose_frames_total",
            "Event frames fanned out to viewers (each encoded once).",
            "counter",
            lambda: one(read().frames),
        ),
        Family(
            "roomverse_firehose_slow_consumer_drops_total",
            "Viewers dropped because they did not keep up (their outbox filled).",
            "counter",
            lambda: one(read().slow_consumer_drops),
        ),
    ]
