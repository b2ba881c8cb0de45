"""The one module that imports py-libp2p.

Everything else in RoomVerse talks to the network through :class:`P2PHost`, whose
surface is plain Python types (strings for multiaddrs and peer ids, bytes for payloads),
so py-libp2p's quirks stay here and the rest of the code stays testable.

py-libp2p 0.8.1 drops messages silently with its defaults (see shared/FIELD-NOTES.md);
what this module does about each:

* the gossipsub spam cap (10 msg/s per topic per forwarding peer, own publishes
  included) is switched off: our own envelope checks and rate limits are the defence;
* the heartbeat defaults to 120 s; we run it every second so meshes repair quickly;
* ``publish()`` never waits and the per-peer outgoing queues hold 32 RPCs: before each
  publish we wait while any peer queue is at least half full (backpressure);
* the gossipsub message id is (author, seqno) and the seqno counter restarts from the
  wall clock in seconds, so a restarted node repeats ids: we seed it in nanoseconds;
* every message triggers an IDONTWANT to each meshsub/1.2 peer: we keep 1.2 but send
  them only for relayed messages of at least 1 KiB, as go-libp2p does;
* the subscription channel holds 32 messages and ``send_nowait`` drops when it is
  full: each subscription gets a task that only moves messages into our own large
  buffer, and py-libp2p's "fail to deliver" warnings are counted, never ignored.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import libp2p.pubsub.pubsub as _pubsub_module
import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.pubsub.gossipsub import (
    PROTOCOL_ID,
    PROTOCOL_ID_V11,
    PROTOCOL_ID_V12,
    GossipSub,
)
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

from keys.errors import LocalError, PublishError

logger = logging.getLogger(__name__)

MESHSUB_PROTOCOLS = (PROTOCOL_ID_V12, PROTOCOL_ID_V11, PROTOCOL_ID)

# Our own buffer behind each subscription; py-libp2p's 32-deep channel is drained into it.
SUBSCRIPTION_BUFFER = 65_536
# Publish waits while any per-peer outgoing queue holds this many RPCs (capacity is 32).
PEER_QUEUE_HIGH_WATER = 16
# Bounds every backpressure wait: a peer whose queue never drains is a dead peer.
PUBLISH_WAIT_LIMIT_S = 10.0

# py-libp2p reads this module global each time subscribe() runs; a larger channel gives
# the drain task slack when the trio loop is busy with other work.
_pubsub_module.SUBSCRIPTION_CHANNEL_SIZE = 1024

Validator = Callable[[bytes, bytes], bool]
"""``validator(origin_peer_id_bytes, data) -> accept?``; runs on every relayed message."""


class DialError(LocalError):
    """A multiaddr could not be parsed or dialled."""


@dataclass(frozen=True, slots=True)
class PubsubMessage:
    """A gossipsub message as delivered to us, signature already checked by libp2p."""

    topic: str
    data: bytes
    origin: bytes
    """PeerID bytes of the gossipsub author (strict signing binds it to ``data``)."""


@dataclass(frozen=True, slots=True)
class PeerEvent:
    kind: Literal["connected", "disconnected"]
    peer_id: str
    remote_addr: str | None


@dataclass
class DropCounters:
    """Messages py-libp2p or our buffers could not keep; every one is reported."""

    subscription_overflow: int = 0
    buffer_overflow: int = 0
    publish_timeouts: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


class _DropLogFilter(logging.Filter):
    """Count py-libp2p's 'fail to deliver message to subscription' warnings."""

    def __init__(self, counters: DropCounters, on_drop: Callable[[str, str], None]) -> None:
        super().__init__()
        self._counters = counters
        self._on_drop = on_drop

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "fail to deliver message to subscription for topic %s":
            args = record.args if isinstance(record.args, tuple) else ()
            topic = str(args[0]) if args else "?"
            self._counters.subscription_overflow += 1
            self._counters.by_topic[topic] = self._counters.by_topic.get(topic, 0) + 1
            self._on_drop(topic, "libp2p_subscription_full")
        return True


class _ConnectionNotifee(INotifee):
    def __init__(self, send: trio.MemorySendChannel[PeerEvent]) -> None:
        self._send = send

    def _emit(self, kind: Literal["connected", "disconnected"], conn: INetConn) -> None:
        try:
            peer = conn.muxed_conn.peer_id.to_base58()
        except AttributeError:
            return
        remote = _remote_addr(conn)
        try:
            self._send.send_nowait(PeerEvent(kind, peer, remote))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            logger.warning("peer event for %s not delivered (event buffer full)", peer)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._emit("connected", conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._emit("disconnected", conn)

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


def _remote_addr(conn: INetConn) -> str | None:
    try:
        addrs = conn.get_transport_addresses()
    except Exception:  # py-libp2p raises assorted types for closed connections
        return None
    return str(addrs[0]) if addrs else None


def _peer_info(addr: str) -> PeerInfo:
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(addr))
    except Exception as exc:  # multiaddr and py-libp2p raise assorted types
        raise DialError(f"not a dialable multiaddr with /p2p/<peer id>: {addr!r}") from exc


def split_peer_addr(addr: str) -> tuple[str, str]:
    """``/ip4/1.2.3.4/tcp/5/p2p/12D3...`` → (transport part, peer id); DialError if bad."""
    info = _peer_info(addr)
    transport = str(info.addrs[0]) if info.addrs else ""
    return transport, info.peer_id.to_base58()


def validate_listen_addr(addr: str) -> str:
    """Check a listen multiaddr parses; return it normalised."""
    try:
        parsed = multiaddr.Multiaddr(addr)
    except Exception as exc:
        raise DialError(f"not a valid multiaddr: {addr!r}") from exc
    return str(parsed)


class P2PHost:
    """A running libp2p host with gossipsub; create it with :func:`open_p2p_host`."""

    def __init__(
        self,
        host: Any,
        pubsub: Pubsub,
        nursery: trio.Nursery,
        peer_events: trio.MemoryReceiveChannel[PeerEvent],
        counters: DropCounters,
        on_drop: Callable[[str, str], None],
    ) -> None:
        self._host = host
        self._pubsub = pubsub
        self._nursery = nursery
        self.peer_events = peer_events
        self.drops = counters
        self._on_drop = on_drop
        self.peer_id: str = host.get_id().to_base58()

    # -- addresses and peers -------------------------------------------------------

    def listen_addrs(self) -> list[str]:
        """Bound transport addresses (real ports, no /p2p suffix)."""
        return [str(a) for a in self._host.get_transport_addrs()]

    def connected_peers(self) -> list[str]:
        return [p.to_base58() for p in self._host.get_connected_peers()]

    def pubsub_peers(self, topic: str) -> list[str]:
        """Peers that told us they subscribe to ``topic``."""
        return [p.to_base58() for p in self._pubsub.peer_topics.get(topic, set())]

    async def dial(self, addr: str, *, timeout: float = 10.0) -> str:
        """Connect to ``.../p2p/<peer id>``; returns the peer id. DialError on failure."""
        info = _peer_info(addr)
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
        if not self._host.get_network().connections.get(info.peer_id):
            # py-libp2p dials only the first address it ever learned for a peer, so a
            # peer that restarted on a new port would stay unreachable: start afresh.
            self._host.get_peerstore().clear_addrs(info.peer_id)
        try:
            with trio.fail_after(timeout):
                await self._host.connect(info)
        except trio.TooSlowError as exc:
            raise DialError(f"dial {info.peer_id} timed out after {timeout:.0f}s") from exc
        except Exception as exc:  # py-libp2p raises many unrelated types on dial failure
            raise DialError(f"dial {info.peer_id} failed: {exc}") from exc
        peer: str = info.peer_id.to_base58()
        return peer

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

    def _fullest_peer_queue(self) -> int:
        queues = list(self._pubsub.peer_queues.values())
        return max((len(q) for q in queues if not q.closed), default=0)

    async def wait_for_topic_peers(self, topic: str, count: int, timeout: float) -> bool:
        """Wait (bounded) until ``count`` peers subscribe to ``topic``; True if they did."""
        with trio.move_on_after(timeout):
            # py-libp2p has no event for "peer subscribed": poll its table.
            while len(self.pubsub_peers(topic)) < count:  # noqa: ASYNC110
                await trio.sleep(0.05)
            return True
        return False


class _GuardedPubsub(Pubsub):
    """py-libp2p's Pubsub, except that one peer's garbage cannot stop the node.

    In 0.8.1 a protobuf ``DecodeError`` (an unparsable RPC, or a message whose ``key``
    is junk) escapes ``continuously_read_stream`` / ``push_msg`` and ends ``trio.run``.
    Here it costs that peer its pubsub stream, and is counted and logged.
    """

    on_garbage: Callable[[str, str], None] = staticmethod(lambda peer, why: None)

    async def continuously_read_stream(self, stream: INetStream) -> None:
        try:
            await super().continuously_read_stream(stream)
        except Exception as exc:  # any parse failure from a remote peer
            peer = stream.muxed_conn.peer_id
            logger.warning("pubsub stream from %s dropped: %s", peer, exc)
            self.on_garbage(peer.to_base58(), type(exc).__name__)
            with contextlib.suppress(Exception):
                await stream.reset()
            self._handle_dead_peer(peer)

    async def push_msg(self, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
        try:
            await super().push_msg(msg_forwarder, msg)
        except Exception as exc:
            if msg_forwarder == self.my_id:
                raise
            logger.warning("pubsub message from %s refused: %s", msg_forwarder, exc)
            self.on_garbage(msg_forwarder.to_base58(), type(exc).__name__)


IDONTWANT_MIN_BYTES = 1024
"""go-libp2p's threshold: below it an IDONTWANT costs more than the duplicate it saves."""


class _FrugalGossipSub(GossipSub):
    """GossipSub that sends IDONTWANT only where it pays off.

    py-libp2p 0.8.1 sends an IDONTWANT (with a signed peer record) to every meshsub/1.2
    mesh peer for every message, own publishes included, which halved our throughput on
    small actions. go-libp2p sends them only for relayed messages of at least 1 KiB.
    """

    _idontwant_due = False

    async def publish(self, msg_forwarder: ID, pubsub_msg: rpc_pb2.Message) -> None:
        # Nothing awaits between here and the IDONTWANT step of super().publish, so the
        # flag cannot leak to another message.
        own = self.pubsub is not None and msg_forwarder == self.pubsub.my_id
        self._idontwant_due = not own and len(pubsub_msg.data) >= IDONTWANT_MIN_BYTES
        await super().publish(msg_forwarder, pubsub_msg)

    async def _emit_idontwant_for_message(self, msg_id: bytes, topic_ids: Any) -> None:
        due, self._idontwant_due = self._idontwant_due, False
        if due:
            await super()._emit_idontwant_for_message(msg_id, topic_ids)


def _keypair_from_seed(seed: bytes) -> Any:
    return create_new_key_pair(seed)


@asynccontextmanager
async def open_p2p_host(
    seed: bytes,
    listen_addrs: Sequence[str],
    *,
    on_drop: Callable[[str, str], None] = lambda topic, why: None,
    heartbeat_interval: float = 1.0,
) -> AsyncIterator[P2PHost]:
    """Run a libp2p host (TCP + Noise + Yamux/Mplex) with gossipsub until the block exits.

    ``seed`` is the character's 32-byte Ed25519 seed: host key = signing key.
    """
    key_pair = _keypair_from_seed(seed)
    maddrs = [multiaddr.Multiaddr(a) for a in listen_addrs]
    host = new_host(
        key_pair=key_pair,
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux, TProtocol(MPLEX_PROTOCOL_ID): Mplex},
        listen_addrs=maddrs,
        enable_mDNS=False,
    )
    router = _FrugalGossipSub(
        protocols=list(MESHSUB_PROTOCOLS),
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_initial_delay=0.1,
        heartbeat_interval=max(1, math.ceil(heartbeat_interval)),
        spam_protection_enabled=False,
        max_messages_per_topic_per_second=math.inf,
    )
    pubsub = _GuardedPubsub(host, router, strict_signing=True)
    pubsub.on_garbage = lambda peer, why: on_drop(f"peer:{peer}", f"garbage_rpc:{why}")
    # py-libp2p seeds its gossipsub seqno with int(time.time()) *seconds* and adds one
    # per message, so a node that published N messages and restarts within N seconds
    # reuses (from, seqno) ids, and peers' seen-caches silently drop its new messages.
    # go-libp2p seeds with nanoseconds; so do we.
    pubsub.counter = time.time_ns()
    counters = DropCounters()
    drop_filter = _DropLogFilter(counters, on_drop)
    pubsub_logger = logging.getLogger(_pubsub_module.__name__)
    pubsub_logger.addFilter(drop_filter)
    events_send, events_receive = trio.open_memory_channel[PeerEvent](4096)
    host.get_network().register_notifee(_ConnectionNotifee(events_send))
    try:
        async with (
            host.run(listen_addrs=maddrs),
            trio.open_nursery() as nursery,
            background_trio_service(pubsub),
            background_trio_service(router),
        ):
            await pubsub.wait_until_ready()
            yield P2PHost(host, pubsub, nursery, events_receive, counters, on_drop)
            nursery.cancel_scope.cancel()
    finally:
        pubsub_logger.removeFilter(drop_filter)
