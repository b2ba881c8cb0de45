"""How many inbound streams of one protocol we serve at once: one per peer, N in all.

A request beyond that is reset, never queued, so a peer that opens streams and then says
nothing can hold one slot until its timeout, never all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class InboundLimit:
    def __init__(self, total: int) -> None:
        self.total = total
        self.serving: set[str] = set()
        self.refused = 0

    @contextmanager
    def admit(self, peer_id: str) -> Iterator[bool]:
        """True inside the block if ``peer_id`` may be served now (then it holds a slot)."""
        if peer_id in self.serving or len(self.serving) >= self.total:
            self.refused += 1
            yield False
            return
        self.serving.add(peer_id)
        try:
            yield True
        finally:
            self.serving.discard(peer_id)
