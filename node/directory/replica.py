"""The node's replica of the online directory (DESIGN §4), kept alive.

:class:`DirectoryService` owns a :class:`registry_crdt.Directory` and does what the pure
CRDT cannot: write our own entry (at start, on every heartbeat, on a status change, and
``left`` at a clean shutdown), take in entries from gossip and sync, persist the
snapshot to SQLite (debounced), notice leases lapsing, and report every visible change
as a ``directory_changed`` event. It needs no libp2p: the network is reached through
the ``gossip`` callback, so it runs the same in tests with no host at all. What a
reader is shown of the entries (rows, search, order) is :mod:`node.directory.listing`.
Leases are read on this node's clock, from when it learned each entry
(:mod:`registry_crdt.presence`): a peer whose clock is off still reads online while it
renews.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from trio_typing import TaskStatus

from keys import TOPIC_DIRECTORY, Identity
from keys.errors import ConfigError
from node.clock import now_ms
from node.config import CharacterConfig
from node.directory.listing import PRESENT, rows
from node.directory.name_card import card_for
from node.errors import PublishError
from node.events import EventLog
from node.storage.store import Store
from node.wire.rejections import RejectionLog
from registry_crdt import (
    HLC,
    ZERO,
    ApplyResult,
    CorruptSnapshot,
    Delta,
    Directory,
    DirectoryError,
    Entry,
    NameCard,
    OffsetOf,
    Outcome,
    Presence,
    Souvenir,
    Status,
    from_body,
    make_entry,
    make_vouched_entry,
    to_bodies,
    verify_entry,
)
from registry_crdt.limits import (
    MAX_ADDRS,
)

logger = logging.getLogger(__name__)

OWNER_STATUSES = (Status.ONLINE, Status.AWAY, Status.ASLEEP)
TICK_S = 1.0
GC_EVERY_TICKS = 60
MIN_REWRITE_INTERVAL_S = 1.0
OWN_STATUS_KEY = "own_status"
"""``meta`` row: index into OWNER_STATUSES of the status the owner chose last."""
MAX_DIRECTORY_ENTRIES = 10_000
"""Entries a replica holds at most; new peers beyond it are refused (``directory_full``)."""
ABSORB_YIELD_EVERY = 32
"""Entries verified between two checkpoints: a big sync message never stalls the loop."""


@dataclass(frozen=True, slots=True)
class DirectorySettings:
    heartbeat_s: float = 15.0
    """How often our entry is re-signed with a fresh lease."""
    lease_s: float = 45.0
    """How long others believe us online without hearing from us (≥ 2 heartbeats)."""
    sync_interval_s: float = 5.0
    """How often anti-entropy runs with one random peer (besides on every new connection)."""
    save_delay_s: float = 1.0
    """Changes are written to SQLite at most this often."""

    def check(self) -> None:
        if not 0.2 <= self.heartbeat_s <= 600:
            raise ConfigError("--heartbeat", "must be between 0.2 and 600 seconds")
        if not 2 * self.heartbeat_s <= self.lease_s <= 3600:
            raise ConfigError("--lease", "must be at least two heartbeats and at most 3600 s")
        if not 0.2 <= self.sync_interval_s <= 3600:
            raise ConfigError("--sync-interval", "must be between 0.2 and 3600 seconds")


@dataclass
class Absorbed:
    """What one batch of received entries did to the replica."""

    changed: int = 0
    duplicate: int = 0
    stale: int = 0
    refused: int = 0


@dataclass
class SyncCounters:
    ok: int = 0
    failed: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    entries_received: int = 0
    last_error: str | None = None
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What we last reported about a peer, to report only visible changes."""

    presence: Presence
    name: str
    addrs: tuple[str, ...]


Gossip = Callable[[list[dict[str, Any]]], Awaitable[None]]
OnPresent = Callable[[str, tuple[str, ...]], None]
OnChanged = Callable[[Sequence[Entry], str], None]


class DirectoryService:
    def __init__(
        self,
        identity: Identity,
        config: CharacterConfig,
        store: Store,
        events: EventLog,
        rejections: RejectionLog,
        *,
        announce: bool = True,
        takes_visits: bool = True,
        settings: DirectorySettings,
        gossip: Gossip,
        public_addrs: Callable[[], list[str]],
        on_present: OnPresent = lambda peer, addrs: None,
        on_changed: OnChanged = lambda entries, via: None,
        clock_ms: Callable[[], int] = now_ms,
        peer_offset_ms: OffsetOf | None = None,
    ) -> None:
        self.identity = identity
        self._peer_offset_ms = peer_offset_ms
        """How far our clock is ahead of a peer's (measured: ClockSkew); leases of entries
        from peers are read with it. None: entries received count as written now."""
        self.config = config
        self.store = store
        self.events = events
        self.rejections = rejections
        self.announce = announce
        self.takes_visits = takes_visits
        """False for a listed spectator (a bridge): its card says it takes no visits."""
        """False for a spectator: it keeps and serves the directory but is not in it."""
        self.settings = settings
        self._gossip = gossip
        self._public_addrs = public_addrs
        self._on_present = on_present
        self._on_changed = on_changed
        self.clock_ms = clock_ms
        self.directory = Directory()
        self.status = Status.ONLINE
        self.souvenirs: tuple[Souvenir, ...] = ()
        """What our card says we lend (the agent sets it once its plugins are up, then
        signs the entry anew with :meth:`write_own`)."""
        self.own: Entry | None = None
        self.sync = SyncCounters()
        self.changes_by_source: dict[str, int] = {}
        """Entries that changed our replica, by how they came (gossip, sync)."""
        self._hlc = HLC(ZERO)
        self._seen: dict[bytes, _Seen] = {}
        self._write_lock = trio.Lock()
        self._dirty = trio.Event()
        self._rewrite = trio.Event()
        self._saved_version = -1

    # -- start and stop ----------------------------------------------------------------

    async def load(self) -> int:
        """Restore the chosen status and the last snapshot from SQLite; return how many
        entries the snapshot held. A snapshot that cannot be read is reported and
        dropped (peers resend everything)."""
        chosen = await self.store.get_meta(OWN_STATUS_KEY)
        if chosen is not None and 0 <= chosen < len(OWNER_STATUSES):
            self.status = OWNER_STATUSES[chosen]  # away / asleep survive a restart
        data = await self.store.load_directory()
        if data is None:
            return 0
        try:
            self.directory = Directory.restore(data, self.clock_ms())
        except CorruptSnapshot as exc:
            self.events.emit("directory_snapshot_refused", error=str(exc))
            return 0
        own = self.directory.get(self.identity.peer_id)
        if own is not None:
            self._hlc = HLC(own.clock)
        self._saved_version = self.directory.version
        self._report_changes(self.directory.entries(), via="snapshot")
        return len(self.directory)

    async def leave(self) -> None:
        """The clean-shutdown path: write ``left`` (a tombstone), save, then tell peers
        (saving first: the caller's time limit may cut the gossip short)."""
        if not self.announce:
            await self.save()
            return
        entry = await self.write_own(Status.LEFT, gossip=False)
        await self.save()
        await self._gossip_entry(entry)

    # -- our own entry ------------------------------------------------------------------

    async def write_own(self, status: Status | None = None, *, gossip: bool = True) -> Entry:
        """Sign our entry anew (fresh lease, current addresses), apply and gossip it."""
        async with self._write_lock:
            if status is not None and status is not Status.LEFT and status != self.status:
                self.status = status
                await self.store.set_meta(OWN_STATUS_KEY, OWNER_STATUSES.index(status))
            now = self.clock_ms()
            addrs = self._public_addrs()[:MAX_ADDRS]
            clock = self._hlc.tick(now)
            entry = make_entry(
                self.identity,
                self._card(addrs, now),
                addrs,
                status or self.status,
                clock,
                int(self.settings.lease_s * 1000),
                now,
            )
            self.directory.apply(entry, now)
            self.own = entry
            self._changed([entry], "self")
            if gossip:
                await self._gossip_entry(entry)
            return entry

    async def vouch(
        self, handle: str, card: NameCard, urls: Sequence[str], lease_s: float
    ) -> Entry:
        """Sign, as this node (a bridge), the entry of the legacy HTTP participant it calls
        ``handle`` (``card.id`` must be its :func:`registry_crdt.legacy_peer_id`), online
        for ``lease_s``; apply and gossip it. Vouching again renews the lease: nothing
        here renews it, so a participant that stops registering goes offline by itself.
        Raises :class:`registry_crdt.DirectoryUsageError` for an entry peers would refuse."""
        async with self._write_lock:
            now = self.clock_ms()
            entry = make_vouched_entry(
                self.identity,
                handle,
                card,
                list(urls),
                Status.ONLINE,
                self._hlc.tick(now),
                int(lease_s * 1000),
                now,
            )
            self.directory.apply(entry, now)
            self._changed([entry], "self")
        await self._gossip_entry(entry)
        return entry

    async def _gossip_entry(self, entry: Entry) -> None:
        try:
            await self._gossip(to_bodies(Delta((entry.raw,))))
        except PublishError as exc:
            # Stored and signed; peers get it by anti-entropy. Say so, do not fail.
            logger.warning("directory entry not gossiped: %s", exc)
            self.events.emit("directory_publish_failed", error=str(exc))

    def _card(self, addrs: Sequence[str], now: int) -> NameCard:
        card = card_for(self.config, self.identity, addrs, now, self.souvenirs)
        if self.takes_visits:
            return card
        return replace(card, capabilities=replace(card.capabilities, accepts_visits=False))

    # -- entries from peers -------------------------------------------------------------

    async def absorb_gossip(self, body: Mapping[str, Any], origin: bytes) -> None:
        """Take in the body of a verified envelope from the directory topic: a delta."""
        try:
            message = from_body(body)
            if not isinstance(message, Delta):
                raise DirectoryError(
                    f"only deltas are gossiped, not a {type(message).__name__}",
                    reason="not_a_delta",
                )
        except DirectoryError as exc:
            self.rejections.reject(origin, TOPIC_DIRECTORY, exc)
            return
        await self.absorb(message.entries, "gossip", origin)

    async def absorb(self, raws: Sequence[bytes], via: str, origin: bytes) -> Absorbed:
        """Merge entries received from ``origin`` (gossip or sync); refusals are logged.

        Yields to the event loop every ABSORB_YIELD_EVERY entries (a signature check is
        ~0.2 ms), and refuses peers it does not hold once MAX_DIRECTORY_ENTRIES are.
        """
        result = Absorbed()
        changed: list[Entry] = []
        for i, raw in enumerate(raws):
            if i and i % ABSORB_YIELD_EVERY == 0:
                await trio.lowlevel.checkpoint()
            try:
                outcome = self._receive(raw, self.clock_ms())
            except DirectoryError as exc:
                result.refused += 1
                self.rejections.reject(origin, f"directory/{via}", exc)
                continue
            if outcome.changed and outcome.entry is not None:
                result.changed += 1
                changed.append(outcome.entry)
            elif outcome.outcome is Outcome.DUPLICATE:
                result.duplicate += 1
            else:
                result.stale += 1
        if changed:
            self.changes_by_source[via] = self.changes_by_source.get(via, 0) + len(changed)
            self._changed(changed, via)
        return result

    def _receive(self, raw: bytes, now: int) -> ApplyResult:
        if len(self.directory) < MAX_DIRECTORY_ENTRIES:
            return self.directory.receive(raw, now, offset_of=self._peer_offset_ms)
        entry = verify_entry(raw, now)
        if entry.peer not in self.directory:
            raise DirectoryError(
                f"the directory holds {MAX_DIRECTORY_ENTRIES} entries; no new peers",
                reason="directory_full",
            )
        result = self.directory.apply(entry, now, offset_of=self._peer_offset_ms)
        return ApplyResult(result.outcome, result.changed, entry)

    def _changed(self, entries: Sequence[Entry], via: str) -> None:
        own_peer = self.identity.peer_id
        for entry in entries:
            if entry.peer == own_peer and entry is not self.own:
                # Someone holds a newer entry of ours (a previous run's, or a `left`):
                # move our clock past it and re-assert ourselves.
                self._hlc.observe(entry.clock, self.clock_ms())
                self._rewrite.set()
        self._dirty.set()
        self._report_changes(entries, via)
        self._on_changed(entries, via)

    def _report_changes(self, entries: Sequence[Entry], via: str) -> None:
        now = self.clock_ms()
        for entry in entries:
            # The copy held knows when we learned it: its lease is read on our clock.
            self._report(entry, self.directory.presence(entry, now), via)

    def _report(self, entry: Entry, presence: Presence, via: str) -> None:
        seen = _Seen(presence, entry.card.name, entry.addrs)
        before = self._seen.get(entry.peer)
        if before == seen:
            return
        self._seen[entry.peer] = seen
        self.events.emit(
            "directory_changed",
            peer_id=entry.peer_str,
            name=entry.card.name,
            presence=presence.value,
            was=before.presence.value if before else None,
            addrs=list(entry.addrs),
            via=via,
        )
        if presence in PRESENT and entry.peer != self.identity.peer_id:
            self._on_present(entry.peer_str, entry.addrs)

    # -- upkeep --------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Heartbeat, lapse detection, garbage collection and saving, until cancelled."""
        async with trio.open_nursery() as nursery:
            if self.announce:
                await self.write_own()
                nursery.start_soon(self._heartbeat)
            nursery.start_soon(self._watch_leases)
            nursery.start_soon(self._save_when_dirty)
            task_status.started()

    async def _heartbeat(self) -> None:
        while True:
            with trio.move_on_after(self.settings.heartbeat_s):
                await self._rewrite.wait()
            early = self._rewrite.is_set()
            self._rewrite = trio.Event()
            await self.write_own()
            if early:
                # Re-asserting ourselves over a newer entry of ours: at most once a
                # second, so two nodes run with one key cannot start a gossip storm.
                await trio.sleep(MIN_REWRITE_INTERVAL_S)

    async def _watch_leases(self) -> None:
        ticks = 0
        while True:
            await trio.sleep(TICK_S)
            ticks += 1
            now = self.clock_ms()
            for entry in self.directory.entries():
                presence = entry.presence(now)
                seen = self._seen.get(entry.peer)
                if seen is not None and seen.presence != presence:
                    self._report(entry, presence, "lease")
            if ticks % GC_EVERY_TICKS == 0:
                for peer in self.directory.collect_garbage(now):
                    self._seen.pop(peer, None)
                    self._dirty.set()

    async def _save_when_dirty(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = trio.Event()
            await self.save()
            await trio.sleep(self.settings.save_delay_s)  # debounce: at most one save per delay

    async def save(self) -> None:
        version = self.directory.version
        if version == self._saved_version:
            return
        await self.store.save_directory(self.directory.snapshot(), self.clock_ms())
        self._saved_version = version

    # -- reading --------------------------------------------------------------------------

    def digest(self) -> str:
        """A hash of everything held: equal on replicas that hold equal entries."""
        return hashlib.sha256(self.directory.snapshot()).hexdigest()[:32]

    def listing(self, search: str | None = None) -> list[dict[str, Any]]:
        """Every entry held as :mod:`node.directory.listing` shows it, present peers first."""
        return rows(
            self.directory.entries(),
            own_peer=self.identity.peer_id,
            now_ms=self.clock_ms(),
            search=search,
        )

    def summary(self) -> dict[str, Any]:
        """The replica's own state: how much it holds, its digest, our status, syncs."""
        now = self.clock_ms()
        return {
            "held": len(self.directory),
            "present": len(self.directory.online(now)),
            "digest": self.digest(),
            "own_status": self.status.value,
            "changes_by_source": dict(self.changes_by_source),
            "own_clock": None if self.own is None else list(_clock_pair(self.own)),
            "sync": {
                "ok": self.sync.ok,
                "failed": self.sync.failed,
                "bytes_sent": self.sync.bytes_sent,
                "bytes_received": self.sync.bytes_received,
                "entries_received": self.sync.entries_received,
                "last_error": self.sync.last_error,
                "failed_by_reason": dict(self.sync.by_reason),
            },
        }


def _clock_pair(entry: Entry) -> tuple[int, int]:
    return entry.clock.wall_ms, entry.clock.counter


__all__ = ["Absorbed", "DirectoryService", "DirectorySettings"]
