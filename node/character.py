"""A running character's behaviour: what it publishes, what it accepts, which peers it wants.

:class:`CharacterNode` is handed its identity, store, host and event log already open (see
:mod:`node.process` for how a process opens them and starts its tasks). Protocol decisions
live in the pure modules (``keys``, :mod:`node.net.dialing`); this class is the trio glue that
feeds them.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import trio

from keys import (
    BODIES,
    TOPIC_ACTIONS,
    TOPIC_CONTEXTS,
    TOPIC_DIRECTORY,
    EnvelopeError,
    Identity,
    Replayed,
    ReplayWindow,
    StaleTimestamp,
    Verified,
    join_bodies,
    peer_id_from_str,
    seal,
    verify,
)
from keys.errors import RoomverseError
from node import _libp2p
from node.agent.agent import Agent, Collaborators
from node.catch_up.service import Absorbed, CatchUp
from node.clock import now_ms, poll_until
from node.config import CharacterConfig
from node.directory.anti_entropy import AntiEntropy
from node.directory.replica import DirectoryService, DirectorySettings
from node.engine.shared import SharedEngineSlot
from node.errors import PublishError
from node.events import EventLog
from node.net.dialing import PeerBook
from node.net.gossip_health import GossipHealth
from node.net.lan_addrs import advertisable_addrs
from node.net.liveness import Liveness
from node.souvenirs.wire import MCP_BODIES
from node.storage.store import ReplayMark, Store
from node.visits.messages import VISIT_BODIES
from node.visits.service import transports_for
from node.wire.batching import receive_batch
from node.wire.clock_skew import ClockSkew
from node.wire.gate import EnvelopeGate
from node.wire.rejections import RejectionLog
from registry_crdt import DIRECTORY_BODIES

logger = logging.getLogger(__name__)

GREETING_WAIT_S = 10.0
RECEIVE_BATCH = 256
CAUGHT_UP_REMEMBERED = 4096
DIRECTORY_DIAL_TARGET = 16
"""Peers learned from the directory are dialled only while we have fewer connections."""
BODIES_SPOKEN = join_bodies(BODIES, DIRECTORY_BODIES, VISIT_BODIES, MCP_BODIES)
"""The body schema of every kind a character seals or takes from gossip."""


EnvelopeListener = Callable[[int, Verified], None]


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
        shared_engine: SharedEngineSlot | None = None,
        listed: bool = False,
    ) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self.host = host
        self.events = events
        self.replay = replay
        self.clock_skew = ClockSkew(events)
        self.rejections = RejectionLog(events, clock_skew=self.clock_skew)
        self.book = PeerBook(identity.peer_id_str)
        self._greeted: set[str] = set()
        self.gate = EnvelopeGate(
            identity.peer_id,
            replay,
            now_ms,
            bodies=BODIES_SPOKEN,
            observe=self.clock_skew.envelope,
        )
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
            announce=not spectator or listed,
            takes_visits=not spectator,
            settings=directory_settings,
            gossip=self._gossip_directory,
            public_addrs=self.public_addrs,
            on_present=self._directory_peer_present,
            on_changed=lambda entries, via: self.gossip_health.entries_arrived(
                entries, via, now_ms()
            ),
            peer_offset_ms=self.clock_skew.peer_offset_ms,
        )
        self.gossip_health = GossipHealth(identity.peer_id_str, self._reset_gossip_link)
        self.anti_entropy = AntiEntropy(
            host, self.directory, self._seal_sync, clock_skew=self.clock_skew
        )
        self.catch_up = CatchUp(host, store, identity.peer_id, self.accept_relayed, events)
        self._caught_up: OrderedDict[tuple[bytes | None, int | None], None] = OrderedDict()
        """The newest envelopes catch-up brought (their gossip copy may still come)."""
        self.liveness = Liveness(host, self._lost_connection)
        self.spectator = spectator
        self.agent: Agent | None = None
        if not spectator:
            collaborators = Collaborators(
                identity=identity,
                config=config,
                events=events,
                store=store,
                host=host,
                directory=self.directory,
                seal=self.seal,
                publish=self.publish,
                reject=self.rejections.reject,
            )
            self.agent = Agent(
                collaborators, turn_timeout_s=turn_timeout_s, shared_engine=shared_engine
            )
            reactions = self.agent.reactions
            self.envelope_listeners.append(lambda _cursor, envelope: reactions.heard(envelope))

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
        if kind == "context" and self.agent is not None:
            self.agent.reactions.heard(envelope)  # our owner talking to our character
        return envelope, recipients

    async def seal(self, kind: str, channel: str, body: Mapping[str, Any]) -> bytes:
        """Sign ``body`` as our next envelope (every channel shares one seq counter)."""
        seq = await self.store.next_seq()
        return seal(
            self.identity,
            kind=kind,
            channel=channel,
            seq=seq,
            ts_ms=now_ms(),
            body=body,
            bodies=BODIES_SPOKEN,
        )

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
                self._refused(origin, topic, exc)
                return False
            return True

        return validate

    async def consume(self, topic: str, messages: trio.MemoryReceiveChannel[Any]) -> None:
        """Verify, store and report what arrives on ``topic``, in batches."""
        while True:
            await self._accept_batch(topic, await receive_batch(messages, RECEIVE_BATCH))

    async def _accept_batch(self, topic: str, batch: list[_libp2p.PubsubMessage]) -> None:
        accepted: list[Verified] = []
        for msg in batch:
            if msg.origin == self.identity.peer_id:
                continue
            try:
                accepted.append(self.gate.admit(topic, msg.origin, msg.data))
            except EnvelopeError as exc:
                self._refused(msg.origin, topic, exc)
        await self._record(accepted)

    def _refused(self, origin: bytes, topic: str, error: EnvelopeError) -> None:
        """Log a refused gossip message, unless catch-up brought it first (then gossip
        delivering it too is no fault of anyone's: it is counted, not logged)."""
        if isinstance(error, Replayed) and (error.sender, error.seq) in self._caught_up:
            self.catch_up.counters.gossip_after_catch_up += 1
            return
        self.rejections.reject(origin, topic, error)

    async def accept_relayed(self, envelopes: Sequence[tuple[str, bytes]], relay: str) -> Absorbed:
        """Public envelopes a peer relayed to us (catch-up: :mod:`node.catch_up`), verified
        like gossip: signature, channel, timestamp window and replay window; the author
        need not be the peer that relayed it. What we hold already is a duplicate, not an
        error; one too old for the envelope window is dropped quietly (it is old because it
        was relayed late, not because a clock is off)."""
        relay_id = peer_id_from_str(relay)
        accepted: list[Verified] = []
        duplicates = refused = 0
        now = now_ms()
        for channel, raw in envelopes:
            try:
                envelope = verify(
                    raw, channel=channel, now_ms=now, replay=self.replay, bodies=BODIES_SPOKEN
                )
            except (Replayed, StaleTimestamp):
                duplicates += 1
                continue
            except EnvelopeError as exc:
                self.rejections.reject(relay_id, channel, exc)
                refused += 1
                continue
            if envelope.sender == self.identity.peer_id or not self.replay.accept(
                envelope.sender, envelope.seq
            ):
                duplicates += 1
                continue
            accepted.append(envelope)
            self._caught_up[(envelope.sender, envelope.seq)] = None
            while len(self._caught_up) > CAUGHT_UP_REMEMBERED:
                self._caught_up.popitem(last=False)
        stored = await self._record(accepted, via="catch_up")
        return Absorbed(stored, duplicates + len(accepted) - stored, refused)

    async def _record(self, accepted: Sequence[Verified], via: str = "gossip") -> int:
        """Store newly accepted envelopes and show them to listeners and the event log;
        returns how many were new (the store drops duplicates)."""
        if not accepted:
            return 0
        stored = 0
        # One batch at a time from store to listeners: the actions and contexts consumers
        # and catch-up run concurrently, and listeners (the firehose) must see cursors in
        # order (and the replay marks written must never be older than ones already written).
        async with self._record_lock:
            marks = []
            for sender in {env.sender for env in accepted}:
                snapshot = self.replay.snapshot(sender)
                if snapshot is not None:
                    marks.append(ReplayMark(sender, snapshot[0], snapshot[1]))
            cursors = await self.store.record_received(accepted, marks, now_ms())
            for envelope, cursor in zip(accepted, cursors, strict=True):
                if cursor is None:
                    continue
                stored += 1
                self.received += 1
                for listener in self.envelope_listeners:
                    listener(cursor, envelope)
                fields: dict[str, Any] = {"from": envelope.sender_str}
                if via != "gossip":
                    fields["via"] = via
                self.events.emit(
                    "action_received",
                    **fields,
                    kind=envelope.kind,
                    seq=envelope.seq,
                    body=_public_body(envelope.body),
                )
        return stored

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
                nursery.start_soon(self.catch_up.ask_on_connect, event.peer_id)
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
        entry = self.directory.directory.get(peer)
        if entry is not None and not entry.card.capabilities.accepts_visits:
            return  # a bridge: not a character to wave at
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


__all__ = [
    "CharacterNode",
    "PublishError",
]
