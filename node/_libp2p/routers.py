"""py-libp2p's Pubsub and GossipSub, with the fixes RoomVerse needs (see the package docstring)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio
from libp2p.abc import INetStream
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import (
    GossipSub,
)
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub

logger = logging.getLogger(__name__)


@dataclass
class DropCounters:
    """Messages py-libp2p or our buffers could not keep; every one is reported."""

    subscription_overflow: int = 0
    buffer_overflow: int = 0
    publish_timeouts: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


class DropLogFilter(logging.Filter):
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


class GuardedPubsub(Pubsub):
    """py-libp2p's Pubsub, except that one peer's garbage cannot stop the node.

    In 0.8.1 a protobuf ``DecodeError`` (an unparsable RPC, or a message whose ``key``
    is junk) escapes ``continuously_read_stream`` / ``push_msg`` and ends ``trio.run``.
    Here it costs that peer its pubsub stream, and is counted and logged.
    """

    on_garbage: Callable[[str, str], None] = staticmethod(lambda peer, why: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes_in_flight = 0
        """RPCs taken off a peer queue whose write has not returned (see P2PHost.flush)."""
        self.last_write_at: dict[ID, float] = {}
        """When a write to each peer last completed (trio time): how stalls are seen."""

    async def write_msg(self, stream: INetStream, rpc_msg: rpc_pb2.RPC) -> bool:
        self.writes_in_flight += 1
        try:
            return await super().write_msg(stream, rpc_msg)
        finally:
            self.writes_in_flight -= 1
            self.last_write_at[stream.muxed_conn.peer_id] = trio.current_time()

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

    def _handle_dead_peer(self, peer_id: ID) -> None:
        """py-libp2p forgets a peer's subscriptions whenever one of its connections or
        pubsub streams ends, even when another connection to it is alive (two peers
        that dial each other at once after a partition heals; a reconnect racing the
        old connection's teardown). The peer does not announce them again, so it would
        drop out of every topic for good while staying connected: keep them."""
        still_connected = self._peer_is_connected(peer_id)
        topics = [t for t, peers in self.peer_topics.items() if peer_id in peers]
        super()._handle_dead_peer(peer_id)
        if still_connected:
            for topic in topics:
                self.handle_subscription(
                    peer_id, rpc_pb2.RPC.SubOpts(subscribe=True, topicid=topic)
                )

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


class FrugalGossipSub(GossipSub):
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

    def _get_peers_to_send(
        self, topic_ids: Any, msg_forwarder: ID, origin: ID, msg_id: bytes | None = None
    ) -> Any:
        """Our own messages go to every peer subscribed to the topic (go-libp2p's
        default "flood publish"), not only to the mesh: a mesh that is still forming, or
        thinned by reconnects and prune backoff, must not swallow what we publish
        (py-libp2p sends to an empty mesh, i.e. to nobody). Relayed messages use the mesh."""
        peers = set(super()._get_peers_to_send(topic_ids, msg_forwarder, origin, msg_id))
        if self.pubsub is not None and origin == self.pubsub.my_id:
            for topic in topic_ids:
                peers.update(self.pubsub.peer_topics.get(topic, ()))
            peers.discard(msg_forwarder)
            peers.discard(origin)
        return peers

    async def _emit_idontwant_for_message(self, msg_id: bytes, topic_ids: Any) -> None:
        due, self._idontwant_due = self._idontwant_due, False
        if due:
            await super()._emit_idontwant_for_message(msg_id, topic_ids)
