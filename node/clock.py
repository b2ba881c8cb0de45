"""The node's one clock, and waiting on conditions that have no event of their own.

Logic takes time as an argument (``now_ms``, ``now``); only adapters read this module.
Wall time (:func:`now_ms`, milliseconds since the epoch) stamps envelopes, leases and
stored rows; monotonic time (:func:`monotonic`) measures durations and rate windows, so a
clock step on the host never stretches or shrinks one. A test hands logic a
:class:`node.testing.ManualClock` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio

WallClock = Callable[[], int]
"""Milliseconds since the epoch, as :func:`now_ms` returns them."""

MonotonicClock = Callable[[], float]
"""Seconds from an arbitrary origin that never goes backwards, as :func:`monotonic`."""

POLL_INTERVAL_S = 0.05


def now_ms() -> int:
    """Wall time in whole milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def monotonic() -> float:
    """Seconds from an arbitrary origin; only differences mean anything."""
    return time.monotonic()


async def poll_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Check ``condition`` every 50 ms until it holds (True) or ``timeout`` passes (False).

    For conditions with no event of their own (py-libp2p's tables, the directory replica).
    """
    with trio.move_on_after(timeout):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(POLL_INTERVAL_S)
        return True
    return False
