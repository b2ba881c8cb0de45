"""The running host: :class:`P2PHost` and :func:`open_p2p_host`."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import libp2p.pubsub.pubsub as _pubsub_module
import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import INetStream
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.pubsub.gossipsub import (
    PROTOCOL_ID,
    PROTOCOL_ID_V11,
    PROTOCOL_ID_V12,
)
from libp2p.pubsub.pb import rpc_pb2
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

from node._libp2p.addrs import DialError, peer_info
from node._libp2p.peer_events import ConnectionNotifee, PeerEvent, PubsubMessage
from node._libp2p.routers import DropCounters, DropLogFilter, FrugalGossipSub, GuardedPubsub
from node._libp2p.sockets import UNACKNOWLEDGED, close_sockets, dead_connections
from node._libp2p.streams import (
    PING_PROTOCOL,
    STREAM_CLOSE_TIMEOUT_S,
    P2PStream,
    StreamHandler,
    StreamOpenFailed,
    open_abandonable,
    ping_over,
)
from node.clock import poll_until
from node.errors import PublishError
from node.wire.frames import StreamFailed

logger = logging.getLogger(__name__)

MESHSUB_PROTOCOLS = (PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID)

# Our own buffer behind each subscription; py-libp2p's 32-deep channel is drained into it.
SUBSCRIPTION_BUFFER = 65_536
# Publish waits while any per-peer outgoing queue holds this many RPCs (capacity is 32).
PEER_QUEUE_HIGH_WATER = 16
# Bounds every backpressure wait: a peer whose queue never drains is a dead peer.
PUBLISH_WAIT_LIMIT_S = 10.0
# A peer none of whose writes completed for this long no longer holds publishing back.
PEER_STALL_S = 2.0

# py-libp2p reads this module global each time subscribe() runs; a larger channel gives
# the drain task slack when the trio loop is busy with other work.
_pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = 1024

Validator = Callable[[bytes, bytes], bool]
"""``validator(origin_peer_id_bytes, data) -> accept?``; runs on every relayed message."""


class P2PHost:
    """A running libp2p host with gossipsub; create it with :func:`open_p2p_host`."""

    def __init__(
        self,
        host: Any,
        pubsub: GuardedPubsub,
        nursery: trio.Nursery,
        peer_events: trio.MemoryReceiveChannel[PeerEvent],
        counters: DropCounters,
        on_drop: Callable[[str, str], None],
        conn_opened: dict[int, float] | None = None,
    ) -> None:
        self._host = host
        self._conn_opened = conn_opened if conn_opened is not None else {}
        self._pubsub = pubsub
        self._nursery = nursery
        self.peer_events = peer_events
        self.drops = counters
        self._on_drop = on_drop
        self.peer_id: str = host.get_id().to_base58()
        self._full_since: dict[ID, float] = {}

    # -- addresses and peers -------------------------------------------------------

    def listen_addrs(self) -> list[str]:
        """Bound transport addresses (real ports, no /p2p suffix)."""
        return [str(a) for a in self._host.get_transport_addrs()]

    def connected_peers(self) -> list[str]:
        return [p.to_base58() for p in self._host.get_connected_peers()]

    def pubsub_peers(self, topic: str) -> list[str]:
        """Peers that told us they subscribe to ``topic``."""
        return [p.to_base58() for p in self._pubsub.peer_topics.get(topic, set())]

    def outgoing_queues(self) -> dict[str, int]:
        """RPCs waiting in each peer's outgoing pubsub queue (non-empty ones only)."""
        return {
            pid.to_base58(): len(queue)
            for pid, queue in list(self._pubsub.peer_queues.items())
            if not queue.closed and len(queue)
        }

    def mesh_peers(self, topic: str) -> list[str]:
        """Peers in our gossipsub mesh for ``topic`` (where our own publishes go)."""
        router = self._pubsub.router
        mesh = getattr(router, "mesh", {})
        return [p.to_base58() for p in mesh.get(topic, set())]

    async def dial(self, addr: str, *, timeout: float = 10.0) -> str:
        """Connect to ``.../p2p/<peer id>``; returns the peer id. DialError on failure."""
        info = peer_info(addr)
        if info.peer_id == self._host.get_id():
            raise DialError("refusing to dial ourselves")
        return await self.dial_info(info, timeout=timeout)

    async def dial_peer(self, peer_id: str, addrs: Sequence[str], *, timeout: float = 10.0) -> str:
        try:
            info = PeerInfo(ID.from_base58(peer_id), [multiaddr.Multiaddr(a) for a in addrs])
        except Exception as exc:
            raise DialError(f"bad peer id or address for {peer_id}: {exc}") from exc
        return await self.dial_info(info, timeout=timeout)

    async def dial_info(self, info: PeerInfo, *, timeout: float) -> str:
        network = self._host.get_network()
        if not network.connections.get(info.peer_id):
            # py-libp2p dials only the first address it ever learned for a peer, so a
            # peer that restarted on a new port would stay unreachable: start afresh.
            self._host.get_peerstore().clear_addrs(info.peer_id)
            # ...and refuses, for 60 s, every dial to a peer whose last dial failed (its
            # "negative cache"), which would hold a healed partition apart for a minute.
            # Our PeerBook already spaces the retries with backoff.
            unblock = getattr(network, "unblock_peer", None)  # Swarm has it, INetwork not
            if unblock is not None:
                unblock(info.peer_id)
        try:
            with trio.fail_after(timeout):
                await self._host.connect(info)
        except trio.TooSlowError as exc:
            raise DialError(f"dial {info.peer_id} timed out after {timeout:.0f}s") from exc
        except Exception as exc:  # py-libp2p raises many unrelated types on dial failure
            raise DialError(f"dial {info.peer_id} failed: {exc}") from exc
        peer: str = info.peer_id.to_base58()
        return peer

    # -- stream protocols --------------------------------------------------------------

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve ``protocol``: ``handler`` gets each inbound stream; the stream is closed
        (or reset, if the handler raised) when it returns. Nothing a peer sends can make
        the handler's exceptions reach py-libp2p, which would end the node."""

        async def run(raw: INetStream) -> None:
            stream = P2PStream(raw)
            try:
                await handler(stream)
            except Exception as exc:  # a remote failure, or a bug: log it, keep serving
                if not isinstance(exc, StreamFailed):
                    logger.exception("%s handler failed for %s", protocol, stream.peer_id)
                await stream.reset()
            else:
                await stream.aclose()

        self._host.set_stream_handler(TProtocol(protocol), run)

    async def open_stream(self, peer_id: str, protocol: str, *, timeout: float) -> P2PStream:
        """Open a stream to a connected peer; :class:`StreamOpenFailed` if it cannot be."""
        try:
            pid = ID.from_base58(peer_id)
        except Exception as exc:
            raise StreamOpenFailed(f"bad peer id {peer_id!r}") from exc
        return await open_abandonable(
            self._nursery,
            lambda: self._host.new_stream(pid, [TProtocol(protocol)]),
            timeout,
            f"opening {protocol} to {peer_id}",
        )

    async def ping(self, peer_id: str, *, timeout: float) -> float:
        """Round-trip ``/ipfs/ping/1.0.0`` (every libp2p peer serves it); return seconds.

        Raises :class:`StreamFailed` (:class:`StreamOpenTimeout` or ``PingTimeout`` when
        the peer is silent: on a dead TCP connection nothing else would tell us for minutes).
        """
        started = trio.current_time()
        stream = await self.open_stream(peer_id, PING_PROTOCOL, timeout=timeout)
        return await ping_over(stream, peer_id, started=started, timeout=timeout)

    def close_all_sockets(self) -> None:
        """Close the TCP socket under every connection (shutdown: no goodbyes)."""
        for conns in list(self._host.get_network().get_connections_map().values()):
            for conn in conns:
                close_sockets(conn)

    async def disconnect(self, peer_id: str, *, timeout: float = 2.0) -> None:
        """Close every connection to ``peer_id``, at once even if the link is dead.

        py-libp2p's close writes a yamux GO_AWAY first, which on a dead link waits behind
        a full socket buffer; so the TCP sockets are closed under it first, which wakes
        every task blocked on them, then py-libp2p tidies up (bounded).
        """
        pid = ID.from_base58(peer_id)
        for conn in self._host.get_network().get_connections(pid):
            close_sockets(conn)
        with contextlib.suppress(Exception), trio.move_on_after(timeout):
            await self._host.disconnect(pid)

    async def close_wedged(self, silence_s: float) -> list[str]:
        """Close every connection :func:`~node._libp2p.sockets.dead_connections` finds
        (the sockets first, then py-libp2p's bookkeeping, bounded); return the peers with
        data left unacknowledged, once each. A superseded connection (the peer is on a
        newer one) is closed too, but its peer is not returned: it is not unresponsive."""
        unresponsive: list[str] = []
        connections = self._host.get_network().get_connections_map()
        now = trio.current_time()
        seen = {id(conn) for conns in connections.values() for conn in conns}
        for gone in [key for key in self._conn_opened if key not in seen]:
            del self._conn_opened[gone]
        for pid, conns in list(connections.items()):
            listed = list(conns)
            opened = [self._conn_opened.setdefault(id(conn), now) for conn in listed]
            for conn, why in dead_connections(listed, silence_s, opened):
                peer = pid.to_base58()
                logger.info("closing a connection to %s: %s", peer, why)
                close_sockets(conn)
                with contextlib.suppress(Exception), trio.move_on_after(STREAM_CLOSE_TIMEOUT_S):
                    await conn.close()
                if why == UNACKNOWLEDGED and peer not in unresponsive:
                    unresponsive.append(peer)
        return unresponsive

    def is_connected(self, peer_id: str) -> bool:
        try:
            pid = ID.from_base58(peer_id)
        except Exception:
            return False
        return bool(self._host.get_network().connections.get(pid))

    # -- pubsub ----------------------------------------------------------------------

    def set_validator(self, topic: str, validator: Validator) -> None:
        def run(forwarder: ID, msg: rpc_pb2.Message) -> bool:
            return validator(bytes(msg.from_id), bytes(msg.data))

        self._pubsub.set_topic_validator(topic, run, False)

    async def subscribe(self, topic: str) -> trio.MemoryReceiveChannel[PubsubMessage]:
        """Subscribe and return our own buffer of delivered messages."""
        subscription = await self._pubsub.subscribe(topic)
        send, receive = trio.open_memory_channel[PubsubMessage](SUBSCRIPTION_BUFFER)
        self._nursery.start_soon(self._drain, topic, subscription, send)
        return receive

    async def _drain(
        self, topic: str, subscription: Any, send: trio.MemorySendChannel[PubsubMessage]
    ) -> None:
        # Does nothing but move messages: any per-message work here would let
        # py-libp2p's 32-deep channel fill and drop.
        async with send:
            while True:
                msg = await subscription.get()
                item = PubsubMessage(topic, bytes(msg.data), bytes(msg.from_id))
                try:
                    send.send_nowait(item)
                except trio.WouldBlock:
                    self.drops.buffer_overflow += 1
                    self._on_drop(topic, "subscription_buffer_full")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish with backpressure: wait while any peer's outgoing queue is half full."""
        await self.wait_for_queue_room()
        try:
            await self._pubsub.publish(topic, data)
        except Exception as exc:
            raise PublishError(f"publish on {topic} failed: {exc}") from exc

    async def wait_for_queue_room(self) -> None:
        """Wait while a peer that is still taking data has a half-full queue.

        A peer whose writes have not completed for PEER_STALL_S (a partition, a dead
        TCP connection) is left out: one stalled peer must not stop us talking to the
        others. Its queue fills and py-libp2p drops what does not fit; the directory
        recovers by anti-entropy, actions by gossip (IWANT) within its cache window.
        """
        deadline = trio.current_time() + PUBLISH_WAIT_LIMIT_S
        while self._fullest_peer_queue() >= PEER_QUEUE_HIGH_WATER:
            if trio.current_time() > deadline:
                self.drops.publish_timeouts += 1
                raise PublishError(
                    f"a peer's outgoing queue stayed full for {PUBLISH_WAIT_LIMIT_S:.0f}s"
                )
            await trio.sleep(0.001)
        # Let the sender tasks run between publishes even when queues are empty.
        await trio.lowlevel.checkpoint()

    async def flush(self, timeout: float) -> bool:
        """Wait (bounded) until every queued pubsub RPC has been written; True if so."""
        with trio.move_on_after(timeout):
            # No event to wait on: poll the queues, then the writes already taken off them.
            while self._fullest_peer_queue() or self._pubsub.writes_in_flight:  # noqa: ASYNC110
                await trio.sleep(0.005)
            return True
        return False

    def _fullest_peer_queue(self) -> int:
        """The longest outgoing queue among peers that are not stalled.

        Stalled: seen at the high-water mark for PEER_STALL_S with no write completing
        in that time.
        """
        now = trio.current_time()
        last_write = self._pubsub.last_write_at
        fullest = 0
        for peer, queue in list(self._pubsub.peer_queues.items()):
            length = 0 if queue.closed else len(queue)
            if length < PEER_QUEUE_HIGH_WATER:
                self._full_since.pop(peer, None)
            else:
                full_for = now - self._full_since.setdefault(peer, now)
                idle_for = now - last_write.get(peer, -math.inf)
                if min(full_for, idle_for) > PEER_STALL_S:
                    continue
            fullest = max(fullest, length)
        return fullest

    async def wait_for_subscriber(self, topic: str, peer_id: str, timeout: float) -> bool:
        """Wait (bounded) until ``peer_id`` subscribes to ``topic``; True if it did."""
        return await poll_until(lambda: peer_id in self.pubsub_peers(topic), timeout)

    async def wait_for_topic_peers(self, topic: str, count: int, timeout: float) -> bool:
        """Wait (bounded) until ``count`` peers subscribe to ``topic``; True if they did."""
        return await poll_until(lambda: len(self.pubsub_peers(topic)) >= count, timeout)


def _keypair_from_seed(seed: bytes) -> Any:
    return create_new_key_pair(seed)


@asynccontextmanager
async def open_p2p_host(
    seed: bytes,
    listen_addrs: Sequence[str],
    *,
    on_drop: Callable[[str, str], None] = lambda topic, why: None,
    heartbeat_interval: float = 1.0,
    meshsub: Sequence[str] = MESHSUB_PROTOCOLS,
) -> AsyncIterator[P2PHost]:
    """Run a libp2p host (TCP + Noise + Yamux/Mplex) with gossipsub until the block exits.

    ``seed`` is the character's 32-byte Ed25519 seed: host key = signing key. ``meshsub``:
    the gossipsub versions offered, newest first (benchmarks compare them).
    """
    key_pair = _keypair_from_seed(seed)
    maddrs = [multiaddr.Multiaddr(a) for a in listen_addrs]
    host = new_host(
        key_pair=key_pair,
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux, TProtocol(MPLEX_PROTOCOL_ID): Mplex},
        listen_addrs=maddrs,
        enable_mDNS=False,
    )
    router = FrugalGossipSub(
        protocols=[TProtocol(p) for p in meshsub],
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_initial_delay=0.1,
        heartbeat_interval=max(1, math.ceil(heartbeat_interval)),
        # A peer that reconnects after a partition may graft again after 10 s, not 60.
        prune_back_off=10,
        spam_protection_enabled=False,
        max_messages_per_topic_per_second=math.inf,
    )
    pubsub = GuardedPubsub(host, router, strict_signing=True)
    pubsub.on_garbage = lambda peer, why: on_drop(f"peer:{peer}", f"garbage_rpc:{why}")
    # py-libp2p seeds its gossipsub seqno with int(time.time()) *seconds* and adds one
    # per message, so a node that published N messages and restarts within N seconds
    # reuses (from, seqno) ids, and peers' seen-caches silently drop its new messages.
    # go-libp2p seeds with nanoseconds; so do we.
    pubsub.counter = time.time_ns()
    counters = DropCounters()
    drop_filter = DropLogFilter(counters, on_drop)
    pubsub_logger = logging.getLogger(_pubsub_module.__name__)
    pubsub_logger.addFilter(drop_filter)
    events_send, events_receive = trio.open_memory_channel[PeerEvent](4096)
    notifee = ConnectionNotifee(events_send)
    host.get_network().register_notifee(notifee)
    try:
        async with (
            host.run(listen_addrs=maddrs),
            trio.open_nursery() as nursery,
            background_trio_service(pubsub),
            background_trio_service(router),
        ):
            await pubsub.wait_until_ready()
            p2p = P2PHost(
                host, pubsub, nursery, events_receive, counters, on_drop, notifee.opened_at
            )
            yield p2p
            # A stream request abandoned on a dead link may still sit in py-libp2p's
            # shielded cleanup; with the sockets closed under it, it ends at once, so
            # shutting down never waits for TCP to give up.
            p2p.close_all_sockets()
            nursery.cancel_scope.cancel()
    finally:
        pubsub_logger.removeFilter(drop_filter)
