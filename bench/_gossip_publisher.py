"""The publishing side of ``bench/gossip.py``: windows of messages, latencies, CPU."""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from _gossip_common import (
    ACK_PAIR,
    ACK_TOPIC,
    LISTEN,
    PAYLOAD_SIZE,
    PEER_WAIT_S,
    PROBE_ATTEMPTS,
    PROBE_TIMEOUT_S,
    RAW_INDEX,
    RAW_PAD,
    RAW_TOPIC,
    Offer,
    action_body,
    devnull,
    emit,
    node_config,
    process_cpu_s,
    run_node_until_stopped,
    unpack_acks,
)
from _gossip_receiver import AckingEventLog, ReceiverStats, drop_counts, signed_validator

from keys import TOPIC_ACTIONS, Identity, ReplayWindow, seal
from node import (
    CharacterNode,
    EnvelopeGate,
    P2PHost,
    PublishError,
    PubsubMessage,
    now_ms,
    open_p2p_host,
)


class Window:
    """At most ``size`` messages unacknowledged; a message unacked for too long is lost."""

    def __init__(self, size: int, loss_timeout_s: float) -> None:
        self.size = size
        self.loss_timeout_ns = int(loss_timeout_s * 1e9)
        self.slots = trio.Semaphore(size)
        self.pending: dict[int, int] = {}
        self.latencies_ns: list[int] = []
        self.lost = 0
        self.sent = 0
        self.all_sent = False
        self.done = trio.Event()
        self.first_send_s = 0.0
        self.last_ack_s = 0.0
        self.publisher_cpu_s = 0.0
        self.receiver_cpu_s: float | None = None

    def sending(self, index: int) -> None:
        if not self.sent:
            self.first_send_s = time.perf_counter()
        self.sent += 1
        self.pending[index] = time.time_ns()

    def acked(self, index: int, received_ns: int) -> None:
        sent_ns = self.pending.pop(index, None)
        if sent_ns is None:
            return  # late, duplicate, or from an earlier window
        self.latencies_ns.append(received_ns - sent_ns)
        self.last_ack_s = time.perf_counter()
        self.slots.release()
        self._check_done()

    def reap(self) -> None:
        cutoff = time.time_ns() - self.loss_timeout_ns
        for index, sent_ns in list(self.pending.items()):
            if sent_ns < cutoff:
                del self.pending[index]
                self.lost += 1
                self.slots.release()
        self._check_done()

    def finish_sending(self) -> None:
        self.all_sent = True
        self._check_done()

    def _check_done(self) -> None:
        if self.all_sent and not self.pending:
            self.done.set()


class Publisher:
    def __init__(
        self,
        host: P2PHost,
        send: Callable[[int], Awaitable[None]],
        receiver_pid: int | None,
    ) -> None:
        self.host = host
        self.send = send
        self.receiver_pid = receiver_pid
        self.window: Window | None = None
        self.next_index = 0
        self.send_errors = 0

    async def read_gossip_acks(self, acks: trio.MemoryReceiveChannel[PubsubMessage]) -> None:
        async for msg in acks:
            self._acked(unpack_acks(msg.data))

    async def read_tcp_acks(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            while data := await stream.receive_some(65536):
                buffer += data
                usable = len(buffer) - len(buffer) % ACK_PAIR.size
                self._acked(unpack_acks(buffer[:usable]))
                buffer = buffer[usable:]

    def _acked(self, acks: list[tuple[int, int]]) -> None:
        window = self.window
        if window is None:
            return
        for index, received_ns in acks:
            window.acked(index, received_ns)

    async def run(
        self, size: int, count: int, *, timeout_s: float, loss_timeout_s: float
    ) -> Window:
        window = Window(size, loss_timeout_s)
        self.window = window
        own_cpu = time.process_time()
        rx_cpu = process_cpu_s(self.receiver_pid) if self.receiver_pid else None
        with trio.move_on_after(timeout_s):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reaper, window)
                for _ in range(count):
                    await window.slots.acquire()
                    index = self.next_index
                    self.next_index += 1
                    window.sending(index)
                    try:
                        await self.send(index)
                    except PublishError:
                        self.send_errors += 1
                window.finish_sending()
                await window.done.wait()
                nursery.cancel_scope.cancel()
        window.publisher_cpu_s = time.process_time() - own_cpu
        rx_end = process_cpu_s(self.receiver_pid) if self.receiver_pid else None
        if rx_cpu is not None and rx_end is not None:
            window.receiver_cpu_s = rx_end - rx_cpu
        self.window = None
        return window

    @staticmethod
    async def _reaper(window: Window) -> None:
        while True:
            await trio.sleep(0.05)
            window.reap()


def summarise(window: Window, count: int) -> dict[str, Any]:
    lat = sorted(window.latencies_ns)
    acked = len(lat)
    elapsed = max(window.last_ack_s - window.first_send_s, 1e-9) if acked else 0.0
    return {
        "window": window.size,
        "count": count,
        "sent": window.sent,
        "acked": acked,
        "lost": window.lost,
        "unfinished": count - acked - window.lost,
        "elapsed_s": round(elapsed, 4),
        "msg_per_s": round(acked / elapsed, 1) if acked else 0.0,
        "p50_ms": round(_percentile(lat, 50) / 1e6, 3) if lat else None,
        "p99_ms": round(_percentile(lat, 99) / 1e6, 3) if lat else None,
        "mean_ms": round(sum(lat) / acked / 1e6, 3) if lat else None,
        "publisher_cpu_us": round(window.publisher_cpu_s / acked * 1e6, 1) if acked else None,
        "receiver_cpu_us": (
            round(window.receiver_cpu_s / acked * 1e6, 1)
            if acked and window.receiver_cpu_s is not None
            else None
        ),
    }


def _percentile(sorted_values: list[int], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


@dataclass(frozen=True)
class Plan:
    """What the publisher is told: where the receiver is and what to measure."""

    addr: str
    ack_port: int
    ack_mode: str
    receiver_pid: int | None
    windows: list[tuple[int, int]]
    warmup: int
    timeout_s: float
    loss_timeout_s: float


async def publish(variant: str, plan: Plan) -> None:
    if variant == "node":
        with tempfile.TemporaryDirectory(prefix="rv-bench-") as tmp, devnull() as sink:
            events = AckingEventLog(sink, None, ReceiverStats())
            config = node_config("BenchPublisher", Path(tmp) / "publisher")
            async with trio.open_nursery() as nursery:
                node: CharacterNode = await nursery.start(
                    run_node_until_stopped, config, events, nursery.cancel_scope
                )

                async def send_node(index: int) -> None:
                    await node.publish("action", action_body(index))

                wire = _signed_size(node.identity)
                await _drive(node.host, send_node, TOPIC_ACTIONS, plan, wire)
                nursery.cancel_scope.cancel()
        return

    identity = Identity.from_seed(os.urandom(32))
    async with open_p2p_host(identity.seed, [LISTEN], meshsub=Offer.meshsub) as host:
        # Like a node, the publisher subscribes to what it publishes (so it is in the
        # receiver's mesh) and, for signed envelopes, runs the same topic validator.
        if variant == "raw":

            async def send_raw(index: int) -> None:
                await host.publish(RAW_TOPIC, RAW_INDEX.pack(index) + RAW_PAD)

            own = await host.subscribe(RAW_TOPIC)
            await _drive(host, send_raw, RAW_TOPIC, plan, PAYLOAD_SIZE, own)
            return

        gate = EnvelopeGate(identity.peer_id, ReplayWindow(), now_ms)
        validator = signed_validator(TOPIC_ACTIONS, gate, ReceiverStats())
        host.set_validator(TOPIC_ACTIONS, validator)
        own = await host.subscribe(TOPIC_ACTIONS)

        seq = 0

        async def send_signed(index: int) -> None:
            nonlocal seq
            data = seal(
                identity,
                kind="action",
                channel=TOPIC_ACTIONS,
                seq=seq,
                ts_ms=now_ms(),
                body=action_body(index),
            )
            seq += 1
            await host.publish(TOPIC_ACTIONS, data)

        await _drive(host, send_signed, TOPIC_ACTIONS, plan, _signed_size(identity), own)


async def _discard(messages: trio.MemoryReceiveChannel[PubsubMessage]) -> None:
    async for _ in messages:
        pass


def _signed_size(identity: Identity) -> int:
    sample = seal(
        identity,
        kind="action",
        channel=TOPIC_ACTIONS,
        seq=1000,
        ts_ms=now_ms(),
        body=action_body(1000),
    )
    return len(sample)


async def _drive(
    host: P2PHost,
    send: Callable[[int], Awaitable[None]],
    topic: str,
    plan: Plan,
    wire_size: int,
    own_copies: trio.MemoryReceiveChannel[PubsubMessage] | None = None,
) -> None:
    publisher = Publisher(host, send, plan.receiver_pid)
    async with trio.open_nursery() as nursery:
        if own_copies is not None:
            # py-libp2p hands our own publishes to our subscription; the node's consumer
            # skips them by origin, so dropping them here is the same work.
            nursery.start_soon(_discard, own_copies)
        if plan.ack_mode == "tcp":
            stream = await trio.open_tcp_stream("127.0.0.1", plan.ack_port)
            nursery.start_soon(publisher.read_tcp_acks, stream)
        else:
            nursery.start_soon(publisher.read_gossip_acks, await host.subscribe(ACK_TOPIC))
        await host.dial(plan.addr)
        if not await host.wait_for_topic_peers(topic, 1, timeout=PEER_WAIT_S):
            emit({"type": "error", "error": f"receiver never subscribed to {topic}"})
            nursery.cancel_scope.cancel()
            return
        # Probe until one message makes the round trip (the mesh may need a heartbeat).
        probes = 0
        while probes < PROBE_ATTEMPTS:
            probes += 1
            window = await publisher.run(
                1, 1, timeout_s=PROBE_TIMEOUT_S * 2, loss_timeout_s=PROBE_TIMEOUT_S
            )
            if window.latencies_ns:
                break
        else:
            emit({"type": "error", "error": f"no round trip after {probes} probes"})
            nursery.cancel_scope.cancel()
            return
        limits = {"timeout_s": plan.timeout_s, "loss_timeout_s": plan.loss_timeout_s}
        if plan.warmup:
            await publisher.run(32, plan.warmup, **limits)
        for size, count in plan.windows:
            window = await publisher.run(size, count, **limits)
            emit(
                {
                    "type": "result",
                    "probes": probes,
                    "wire_bytes": wire_size,
                    "send_errors": publisher.send_errors,
                    **summarise(window, count),
                }
            )
        emit({"type": "done", "drops": drop_counts(host)})
        nursery.cancel_scope.cancel()


# -- entry point --------------------------------------------------------------------


def parse_plan(text: str) -> list[tuple[int, int]]:
    plan = []
    for part in text.split(","):
        size, _, count = part.partition(":")
        plan.append((int(size), int(count)))
    return plan
