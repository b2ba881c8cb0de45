"""Keeping connections to the peers we know about: bootstrap peers and discovered ones.

:class:`PeerBook` is pure (time passed in): who we want to be connected to, and when the
next dial attempt for each is due, with exponential backoff and jitter. :func:`run_dialer`
is the thin trio loop that acts on it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trio

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
MAX_FAILURES_DISCOVERED = 8
"""A discovered (not bootstrap) peer is forgotten after this many failed dials in a row."""
MAX_CONCURRENT_DIALS = 8


def backoff_delay(failures: int, jitter: float) -> float:
    """Delay before the next attempt after ``failures`` consecutive failures.

    ``jitter`` in [0, 1) spreads retries so a restarted LAN does not dial in lockstep.
    """
    if failures <= 0:
        return 0.0
    raw = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** (failures - 1))
    return raw * (0.5 + jitter / 2)


@dataclass
class WantedPeer:
    peer_id: str
    addrs: tuple[str, ...]
    source: str
    permanent: bool
    failures: int = 0
    due_at: float = 0.0
    dialing: bool = False


@dataclass
class PeerBook:
    self_id: str
    peers: dict[str, WantedPeer] = field(default_factory=dict)

    def want(
        self, peer_id: str, addrs: Sequence[str], source: str, now: float, *, permanent: bool
    ) -> bool:
        """Add or refresh a peer; True if it is new. A fresh sighting resets backoff."""
        if peer_id == self.self_id:
            return False
        known = self.peers.get(peer_id)
        if known is None:
            self.peers[peer_id] = WantedPeer(peer_id, tuple(addrs), source, permanent, due_at=now)
            return True
        merged = tuple(dict.fromkeys((*addrs, *known.addrs)))
        known.addrs = merged[:16]
        known.permanent = known.permanent or permanent
        if not known.dialing:
            known.failures = 0
            known.due_at = min(known.due_at, now)
        return False

    def due(self, now: float, connected: Callable[[str], bool]) -> list[WantedPeer]:
        out = []
        for peer in self.peers.values():
            if peer.dialing or peer.due_at > now:
                continue
            if connected(peer.peer_id):
                peer.failures = 0
                continue
            out.append(peer)
        return out

    def dial_started(self, peer: WantedPeer) -> None:
        peer.dialing = True

    def dial_succeeded(self, peer: WantedPeer, now: float) -> None:
        peer.dialing = False
        self.path_is_back(peer.peer_id, now)
        peer.failures = 0

    def dial_failed(self, peer: WantedPeer, now: float, jitter: float) -> bool:
        """Record a failure; returns False if the peer was dropped from the book."""
        peer.dialing = False
        peer.failures += 1
        if not peer.permanent and peer.failures >= MAX_FAILURES_DISCOVERED:
            self.peers.pop(peer.peer_id, None)
            return False
        peer.due_at = now + backoff_delay(peer.failures, jitter)
        return True

    def disconnected(self, peer_id: str, now: float) -> None:
        """A connection dropped: try again soon (reconnect), with backoff if it keeps failing."""
        peer = self.peers.get(peer_id)
        if peer is not None and not peer.dialing:
            peer.due_at = max(now + BACKOFF_BASE_S, peer.due_at)

    def path_is_back(self, peer_id: str, now: float) -> bool:
        """A connection to ``peer_id`` came up after its dials had failed: the path (a
        partition, a cable, Wi-Fi) is likely back for the others too, so retry every
        peer in backoff now. Returns whether it did."""
        peer = self.peers.get(peer_id)
        if peer is None or peer.failures == 0:
            return False
        for other in self.peers.values():
            if other.failures and not other.dialing:
                other.failures = 0
                other.due_at = min(other.due_at, now)
        return True

    def next_due(self) -> float | None:
        times = [p.due_at for p in self.peers.values() if not p.dialing]
        return min(times) if times else None


DialFn = Callable[[str, tuple[str, ...]], Awaitable[str]]


async def run_dialer(
    book: PeerBook,
    dial: DialFn,
    is_connected: Callable[[str], bool],
    wake: trio.MemoryReceiveChannel[None],
    *,
    on_failure: Callable[[str, str], None] = lambda peer, why: None,
    rng: random.Random | None = None,
) -> None:
    """Dial due peers forever; never more than MAX_CONCURRENT_DIALS at once.

    A message on ``wake`` (a peer was just discovered) ends the wait at once.
    """
    rng = rng or random.Random()
    limiter = trio.Semaphore(MAX_CONCURRENT_DIALS)

    async def attempt(peer: WantedPeer) -> None:
        async with limiter:
            try:
                await dial(peer.peer_id, peer.addrs)
            except Exception as exc:  # any dial failure: back off and retry later
                kept = book.dial_failed(peer, trio.current_time(), rng.random())
                on_failure(peer.peer_id, f"{exc}{'' if kept else ' (giving up)'}")
            else:
                book.dial_succeeded(peer, trio.current_time())

    async with trio.open_nursery() as nursery:
        while True:
            now = trio.current_time()
            for peer in book.due(now, is_connected):
                book.dial_started(peer)
                nursery.start_soon(attempt, peer)
            next_at = book.next_due()
            wait = 1.0 if next_at is None else max(0.05, min(1.0, next_at - now))
            with trio.move_on_after(wait):
                await wake.receive()
