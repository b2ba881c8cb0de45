"""A running character: its host, its topics, its database, its control socket.

:func:`run_node` wires the pieces together and runs until cancelled (Ctrl-C, SIGTERM).
Protocol decisions live in the pure modules (``keys``, :mod:`node.peering`); this module
is the trio glue that feeds them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose trio-stubs shadow trio's own annotations.
    from trio_typing import TaskStatus

from keys import (
    TOPIC_ACTIONS,
    TOPIC_CONTEXTS,
    EnvelopeError,
    Identity,
    ReplayWindow,
    Verified,
    load_or_create_key,
    seal,
    verify,
)
from keys.cli import KEY_FILE_NAME
from keys.errors import ControlError, LocalError, PublishError, RoomverseError
from node import _libp2p
from node.batching import receive_batch
from node.config import CharacterConfig
from node.control import serve_control
from node.events import EventLog
from node.gate import EnvelopeGate
from node.lan_addrs import advertisable_addrs
from node.mdns import open_mdns_discovery
from node.peering import PeerBook, run_dialer
from node.rejections import RejectionLog
from node.store import ReplayMark, Store

logger = logging.getLogger(__name__)

PUBLIC_TOPICS = {TOPIC_ACTIONS: "action", TOPIC_CONTEXTS: "context"}

DB_FILE = "character.db"
GREETING_WAIT_S = 10.0
RECEIVE_BATCH = 256


class DataDirBusy(LocalError):
    """Another node already runs on this data directory."""


def now_ms() -> int:
    return int(time.time() * 1000)


@contextmanager
def lock_data_dir(data_dir: Path) -> Any:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    fd = os.open(data_dir / "node.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirBusy(f"another node is already running on {data_dir}") from None
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class NodeOptions:
    passphrase: str | None = None
    greet: bool = True
    mdns_interval: float = 2.0


class CharacterNode:
    def __init__(
        self,
        config: CharacterConfig,
        identity: Identity,
        store: Store,
        host: _libp2p.P2PHost,
        events: EventLog,
        replay: ReplayWindow,
    ) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self.host = host
        self.events = events
        self.replay = replay
        self.rejections = RejectionLog(events)
        self.book = PeerBook(identity.peer_id_str)
        self._greeted: set[str] = set()
        self.gate = EnvelopeGate(identity.peer_id, replay, now_ms)
        self._wake_dialer, self.dialer_wakeups = trio.open_memory_channel[None](1)
        self._publish_lock = trio.Lock()
        self.received = 0

    # -- outgoing -----------------------------------------------------------------

    async def publish(self, kind: str, body: Mapping[str, Any]) -> tuple[Verified, int]:
        """Seal, store, then publish one envelope once it is on the wire.

        Returns the envelope and how many peers subscribed to its topic it went to: 0 means
        nobody was listening (stored here, reached no one), which callers must surface.
        """
        topic = TOPIC_ACTIONS if kind == "action" else TOPIC_CONTEXTS
        # One publisher at a time keeps seq order equal to wire order.
        async with self._publish_lock:
            seq = await self.store.next_seq()
            ts = now_ms()
            raw = seal(self.identity, kind=kind, channel=topic, seq=seq, ts_ms=ts, body=body)
            envelope = verify(raw, channel=topic, now_ms=ts)
            await self.store.record_sent(envelope, ts)
            recipients = len(self.host.pubsub_peers(topic))
            await self.host.publish(topic, raw)
        self.events.emit(
            "action_sent",
            kind=kind,
            seq=seq,
            recipients=recipients,
            body=_public_body(envelope.body),
        )
        return envelope, recipients

    # -- incoming -----------------------------------------------------------------

    def validator(self, topic: str) -> _libp2p.Validator:
        def validate(origin: bytes, data: bytes) -> bool:
            try:
                self.gate.validate(topic, origin, data)
            except EnvelopeError as exc:
                self.rejections.reject(origin, topic, exc)
                return False
            return True

        return validate

    async def consume(self, topic: str, messages: trio.MemoryReceiveChannel[Any]) -> None:
        """Verify, store and report what arrives on ``topic``, in batches."""
        while True:
            await self._accept_batch(topic, await receive_batch(messages, RECEIVE_BATCH))

    async def _accept_batch(self, topic: str, batch: list[_libp2p.PubsubMessage]) -> None:
        accepted: list[Verified] = []
        now = now_ms()
        for msg in batch:
            if msg.origin == self.identity.peer_id:
                continue
            try:
                accepted.append(self.gate.admit(topic, msg.origin, msg.data))
            except EnvelopeError as exc:
                self.rejections.reject(msg.origin, topic, exc)
        if not accepted:
            return
        marks = []
        for sender in {env.sender for env in accepted}:
            snapshot = self.replay.snapshot(sender)
            if snapshot is not None:
                marks.append(ReplayMark(sender, snapshot[0], snapshot[1]))
        fresh = await self.store.record_received(accepted, marks, now)
        for envelope, is_new in zip(accepted, fresh, strict=True):
            if not is_new:
                continue
            self.received += 1
            self.events.emit(
                "action_received",
                **{"from": envelope.sender_str},
                kind=envelope.kind,
                seq=envelope.seq,
                body=_public_body(envelope.body),
            )

    # -- peers ----------------------------------------------------------------------

    async def watch_peers(self, nursery: trio.Nursery, greet: bool) -> None:
        async for event in self.host.peer_events:
            if event.kind == "connected":
                self.events.emit("peer_connected", peer_id=event.peer_id, addr=event.remote_addr)
                if greet and event.peer_id not in self._greeted:
                    self._greeted.add(event.peer_id)
                    nursery.start_soon(self.greet, event.peer_id)
            else:
                if not self.host.is_connected(event.peer_id):
                    self.events.emit("peer_disconnected", peer_id=event.peer_id)
                    self.book.disconnected(event.peer_id, trio.current_time())

    async def greet(self, peer_id: str) -> None:
        """Wave at a newly connected character once it listens on the actions topic."""
        with trio.move_on_after(GREETING_WAIT_S):
            # py-libp2p has no event for "peer subscribed": poll its table.
            while peer_id not in self.host.pubsub_peers(TOPIC_ACTIONS):  # noqa: ASYNC110
                await trio.sleep(0.05)
            try:
                await self.publish("action", {"type": "gesture", "name": "wave", "to": peer_id})
            except RoomverseError as exc:
                logger.warning("greeting %s failed: %s", peer_id, exc)

    def discovered(self, peer_id: str, addrs: tuple[str, ...], source: str) -> None:
        if self.book.want(peer_id, addrs, source, trio.current_time(), permanent=False):
            self.events.emit("peer_discovered", peer_id=peer_id, addrs=list(addrs), via=source)
            with contextlib.suppress(trio.WouldBlock):
                self._wake_dialer.send_nowait(None)  # one pending wake-up is enough

    async def dial(self, peer_id: str, addrs: tuple[str, ...]) -> str:
        return await self.host.dial_peer(peer_id, addrs)

    # -- control socket -------------------------------------------------------------

    async def handle_control(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request["cmd"]
        if cmd == "publish":
            kind = request.get("kind")
            body = request.get("body")
            if (
                not isinstance(kind, str)
                or kind not in PUBLIC_TOPICS.values()
                or not isinstance(body, dict)
            ):
                return {"ok": False, "error": 'publish needs "kind" (action|context) and "body"'}
            body = _decode_binary_fields(body)
            envelope, recipients = await self.publish(kind, body)
            return {"ok": True, "seq": envelope.seq, "ts": envelope.ts_ms, "recipients": recipients}
        if cmd == "status":
            return {"ok": True, **self.status()}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def status(self) -> dict[str, Any]:
        return {
            "peer_id": self.identity.peer_id_str,
            "name": self.config.name,
            "addrs": self.public_addrs(),
            "peers": sorted(self.host.connected_peers()),
            "topic_peers": {
                topic: sorted(self.host.pubsub_peers(topic)) for topic in PUBLIC_TOPICS
            },
            "received": self.received,
            "drops": {
                "libp2p_subscription": self.host.drops.subscription_overflow,
                "buffer": self.host.drops.buffer_overflow,
                "publish_timeouts": self.host.drops.publish_timeouts,
            },
            "rejected": dict(self.rejections.by_reason),
        }

    def public_addrs(self) -> list[str]:
        bound = self.host.listen_addrs()
        return [f"{a}/p2p/{self.identity.peer_id_str}" for a in advertisable_addrs(bound)]


def _decode_binary_fields(body: dict[str, Any]) -> dict[str, Any]:
    """JSON cannot carry bytes: the control socket sends ``<field>_b64`` instead."""
    out = dict(body)
    for key in [k for k in out if k.endswith("_b64")]:
        value = out.pop(key)
        try:
            out[key[: -len("_b64")]] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise ControlError(f"{key} is not valid base64") from None
    return out


def _public_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """Body as shown in events: bytes (image data) summarised, never dumped."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        out[key] = f"<{len(value)} bytes>" if isinstance(value, bytes) else value
    return out


@asynccontextmanager
async def open_character(
    config: CharacterConfig, events: EventLog, options: NodeOptions
) -> AsyncIterator[CharacterNode]:
    data_dir = config.resolved_data_dir()
    with lock_data_dir(data_dir):
        identity, created = load_or_create_key(data_dir / KEY_FILE_NAME, options.passphrase)
        if created:
            events.emit("key_created", peer_id=identity.peer_id_str)
        store = Store(data_dir / DB_FILE)
        try:
            replay = ReplayWindow()
            for mark in await store.load_replay_marks():
                replay.restore(mark.sender, mark.hwm, mark.mask)

            def on_drop(topic: str, why: str) -> None:
                events.emit("dropped", topic=topic, reason=why)

            async with _libp2p.open_p2p_host(
                identity.seed, config.network.listen, on_drop=on_drop
            ) as host:
                yield CharacterNode(config, identity, store, host, events, replay)
        finally:
            store.close()


async def run_node(
    config: CharacterConfig,
    events: EventLog,
    options: NodeOptions | None = None,
    *,
    task_status: TaskStatus[CharacterNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one character until cancelled or until SIGINT/SIGTERM."""
    options = options or NodeOptions()
    async with open_character(config, events, options) as node, trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signals, nursery.cancel_scope, events)
        for topic in PUBLIC_TOPICS:
            node.host.set_validator(topic, node.validator(topic))
            messages = await node.host.subscribe(topic)
            nursery.start_soon(node.consume, topic, messages)
        nursery.start_soon(node.watch_peers, nursery, options.greet)
        await nursery.start(serve_control, config.resolved_data_dir(), node.handle_control)
        for addr in config.network.bootstrap:
            transport, peer_id = _libp2p.split_peer_addr(addr)
            node.book.want(peer_id, (transport,), "bootstrap", trio.current_time(), permanent=True)
        nursery.start_soon(
            lambda: run_dialer(
                node.book,
                node.dial,
                node.host.is_connected,
                node.dialer_wakeups,
                on_failure=lambda peer, why: events.emit("dial_failed", peer_id=peer, error=why),
            )
        )
        if config.network.mdns:
            await nursery.start(_run_mdns, node, options.mdns_interval)
        events.emit(
            "ready",
            peer_id=node.identity.peer_id_str,
            name=config.name,
            addrs=node.public_addrs(),
            mdns=config.network.mdns,
            data_dir=str(config.resolved_data_dir()),
        )
        task_status.started(node)
    events.emit("stopped", peer_id=node.identity.peer_id_str)


async def _run_mdns(
    node: CharacterNode,
    interval: float,
    *,
    task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    addrs = advertisable_addrs(node.host.listen_addrs())
    async with open_mdns_discovery(node.identity.peer_id_str, addrs, interval=interval) as mdns:
        task_status.started()
        async for peer in mdns.peers:
            node.discovered(peer.peer_id, peer.addrs, "mdns")


async def _stop_on_signals(scope: trio.CancelScope, events: EventLog) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            events.emit("stopping", signal=signal.Signals(signum).name)
            scope.cancel()
            return


__all__ = [
    "CharacterNode",
    "DataDirBusy",
    "NodeOptions",
    "PublishError",
    "open_character",
    "run_node",
]
