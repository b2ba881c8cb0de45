"""A running character: its host, its topics, its database, its control socket.

:func:`run_node` wires the pieces together and runs until cancelled (Ctrl-C, SIGTERM).
Protocol decisions live in the pure modules (``keys``, :mod:`node.peering`); this module
is the trio glue that feeds them.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose trio-stubs shadow trio's own annotations.
    from trio_typing import TaskStatus

from keys import (
    PROTO_SYNC,
    TOPIC_ACTIONS,
    TOPIC_CONTEXTS,
    TOPIC_DIRECTORY,
    EnvelopeError,
    Identity,
    ReplayWindow,
    Verified,
    load_or_create_key,
    peer_id_from_str,
    seal,
    verify,
)
from keys.cli import KEY_FILE_NAME
from keys.errors import PublishError, RoomverseError
from node import _libp2p
from node.agent.agent import Agent
from node.anti_entropy import AntiEntropy
from node.batching import receive_batch
from node.commands import handle_control
from node.config import CharacterConfig
from node.control import serve_control
from node.data_dir import DataDirBusy, lock_data_dir
from node.directory_service import DirectoryService, DirectorySettings
from node.events import EventLog
from node.gate import EnvelopeGate
from node.gossip_health import GossipHealth
from node.lan_addrs import advertisable_addrs
from node.liveness import Liveness
from node.mdns import open_mdns_discovery
from node.name_card import check_card
from node.peering import PeerBook, run_dialer
from node.polling import poll_until
from node.rejections import RejectionLog
from node.store import ReplayMark, Store
from node.visits.service import transports_for

logger = logging.getLogger(__name__)

PUBLIC_TOPICS = {TOPIC_ACTIONS: "action", TOPIC_CONTEXTS: "context"}

DB_FILE = "character.db"
GREETING_WAIT_S = 10.0
RECEIVE_BATCH = 256
DIRECTORY_DIAL_TARGET = 16
"""Peers learned from the directory are dialled only while we have fewer connections."""
LEAVE_TIMEOUT_S = 3.0


def now_ms() -> int:
    return int(time.time() * 1000)


EnvelopeListener = Callable[[int, Verified], None]


@dataclass(frozen=True, slots=True)
class NodeOptions:
    passphrase: str | None = None
    greet: bool = True
    spectator: bool = False
    """A node with a key but no character (the firehose): it joins, listens, keeps the
    directory and serves anti-entropy, but writes no entry, greets nobody, never visits."""
    mdns_interval: float = 2.0
    directory: DirectorySettings = field(default_factory=DirectorySettings)
    turn_timeout_s: float = 120.0
    """How long a visit waits for the partner's next line (their engine is thinking)."""
    dashboard: str | None = None
    """``HOST:PORT`` of the owner's dashboard (``--dashboard``); None serves none."""
    dashboard_public: bool = False
    """Allow the dashboard on a non-loopback address (``--dashboard-public``)."""


class CharacterNode:
    def __init__(
        self,
        config: CharacterConfig,
        identity: Identity,
        store: Store,
        host: _libp2p.P2PHost,
        events: EventLog,
        replay: ReplayWindow,
        directory_settings: DirectorySettings,
        turn_timeout_s: float = 120.0,
        spectator: bool = False,
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
        self.envelope_listeners: list[EnvelopeListener] = []
        self._record_lock = trio.Lock()
        """Called with ``(cursor, envelope)`` for every new public envelope once it is
        stored (the cursor is its row id: it only grows). The firehose fans out from here."""
        self.directory = DirectoryService(
            identity,
            config,
            store,
            events,
            self.rejections,
            announce=not spectator,
            settings=directory_settings,
            gossip=self._gossip_directory,
            public_addrs=self.public_addrs,
            on_present=self._directory_peer_present,
            on_changed=lambda entries, via: self.gossip_health.entries_arrived(
                entries, via, now_ms()
            ),
        )
        self.gossip_health = GossipHealth(identity.peer_id_str, self._reset_gossip_link)
        self.anti_entropy = AntiEntropy(host, self.directory, self._seal_sync)
        self.liveness = Liveness(host, self._lost_connection)
        self.spectator = spectator
        self.agent = None if spectator else Agent(self, turn_timeout_s=turn_timeout_s)

    # -- outgoing -----------------------------------------------------------------

    async def publish(self, kind: str, body: Mapping[str, Any]) -> tuple[Verified, int]:
        """Seal, store, then publish one envelope once it is on the wire.

        Returns the envelope and how many peers subscribed to its topic it went to: 0 means
        nobody was listening (stored here, reached no one), which callers must surface.
        """
        topic = TOPIC_ACTIONS if kind == "action" else TOPIC_CONTEXTS
        # One publisher at a time keeps seq order equal to wire order.
        async with self._publish_lock:
            raw = await self.seal(kind, topic, body)
            envelope = verify(raw, channel=topic, now_ms=now_ms())
            await self.store.record_sent(envelope, envelope.ts_ms)
            recipients = len(self.host.pubsub_peers(topic))
            await self.host.publish(topic, raw)
        self.events.emit(
            "action_sent",
            kind=kind,
            seq=envelope.seq,
            recipients=recipients,
            body=_public_body(envelope.body),
        )
        return envelope, recipients

    async def seal(self, kind: str, channel: str, body: Mapping[str, Any]) -> bytes:
        """Sign ``body`` as our next envelope (every channel shares one seq counter)."""
        seq = await self.store.next_seq()
        return seal(self.identity, kind=kind, channel=channel, seq=seq, ts_ms=now_ms(), body=body)

    async def _gossip_directory(self, bodies: list[dict[str, Any]]) -> None:
        async with self._publish_lock:
            for body in bodies:
                await self.host.publish(
                    TOPIC_DIRECTORY, await self.seal("directory", TOPIC_DIRECTORY, body)
                )

    async def _seal_sync(self, channel: str, body: Mapping[str, Any]) -> bytes:
        return await self.seal("directory", channel, body)

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
        # One batch at a time from store to listeners: the actions and contexts consumers
        # run concurrently, and listeners (the firehose) must see cursors in order (and the
        # replay marks written must never be older than ones already written).
        async with self._record_lock:
            marks = []
            for sender in {env.sender for env in accepted}:
                snapshot = self.replay.snapshot(sender)
                if snapshot is not None:
                    marks.append(ReplayMark(sender, snapshot[0], snapshot[1]))
            cursors = await self.store.record_received(accepted, marks, now)
            for envelope, cursor in zip(accepted, cursors, strict=True):
                if cursor is None:
                    continue
                self.received += 1
                for listener in self.envelope_listeners:
                    listener(cursor, envelope)
                self.events.emit(
                    "action_received",
                    **{"from": envelope.sender_str},
                    kind=envelope.kind,
                    seq=envelope.seq,
                    body=_public_body(envelope.body),
                )

    async def consume_directory(self, messages: trio.MemoryReceiveChannel[Any]) -> None:
        """Merge the entries gossiped on the directory topic (not stored as envelopes:
        the directory snapshot is what persists)."""
        while True:
            for msg in await receive_batch(messages, RECEIVE_BATCH):
                if msg.origin == self.identity.peer_id:
                    continue
                try:
                    envelope = self.gate.admit(TOPIC_DIRECTORY, msg.origin, msg.data)
                except EnvelopeError as exc:
                    self.rejections.reject(msg.origin, TOPIC_DIRECTORY, exc)
                    continue
                await self.directory.absorb_gossip(envelope.body, msg.origin)

    async def _reset_gossip_link(self, peer_id: str) -> None:
        await self.host.disconnect(peer_id)
        self._lost_connection(peer_id, "gossip_not_arriving")

    def _lost_connection(self, peer_id: str, why: str) -> None:
        """A dead connection was closed: say so, and redial if it was the last one."""
        self.events.emit("peer_unresponsive", peer_id=peer_id, reason=why)
        entry = self.directory.directory.get(peer_id_from_str(peer_id))
        if entry is not None:
            self._directory_peer_present(peer_id, entry.addrs)

    def _directory_peer_present(self, peer_id: str, addrs: tuple[str, ...]) -> None:
        if self.host.is_connected(peer_id):
            return
        if len(self.host.connected_peers()) >= DIRECTORY_DIAL_TARGET:
            return
        transports = transports_for(peer_id, addrs)
        if transports:
            self.discovered(peer_id, transports, "directory")

    # -- peers ----------------------------------------------------------------------

    async def watch_peers(self, nursery: trio.Nursery, greet: bool) -> None:
        async for event in self.host.peer_events:
            if event.kind == "connected":
                self.events.emit("peer_connected", peer_id=event.peer_id, addr=event.remote_addr)
                self.gossip_health.connected(event.peer_id, now_ms())
                if self.book.path_is_back(event.peer_id, trio.current_time()):
                    self._wake_dialer_now()
                nursery.start_soon(self.anti_entropy.sync_on_connect, event.peer_id)
                if greet and event.peer_id not in self._greeted:
                    self._greeted.add(event.peer_id)
                    nursery.start_soon(self.greet, event.peer_id)
            else:
                if not self.host.is_connected(event.peer_id):
                    self.events.emit("peer_disconnected", peer_id=event.peer_id)
                    self.gossip_health.disconnected(event.peer_id)
                    self.book.disconnected(event.peer_id, trio.current_time())

    async def greet(self, peer_id: str) -> None:
        """Wave at a newly connected character once it listens on the actions topic and
        is in the directory (a spectator such as the firehose is not: nobody waves at it)."""
        if not await self.host.wait_for_subscriber(TOPIC_ACTIONS, peer_id, GREETING_WAIT_S):
            return
        peer = peer_id_from_str(peer_id)
        if not await poll_until(lambda: peer in self.directory.directory, GREETING_WAIT_S):
            return
        try:
            await self.publish("action", {"type": "gesture", "name": "wave", "to": peer_id})
        except RoomverseError as exc:
            logger.warning("greeting %s failed: %s", peer_id, exc)

    def discovered(self, peer_id: str, addrs: tuple[str, ...], source: str) -> None:
        if self.book.want(peer_id, addrs, source, trio.current_time(), permanent=False):
            self.events.emit("peer_discovered", peer_id=peer_id, addrs=list(addrs), via=source)
            self._wake_dialer_now()

    def _wake_dialer_now(self) -> None:
        with contextlib.suppress(trio.WouldBlock):
            self._wake_dialer.send_nowait(None)  # one pending wake-up is enough

    async def dial(self, peer_id: str, addrs: tuple[str, ...]) -> str:
        return await self.host.dial_peer(peer_id, addrs)

    def public_addrs(self) -> list[str]:
        bound = self.host.listen_addrs()
        return [f"{a}/p2p/{self.identity.peer_id_str}" for a in advertisable_addrs(bound)]


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
        if not options.spectator:
            check_card(config, identity)
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
                node = CharacterNode(
                    config,
                    identity,
                    store,
                    host,
                    events,
                    replay,
                    options.directory,
                    options.turn_timeout_s,
                    options.spectator,
                )
                known = await node.directory.load()
                if known:
                    events.emit("directory_restored", entries=known)
                yield node
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
    async with open_character(config, events, options) as node:
        try:
            await _run_character(node, config, events, options, task_status)
        finally:
            # A clean stop (signal, Ctrl-C) says `left`, so peers need not wait for the
            # lease; bounded, and shielded from the cancellation that got us here.
            with trio.CancelScope(shield=True), trio.move_on_after(LEAVE_TIMEOUT_S):
                await node.directory.leave()
                await node.host.flush(LEAVE_TIMEOUT_S)
    events.emit("stopped", peer_id=node.identity.peer_id_str)


async def _run_character(
    node: CharacterNode,
    config: CharacterConfig,
    events: EventLog,
    options: NodeOptions,
    task_status: TaskStatus[CharacterNode],
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signals, nursery.cancel_scope, events)
        for topic in PUBLIC_TOPICS:
            node.host.set_validator(topic, node.validator(topic))
            messages = await node.host.subscribe(topic)
            nursery.start_soon(node.consume, topic, messages)
        node.host.set_validator(TOPIC_DIRECTORY, node.validator(TOPIC_DIRECTORY))
        nursery.start_soon(node.consume_directory, await node.host.subscribe(TOPIC_DIRECTORY))
        node.host.set_stream_handler(PROTO_SYNC, node.anti_entropy.serve)
        nursery.start_soon(node.watch_peers, nursery, options.greet and not options.spectator)
        await nursery.start(
            serve_control, config.resolved_data_dir(), lambda request: handle_control(node, request)
        )
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
        await nursery.start(node.directory.run)
        nursery.start_soon(node.anti_entropy.run_periodically, nursery)
        nursery.start_soon(node.liveness.run, nursery)
        nursery.start_soon(node.gossip_health.run)
        if node.agent is not None:
            await nursery.start(node.agent.run)
        if options.dashboard is not None:
            from node.dashboard import serve_dashboard  # quart loads only when asked for

            await nursery.start(
                partial(
                    serve_dashboard,
                    node,
                    options.dashboard,
                    allow_public=options.dashboard_public,
                    events=events,
                )
            )
        events.emit(
            "ready",
            peer_id=node.identity.peer_id_str,
            name=config.name,
            addrs=node.public_addrs(),
            mdns=config.network.mdns,
            data_dir=str(config.resolved_data_dir()),
        )
        task_status.started(node)


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
