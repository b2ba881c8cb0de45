"""Noticing a gossip link that stopped carrying messages, and resetting it.

Our own messages go straight to every peer of the topic (flood publish), so a directory
entry that peer X wrote while we were connected to X should reach us by gossip within
milliseconds. When anti-entropy hands us such an entry instead, X's gossip did not get
through: a pubsub stream died on one side while the connection stayed up (py-libp2p's
pubsub loses track of peers when connections churn). After MISSES_BEFORE_RESET misses in
a row the connection to X is closed, which gives both sides fresh pubsub streams once
the dialer reconnects; any entry heard from X by gossip clears the count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence

import trio

from registry_crdt import Entry

GRACE_MS = 1500
"""How long after its writing an entry may still arrive by gossip without counting."""
MISSES_BEFORE_RESET = 2

Reset = Callable[[str], Awaitable[None]]


class GossipHealth:
    def __init__(self, own_peer_id: str, reset: Reset) -> None:
        self._own = own_peer_id
        self._reset = reset
        self._connected_since: dict[str, int] = {}
        self._misses: dict[str, int] = {}
        self._due, self._resets = trio.open_memory_channel[str](64)
        self.resets = 0

    def connected(self, peer_id: str, now_ms: int) -> None:
        self._connected_since.setdefault(peer_id, now_ms)

    def disconnected(self, peer_id: str) -> None:
        self._connected_since.pop(peer_id, None)
        self._misses.pop(peer_id, None)

    def entries_arrived(self, entries: Sequence[Entry], via: str, now_ms: int) -> None:
        """Called with every batch of entries that changed our directory."""
        for entry in entries:
            peer = entry.peer_str
            if peer == self._own or entry.vouch is not None:
                continue
            if via == "gossip":
                self._misses.pop(peer, None)
            elif via == "sync" and self._was_connected(peer, entry.clock.wall_ms, now_ms):
                misses = self._misses[peer] = self._misses.get(peer, 0) + 1
                if misses >= MISSES_BEFORE_RESET:
                    del self._misses[peer]
                    # A full queue means resets are pending; a peer still cut misses again.
                    with contextlib.suppress(trio.WouldBlock):
                        self._due.send_nowait(peer)

    def _was_connected(self, peer_id: str, written_ms: int, now_ms: int) -> bool:
        since = self._connected_since.get(peer_id)
        return since is not None and since < written_ms and now_ms - written_ms > GRACE_MS

    async def run(self) -> None:
        async for peer_id in self._resets:
            self.resets += 1
            await self._reset(peer_id)
