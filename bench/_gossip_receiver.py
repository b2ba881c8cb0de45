"""The receiving side of ``bench/gossip.py``: subscribe, admit, ack each message."""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from _gossip_common import (
    ACK_BATCH_MAX,
    ACK_TOPIC,
    LISTEN,
    PEER_WAIT_S,
    RAW_INDEX,
    RAW_TOPIC,
    RECEIVE_BATCH,
    AckSend,
    Offer,
    devnull,
    emit,
    index_of_body,
    node_config,
    pack_acks,
    run_node_until_stopped,
)

from keys import TOPIC_ACTIONS, EnvelopeError, Identity, ReplayWindow
from node import (
    CharacterNode,
    EnvelopeGate,
    EventLog,
    P2PHost,
    PublishError,
    PubsubMessage,
    Validator,
    now_ms,
    open_p2p_host,
    receive_batch,
)


async def wait_for_stdin_eof() -> None:
    """Return when the parent closes our stdin (or goes away)."""
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:
        while await stdin.receive_some(4096):
            pass


# -- receiver -----------------------------------------------------------------------


@dataclass
class ReceiverStats:
    received: int = 0
    unparsed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    acks_sent: int = 0
    ack_messages: int = 0
    ack_errors: int = 0


async def run_acker(
    ack_mode: str,
    host: P2PHost,
    listener: trio.SocketListener,
    acks: trio.MemoryReceiveChannel[tuple[int, int]],
    stats: ReceiverStats,
) -> None:
    """Send receipts back to the publisher, batched: over TCP, or on the raw ack topic."""
    stream: trio.SocketStream | None = None
    if ack_mode == "tcp":
        stream = await listener.accept()
    else:
        await host.wait_for_topic_peers(ACK_TOPIC, 1, timeout=PEER_WAIT_S * 4)
    while True:
        batch = await receive_batch(acks, ACK_BATCH_MAX)
        try:
            if stream is not None:
                await stream.send_all(pack_acks(batch))
            else:
                await host.publish(ACK_TOPIC, pack_acks(batch))
        except (PublishError, trio.BrokenResourceError):
            stats.ack_errors += 1
            continue
        stats.acks_sent += len(batch)
        stats.ack_messages += 1


def signed_validator(topic: str, gate: EnvelopeGate, stats: ReceiverStats) -> Validator:
    """What ``CharacterNode.validator`` does (the same gate), minus the rejection event."""

    def validate(origin: bytes, data: bytes) -> bool:
        try:
            gate.validate(topic, origin, data)
        except EnvelopeError as exc:
            stats.rejected[exc.reason] = stats.rejected.get(exc.reason, 0) + 1
            return False
        return True

    return validate


async def consume_raw(
    messages: trio.MemoryReceiveChannel[PubsubMessage], ack: AckSend, stats: ReceiverStats
) -> None:
    async for msg in messages:
        received_ns = time.time_ns()
        if len(msg.data) < RAW_INDEX.size:
            stats.unparsed += 1
            continue
        stats.received += 1
        ack.send_nowait((RAW_INDEX.unpack_from(msg.data)[0], received_ns))


async def consume_signed(
    messages: trio.MemoryReceiveChannel[PubsubMessage],
    gate: EnvelopeGate,
    ack: AckSend,
    stats: ReceiverStats,
) -> None:
    """What ``CharacterNode.consume`` does (batch, admit through the gate), no SQLite."""
    while True:
        for msg in await receive_batch(messages, RECEIVE_BATCH):
            if msg.origin == gate.own_peer_id:
                continue
            try:
                envelope = gate.admit(TOPIC_ACTIONS, msg.origin, msg.data)
            except EnvelopeError as exc:
                stats.rejected[exc.reason] = stats.rejected.get(exc.reason, 0) + 1
                continue
            index = index_of_body(envelope.body)
            if index is None:
                stats.unparsed += 1
                continue
            stats.received += 1
            ack.send_nowait((index, time.time_ns()))


class AckingEventLog(EventLog):
    """The node's event log (JSON lines to /dev/null) that also acks each received action."""

    def __init__(self, stream: Any, ack: AckSend | None, stats: ReceiverStats) -> None:
        super().__init__("json", stream)
        self._ack = ack
        self._stats = stats

    def emit(self, event: str, **fields: Any) -> None:
        super().emit(event, **fields)
        if event != "action_received" or self._ack is None:
            return
        index = index_of_body(fields.get("body"))
        if index is None:
            self._stats.unparsed += 1
            return
        self._stats.received += 1
        self._ack.send_nowait((index, time.time_ns()))


@dataclass
class AckPath:
    mode: str
    listener: trio.SocketListener
    send: AckSend
    receive: trio.MemoryReceiveChannel[tuple[int, int]]

    @property
    def port(self) -> int:
        return int(self.listener.socket.getsockname()[1])


async def receive(variant: str, ack_mode: str, max_seconds: float) -> None:
    stats = ReceiverStats()
    ack_send, ack_receive = trio.open_memory_channel[tuple[int, int]](math.inf)
    extra: dict[str, Any] = {}
    with trio.move_on_after(max_seconds) as lifetime:
        (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
        async with listener:
            acks = AckPath(ack_mode, listener, ack_send, ack_receive)
            if variant == "node":
                await _receive_node(stats, acks, extra)
            else:
                await _receive_plain(variant, stats, acks, extra)
    emit(
        {
            "type": "stats",
            "variant": variant,
            "received": stats.received,
            "unparsed": stats.unparsed,
            "rejected": stats.rejected,
            "acks_sent": stats.acks_sent,
            "ack_messages": stats.ack_messages,
            "ack_errors": stats.ack_errors,
            "lifetime_expired": lifetime.cancelled_caught,
            **extra,
        }
    )


async def _receive_plain(
    variant: str, stats: ReceiverStats, acks: AckPath, extra: dict[str, Any]
) -> None:
    identity = Identity.generate()
    async with open_p2p_host(identity.seed, [LISTEN], meshsub=Offer.meshsub) as host:
        topic = RAW_TOPIC if variant == "raw" else TOPIC_ACTIONS
        gate = EnvelopeGate(identity.peer_id, ReplayWindow(), now_ms)
        if variant == "signed":
            host.set_validator(topic, signed_validator(topic, gate, stats))
        messages = await host.subscribe(topic)
        async with trio.open_nursery() as nursery:
            if variant == "raw":
                nursery.start_soon(consume_raw, messages, acks.send, stats)
            else:
                nursery.start_soon(consume_signed, messages, gate, acks.send, stats)
            nursery.start_soon(run_acker, acks.mode, host, acks.listener, acks.receive, stats)
            addr = f"{host.listen_addrs()[0]}/p2p/{host.peer_id}"
            emit({"type": "ready", "addr": addr, "ack_port": acks.port, "pid": os.getpid()})
            await wait_for_stdin_eof()
            nursery.cancel_scope.cancel()
        extra["drops"] = drop_counts(host)


async def _receive_node(stats: ReceiverStats, acks: AckPath, extra: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="rv-bench-") as tmp, devnull() as sink:
        events = AckingEventLog(sink, acks.send, stats)
        config = node_config("BenchReceiver", Path(tmp) / "receiver")
        async with trio.open_nursery() as nursery:
            node: CharacterNode = await nursery.start(
                run_node_until_stopped, config, events, nursery.cancel_scope
            )
            nursery.start_soon(run_acker, acks.mode, node.host, acks.listener, acks.receive, stats)
            addr = f"{node.host.listen_addrs()[0]}/p2p/{node.identity.peer_id_str}"
            emit({"type": "ready", "addr": addr, "ack_port": acks.port, "pid": os.getpid()})
            await wait_for_stdin_eof()
            extra["drops"] = drop_counts(node.host)
            extra["node_received"] = node.received
            extra["node_rejected"] = dict(node.rejections.by_reason)
            stored = await node.store.envelopes(direction="in", limit=1_000_000)
            extra["stored_in"] = len(stored)
            nursery.cancel_scope.cancel()


def drop_counts(host: P2PHost) -> dict[str, int]:
    return {
        "libp2p_subscription": host.drops.subscription_overflow,
        "buffer": host.drops.buffer_overflow,
        "publish_timeouts": host.drops.publish_timeouts,
    }


# -- publisher ----------------------------------------------------------------------
