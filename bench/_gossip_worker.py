"""One side of ``bench/gossip.py``: a publisher or a receiver, each in its own process.

Run by ``bench/gossip.py``, never by hand (``python bench/_gossip_worker.py --help``).
Talks to its parent through stdout, one JSON object per line; stdin closing tells a
receiver to report and stop. Every wait is bounded.

Variants (both hosts subscribe to the topic, as nodes do):

* ``raw``: ``P2PHost.publish`` of a 256-byte payload, no validator, no envelope;
* ``signed``: ``keys.seal`` per message; both hosts run the node's topic validator
  (``keys.verify`` with transport peer and replay window, through the node's own
  :class:`node.gate.EnvelopeGate`), the consumer admits it through the same gate, as
  :class:`node.runtime.CharacterNode`
  does;
* ``node``: two real nodes (``node.runtime.run_node``, SQLite in a temporary data dir):
  ``CharacterNode.publish`` (seq, seal, self-verify, store, publish) on one side, the
  node's own validator + consumer (verify, store, ``action_received`` event) on the other.

The receiver acks every message, batched (one write carries every receipt waiting at
that moment), over one plain TCP connection (``--ack tcp``) or on a second, raw
gossipsub topic (``--ack gossip``); the publisher keeps at most ``window`` messages
unacknowledged. Latency is publish call → receipt at the receiver, both read with
``time.time_ns()`` (one machine, one clock); the receipt time travels back in the ack.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import trio

from keys import TOPIC_ACTIONS, EnvelopeError, Identity, ReplayWindow, seal
from keys.errors import PublishError
from node import _libp2p
from node.batching import receive_batch
from node.config import CharacterConfig, NetworkSettings
from node.events import EventLog
from node.gate import EnvelopeGate
from node.runtime import CharacterNode, NodeOptions, run_node

if TYPE_CHECKING:
    # As in node.runtime: trio-typing's stubs shadow trio's own annotations.
    from trio_typing import TaskStatus

VARIANTS = ("raw", "signed", "node")
RAW_TOPIC = "bench/raw"
ACK_TOPIC = "bench/ack"
LISTEN = "/ip4/127.0.0.1/tcp/0"
PAYLOAD_SIZE = 256
INDEX_DIGITS = 16
ACK_BATCH_MAX = 256
_ACK_PAIR = struct.Struct("<qq")
_RAW_INDEX = struct.Struct(">Q")
_RAW_PAD = bytes(range(256))[: PAYLOAD_SIZE - _RAW_INDEX.size]
_TEXT_PAD = "x" * (PAYLOAD_SIZE - INDEX_DIGITS)
PEER_WAIT_S = 15.0
PROBE_ATTEMPTS = 60
PROBE_TIMEOUT_S = 0.5
RECEIVE_BATCH = 256

AckSend = trio.MemorySendChannel[tuple[int, int]]


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def now_ms() -> int:
    return int(time.time() * 1000)


def action_body(index: int) -> dict[str, Any]:
    """A 256-character speak action whose first 16 characters are the message index."""
    return {"type": "speak", "text": f"{index:0{INDEX_DIGITS}d}{_TEXT_PAD}"}


def index_of_body(body: Any) -> int | None:
    try:
        return int(str(body["text"])[:INDEX_DIGITS])
    except (KeyError, TypeError, ValueError):
        return None


def pack_acks(acks: list[tuple[int, int]]) -> bytes:
    return b"".join(_ACK_PAIR.pack(i, t) for i, t in acks)


def unpack_acks(data: bytes) -> list[tuple[int, int]]:
    usable = len(data) - len(data) % _ACK_PAIR.size
    return [_ACK_PAIR.unpack_from(data, off) for off in range(0, usable, _ACK_PAIR.size)]


def node_config(name: str, data_dir: Path) -> CharacterConfig:
    return CharacterConfig(
        name=name,
        network=NetworkSettings(listen=(LISTEN,), bootstrap=(), mdns=False),
        data_dir=data_dir,
    )


def _devnull() -> TextIO:
    """Where the bench nodes write their JSON event lines (a real node writes to stdout)."""
    return open(os.devnull, "w")


async def run_node_until_stopped(
    config: CharacterConfig,
    events: EventLog,
    stop: trio.CancelScope,
    *,
    task_status: TaskStatus[CharacterNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``run_node`` (no greeting); when it stops (SIGTERM, SIGINT), ``stop`` is cancelled."""
    await run_node(config, events, NodeOptions(greet=False), task_status=task_status)
    stop.cancel()


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
    host: _libp2p.P2PHost,
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


def signed_validator(topic: str, gate: EnvelopeGate, stats: ReceiverStats) -> _libp2p.Validator:
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
    messages: trio.MemoryReceiveChannel[_libp2p.PubsubMessage], ack: AckSend, stats: ReceiverStats
) -> None:
    async for msg in messages:
        received_ns = time.time_ns()
        if len(msg.data) < _RAW_INDEX.size:
            stats.unparsed += 1
            continue
        stats.received += 1
        ack.send_nowait((_RAW_INDEX.unpack_from(msg.data)[0], received_ns))


async def consume_signed(
    messages: trio.MemoryReceiveChannel[_libp2p.PubsubMessage],
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
    async with _libp2p.open_p2p_host(identity.seed, [LISTEN]) as host:
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
        extra["drops"] = _drops(host)


async def _receive_node(stats: ReceiverStats, acks: AckPath, extra: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="rv-bench-") as tmp, _devnull() as sink:
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
            extra["drops"] = _drops(node.host)
            extra["node_received"] = node.received
            extra["node_rejected"] = dict(node.rejections.by_reason)
            stored = await node.store.envelopes(direction="in", limit=1_000_000)
            extra["stored_in"] = len(stored)
            nursery.cancel_scope.cancel()


def _drops(host: _libp2p.P2PHost) -> dict[str, int]:
    return {
        "libp2p_subscription": host.drops.subscription_overflow,
        "buffer": host.drops.buffer_overflow,
        "publish_timeouts": host.drops.publish_timeouts,
    }


# -- publisher ----------------------------------------------------------------------


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


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid``, all threads (None if unreadable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class Publisher:
    def __init__(
        self,
        host: _libp2p.P2PHost,
        send: Callable[[int], Awaitable[None]],
        receiver_pid: int | None,
    ) -> None:
        self.host = host
        self.send = send
        self.receiver_pid = receiver_pid
        self.window: Window | None = None
        self.next_index = 0
        self.send_errors = 0

    async def read_gossip_acks(
        self, acks: trio.MemoryReceiveChannel[_libp2p.PubsubMessage]
    ) -> None:
        async for msg in acks:
            self._acked(unpack_acks(msg.data))

    async def read_tcp_acks(self, stream: trio.SocketStream) -> None:
        buffer = b""
        async with stream:
            while data := await stream.receive_some(65536):
                buffer += data
                usable = len(buffer) - len(buffer) % _ACK_PAIR.size
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
        with tempfile.TemporaryDirectory(prefix="rv-bench-") as tmp, _devnull() as sink:
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
    async with _libp2p.open_p2p_host(identity.seed, [LISTEN]) as host:
        # Like a node, the publisher subscribes to what it publishes (so it is in the
        # receiver's mesh) and, for signed envelopes, runs the same topic validator.
        if variant == "raw":

            async def send_raw(index: int) -> None:
                await host.publish(RAW_TOPIC, _RAW_INDEX.pack(index) + _RAW_PAD)

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


async def _discard(messages: trio.MemoryReceiveChannel[_libp2p.PubsubMessage]) -> None:
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
    host: _libp2p.P2PHost,
    send: Callable[[int], Awaitable[None]],
    topic: str,
    plan: Plan,
    wire_size: int,
    own_copies: trio.MemoryReceiveChannel[_libp2p.PubsubMessage] | None = None,
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
        emit({"type": "done", "drops": _drops(host)})
        nursery.cancel_scope.cancel()


# -- entry point --------------------------------------------------------------------


def parse_plan(text: str) -> list[tuple[int, int]]:
    plan = []
    for part in text.split(","):
        size, _, count = part.partition(":")
        plan.append((int(size), int(count)))
    return plan


def main() -> int:
    parser = argparse.ArgumentParser(description="one side of bench/gossip.py")
    parser.add_argument("role", choices=("publish", "receive"))
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--ack", choices=("tcp", "gossip"), default="tcp", help="ack path")
    parser.add_argument(
        "--meshsub",
        choices=("1.2", "1.1"),
        default="1.2",
        help="1.1: leave /meshsub/1.2.0 (IDONTWANT) out of what node._libp2p offers",
    )
    parser.add_argument("--max-seconds", type=float, default=300.0, help="receiver lifetime")
    parser.add_argument("--receiver", help="the receiver's ready line, JSON (publish)")
    parser.add_argument("--plan", default="1:500,32:2000", help="window:count,... (publish)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=30.0, help="per window, seconds")
    parser.add_argument("--loss-timeout", type=float, default=2.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.meshsub == "1.1":
        # An experiment, not how nodes run: read at host creation by open_p2p_host.
        v12, v11, v10 = _libp2p.MESHSUB_PROTOCOLS
        if not str(v12).startswith("/meshsub/1.2"):
            parser.error(f"unexpected MESHSUB_PROTOCOLS {_libp2p.MESHSUB_PROTOCOLS}")
        _libp2p.MESHSUB_PROTOCOLS = (v11, v10)  # type: ignore[assignment]
    if args.role == "receive":
        trio.run(receive, args.variant, args.ack, args.max_seconds)
        return 0
    if not args.receiver:
        parser.error("publish needs --receiver")
    ready = json.loads(args.receiver)
    plan = Plan(
        addr=str(ready["addr"]),
        ack_port=int(ready["ack_port"]),
        ack_mode=args.ack,
        receiver_pid=int(ready["pid"]) if ready.get("pid") else None,
        windows=parse_plan(args.plan),
        warmup=args.warmup,
        timeout_s=args.timeout,
        loss_timeout_s=args.loss_timeout,
    )
    trio.run(publish, args.variant, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
