"""Taking work off a trio channel in batches, so per-batch costs (a SQLite transaction,
a socket write) are paid once for everything that is already waiting."""

from __future__ import annotations

from typing import TypeVar

import trio

T = TypeVar("T")


async def receive_batch(channel: trio.MemoryReceiveChannel[T], limit: int) -> list[T]:
    """Wait for one item, then take whatever else is already queued, up to ``limit``."""
    batch = [await channel.receive()]
    while len(batch) < limit:
        try:
            batch.append(channel.receive_nowait())
        except trio.WouldBlock:
            break
    return batch
