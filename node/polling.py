"""Waiting on a condition that has no event of its own (py-libp2p's tables, the directory
replica), bounded."""

from __future__ import annotations

from collections.abc import Callable

import trio

POLL_INTERVAL_S = 0.05


async def poll_until(condition: Callable[[], bool], timeout: float) -> bool:
    """Check ``condition`` every 50 ms until it holds (True) or ``timeout`` passes (False)."""
    with trio.move_on_after(timeout):
        while not condition():  # noqa: ASYNC110
            await trio.sleep(POLL_INTERVAL_S)
        return True
    return False
