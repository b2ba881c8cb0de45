"""When and with whom the directory runs anti-entropy (:mod:`node.directory.sync`).

On every new connection to a peer that holds a directory (it subscribes to the
directory topic), and every ``sync_interval`` (±25 %) with one random such peer. At most
one sync we open runs per peer, so a peer across a partition holds one slot until the
timeout, never all of them; peers may open one sync each with us, MAX_INBOUND_SYNCS in
all.
"""

from __future__ import annotations

import logging
import random

import trio

from keys import PROTO_SYNC, TOPIC_DIRECTORY
from node import _libp2p
from node.directory.replica import DirectoryService
from node.directory.sync import FULL_DIGEST_EVERY, Seal, run_sync
from node.wire.clock_skew import ClockSkew
from node.wire.frames import StreamFailed
from node.wire.inbound import InboundLimit

logger = logging.getLogger(__name__)

MAX_INBOUND_SYNCS = 8
STREAM_OPEN_TIMEOUT_S = 5.0
SUBSCRIBE_WAIT_S = 10.0


class AntiEntropy:
    def __init__(
        self,
        host: _libp2p.P2PHost,
        service: DirectoryService,
        seal: Seal,
        *,
        clock_skew: ClockSkew | None = None,
    ) -> None:
        self._host = host
        self._service = service
        self._seal = seal
        self._skew = clock_skew
        self._inbound = InboundLimit(MAX_INBOUND_SYNCS)
        self._syncing: set[str] = set()
        self._opened = 0

    async def serve(self, stream: _libp2p.P2PStream) -> None:
        """The ``/roomverse/sync/1.0.0`` stream handler: one sync per peer at a time, at
        most MAX_INBOUND_SYNCS in all; a request beyond that is reset, never queued."""
        peer = stream.peer_id
        with self._inbound.admit(peer) as admitted:
            if not admitted:
                await stream.reset()
                return
            await run_sync("serve", stream, peer, self._service, self._seal, clock_skew=self._skew)

    async def sync_with(self, peer_id: str) -> None:
        """Run one sync with a connected peer (never raises for the peer's faults)."""
        if peer_id in self._syncing:
            return
        self._syncing.add(peer_id)
        try:
            self._opened += 1
            full = self._opened % FULL_DIGEST_EVERY == 0
            try:
                stream = await self._host.open_stream(
                    peer_id, PROTO_SYNC, timeout=STREAM_OPEN_TIMEOUT_S
                )
            except StreamFailed as exc:
                self._service.sync.failed += 1
                self._service.sync.last_error = f"{peer_id}: {exc}"
                logger.info("no sync with %s: %s", peer_id, exc)
                return
            try:
                await run_sync(
                    "open",
                    stream,
                    peer_id,
                    self._service,
                    self._seal,
                    full_digest=full,
                    clock_skew=self._skew,
                )
            finally:
                await stream.aclose()
        finally:
            self._syncing.discard(peer_id)

    async def sync_on_connect(self, peer_id: str) -> None:
        """Sync with a newly connected peer once it shows it holds a directory (it
        subscribes to the directory topic): other libp2p peers are never asked."""
        if await self._host.wait_for_subscriber(TOPIC_DIRECTORY, peer_id, SUBSCRIBE_WAIT_S):
            await self.sync_with(peer_id)

    async def run_periodically(self, nursery: trio.Nursery) -> None:
        interval = self._service.settings.sync_interval_s
        while True:
            await trio.sleep(interval * (0.75 + random.random() / 2))
            peers = [p for p in self._host.pubsub_peers(TOPIC_DIRECTORY) if p not in self._syncing]
            if peers:
                nursery.start_soon(self.sync_with, random.choice(peers))
