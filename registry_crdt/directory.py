"""The directory replica: a map PeerID → entry that merges as a CRDT (DESIGN §4).

Merge is last-writer-wins per peer on ``(clock, sha256(entry bytes))`` (see
:meth:`Entry.wins_over`): a total order on entries, so merging is commutative,
associative and idempotent, and an equivocating signer (two entries, one clock) is
resolved the same way on every replica. Each peer has exactly one possible signer (see
:mod:`registry_crdt.entry`), so this is the design's "(clock, signer)" order.

Time enters only through ``now_ms``: :meth:`Directory.apply` refuses clocks too far
ahead and entries already past their retention, :meth:`Directory.collect_garbage`
forgets them, and the views read lapsed leases as offline. :meth:`Directory.merge` is
the pure lattice join, for replicas whose entries were admitted already.

Each replica also notes when, on its own clock, the version it holds of each peer was
written (``Entry.learned_ms``: the writer's clock moved by the measured offset between
the two clocks; see :meth:`~Directory.apply`), and reads leases from then on its own
clock (:mod:`registry_crdt.presence`). That note is local: it is never sent, never in a
digest or snapshot, and never decides a merge.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from keys import Malformed, canonical, peer_id_from_public_key
from registry_crdt import _schema as check
from registry_crdt.entry import Entry, Presence, check_clock, held, key_of, verify_entry
from registry_crdt.errors import (
    CorruptSnapshot,
    DirectoryError,
    DirectoryUsageError,
    FutureClock,
)
from registry_crdt.limits import (
    KEY_SPACE,
    MAX_ENTRY_BYTES,
    MAX_SUMMARY_BITS,
    SUMMARY_HASH_BYTES,
)
from registry_crdt.messages import FULL_RANGE, Delta, Diff, Digest, Summary

SNAPSHOT_FORMAT: Final = "roomverse/directory-snapshot"
SNAPSHOT_VERSION: Final = 1
_PEER_ID_PREFIX: Final = peer_id_from_public_key(bytes(32))[:6]
# Summaries are folded from buckets this fine, kept up to date on every change.
_FINE_SHIFT: Final = 32 - MAX_SUMMARY_BITS


class Outcome(StrEnum):
    """What :meth:`Directory.apply` did with an entry."""

    NEW = "new"  # first entry for this peer
    UPDATED = "updated"  # replaced an older entry
    DUPLICATE = "duplicate"  # the very entry already held
    STALE = "stale"  # older than the entry held; ignored
    EQUIVOCATION = "equivocation"  # same clock, other bytes: the signer equivocated
    BEYOND_HORIZON = "beyond_horizon"  # already past retention; ignored, never stored


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome, and whether the replica changed (an equivocation may go either way).

    :meth:`Directory.receive` also returns the entry it decoded (None for a duplicate).
    """

    outcome: Outcome
    changed: bool
    entry: Entry | None = None


OffsetOf = Callable[[bytes], int | None]
"""``offset_of(peer) -> ms`` this replica's clock is ahead of ``peer``'s, None if unknown."""


def _learned_ms(entry: Entry, now_ms: int, learned: bool, offset_of: OffsetOf | None) -> int | None:
    """When ``entry`` was written, on this replica's clock (see :meth:`Directory.apply`)."""
    if not learned:
        return None
    if offset_of is None:
        return now_ms
    offset = offset_of(entry.peer)
    return None if offset is None else min(entry.clock.wall_ms + offset, now_ms)


class Directory:
    """One replica of the directory. Pure state: no clock, no I/O."""

    __slots__ = ("_buckets", "_entries", "_held", "_order", "_stamps", "_summaries", "_version")

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        """Create a replica holding the join of ``entries`` (already verified)."""
        self._entries: dict[bytes, Entry] = {}
        self._stamps: dict[bytes, int] = {}
        self._held: set[bytes] = set()
        self._buckets: dict[int, int] = {}
        self._summaries: dict[int, Summary] = {}
        self._order: list[bytes] | None = None  # the peers, sorted; rebuilt when they change
        self._version = 0
        for entry in entries:
            self._join(entry, entry.learned_ms)

    # --- reading ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, peer: object) -> bool:
        return peer in self._entries

    def __iter__(self) -> Iterator[Entry]:
        """Iterate over the entries in PeerID order."""
        return iter(self.entries())

    def get(self, peer: bytes) -> Entry | None:
        """Return the entry held for ``peer``, if any (whatever its lease)."""
        return self._entries.get(peer)

    def entries(self) -> list[Entry]:
        """Return every entry held, tombstones and lapsed leases included, by PeerID."""
        return [self._entries[peer] for peer in sorted(self._entries)]

    def presence(self, peer: bytes | Entry, now_ms: int) -> Presence:
        """Return what to believe about ``peer`` now (offline if unknown or lapsed), the
        lease read from when this replica learned the entry, on the ``now_ms`` clock.

        Given an :class:`Entry`, read the copy held of that very version if there is one
        (it knows when it was learned), else the entry as it is.
        """
        if isinstance(peer, Entry):
            return self._held_copy(peer).presence(now_ms)
        found = self._entries.get(peer)
        return Presence.OFFLINE if found is None else found.presence(now_ms)

    def online(self, now_ms: int) -> list[Entry]:
        """Return the peers present now — online, away or asleep, lease unexpired."""
        return [
            entry
            for entry in self.entries()
            if entry.presence(now_ms) in (Presence.ONLINE, Presence.AWAY, Presence.ASLEEP)
        ]

    @property
    def version(self) -> int:
        """A local counter that grows with every change (not replicated; for deltas)."""
        return self._version

    def delta_since(self, version: int) -> Delta:
        """Return the entries stored after :attr:`version` was ``version``, oldest first."""
        changed = sorted((s, p) for p, s in self._stamps.items() if s > version)
        return Delta(tuple(self._entries[p].raw for _, p in changed))

    # --- changing -----------------------------------------------------------------------

    def apply(
        self,
        entry: Entry,
        now_ms: int,
        *,
        learned: bool = True,
        offset_of: OffsetOf | None = None,
    ) -> ApplyResult:
        """Merge one verified entry received (or written) at ``now_ms``.

        Raises :class:`FutureClock` if its clock is more than ``MAX_SKEW_MS`` ahead;
        ignores it (``BEYOND_HORIZON``) if replicas would already have forgotten it.

        When it is stored, this replica notes when, on its own clock, the entry was
        written (``learned_ms``), and reads its lease from there: with ``offset_of``,
        the writer's ``clock.wall_ms`` moved by how far this replica's clock is ahead of
        the writer's (None if that is not measured: the lease is then read on the
        writer's clock); without it, ``now_ms`` (our own entries, and callers that know
        the entry is fresh). With ``learned=False`` (an entry read back from disk), the
        writer's clock.
        """
        check_clock(entry.clock, now_ms)
        if now_ms >= entry.retain_until_ms:
            return ApplyResult(Outcome.BEYOND_HORIZON, False)
        return self._join(entry, _learned_ms(entry, now_ms, learned, offset_of))

    def receive(self, raw: bytes, now_ms: int, *, offset_of: OffsetOf | None = None) -> ApplyResult:
        """Verify wire bytes with :func:`verify_entry` and :meth:`apply` them.

        The very entry already held is recognised by its hash before any signature
        check, so gossip duplicates cost one SHA-256. Raises only ``DirectoryError``.
        """
        known = type(raw) is bytes and len(raw) <= MAX_ENTRY_BYTES
        if known and hashlib.sha256(raw).digest() in self._held:
            return ApplyResult(Outcome.DUPLICATE, False)
        entry = verify_entry(raw, now_ms)
        result = self.apply(entry, now_ms, offset_of=offset_of)
        return ApplyResult(result.outcome, result.changed, self._held_copy(entry))

    def merge(self, other: Directory) -> int:
        """Join ``other`` into this replica (no time checks); return how many peers changed.

        An entry taken from ``other`` keeps the time ``other`` learned it.
        """
        return sum(self._join(entry, entry.learned_ms).changed for entry in other._entries.values())

    def copy(self) -> Directory:
        """Return an independent replica with the same entries (and local version)."""
        twin = Directory()
        twin._entries = self._entries.copy()
        twin._stamps = self._stamps.copy()
        twin._held = self._held.copy()
        twin._buckets = self._buckets.copy()
        twin._order = self._order
        twin._version = self._version
        return twin

    def collect_garbage(self, now_ms: int) -> list[bytes]:
        """Forget entries past their retention (tombstones, lapsed leases); return the peers.

        Safe at any time: see :func:`registry_crdt.entry.retain_until` for why nothing
        forgotten here can come back.
        """
        gone = [p for p, e in self._entries.items() if now_ms >= e.retain_until_ms]
        for peer in gone:
            self._remove(peer)
        return sorted(gone)

    def _held_copy(self, entry: Entry) -> Entry:
        """The copy held of ``entry``'s very version (it knows when it was learned)."""
        mine = self._entries.get(entry.peer)
        return mine if mine is not None and mine.hash == entry.hash else entry

    def _join(self, entry: Entry, learned_ms: int | None) -> ApplyResult:
        current = self._entries.get(entry.peer)
        if current is None:
            self._store(held(entry, learned_ms), None)
            return ApplyResult(Outcome.NEW, True)
        if current.hash == entry.hash:
            return ApplyResult(Outcome.DUPLICATE, False)
        wins = entry.wins_over(current)
        if wins:
            self._store(held(entry, learned_ms), current)
        if entry.clock == current.clock:
            return ApplyResult(Outcome.EQUIVOCATION, wins)
        return ApplyResult(Outcome.UPDATED if wins else Outcome.STALE, wins)

    def _store(self, entry: Entry, old: Entry | None) -> None:
        if old is not None:
            self._unindex(old)
        else:
            self._order = None
        self._entries[entry.peer] = entry
        self._held.add(entry.hash)
        fine = key_of(entry.peer) >> _FINE_SHIFT
        self._buckets[fine] = self._buckets.get(fine, 0) ^ _bucket_hash(entry)
        self._version += 1
        self._stamps[entry.peer] = self._version
        self._summaries.clear()

    def _remove(self, peer: bytes) -> None:
        self._unindex(self._entries.pop(peer))
        self._order = None
        del self._stamps[peer]
        self._version += 1
        self._summaries.clear()

    def _unindex(self, entry: Entry) -> None:
        self._held.discard(entry.hash)
        fine = key_of(entry.peer) >> _FINE_SHIFT
        value = self._buckets[fine] ^ _bucket_hash(entry)
        if value:
            self._buckets[fine] = value
        else:
            del self._buckets[fine]

    # --- anti-entropy -------------------------------------------------------------------

    def summary(self, bits: int | None = None) -> Summary:
        """Return the XOR of entry hashes per bucket; ``bits`` defaults to ~8 entries each."""
        if bits is None:
            bits = auto_bits(len(self._entries))
        if not 0 <= bits <= MAX_SUMMARY_BITS:
            raise DirectoryUsageError(f"bits must be in 0..{MAX_SUMMARY_BITS}")
        cached = self._summaries.get(bits)
        if cached is None:
            folded = [0] * (1 << bits)
            shift = MAX_SUMMARY_BITS - bits
            for fine, value in self._buckets.items():
                folded[fine >> shift] ^= value
            hashes = b"".join(v.to_bytes(SUMMARY_HASH_BYTES, "big") for v in folded)
            cached = self._summaries[bits] = Summary(bits, hashes)
        return cached

    def digest(self, against: Summary | None = None) -> Digest:
        """Return what this replica holds: everything, or only the buckets where
        ``against`` (a peer's summary) differs from ours."""
        if against is None:
            ranges: tuple[tuple[int, int], ...] = FULL_RANGE
        else:
            mine = self.summary(against.bits)
            if mine.hashes == against.hashes:
                return Digest((), ())
            width = KEY_SPACE >> against.bits
            differing = [i for i in range(1 << against.bits) if mine.bucket(i) != against.bucket(i)]
            ranges = _merge_adjacent([(i * width, (i + 1) * width) for i in differing])
        return Digest(ranges, tuple(e.item for e in self._within(ranges)))

    def diff(self, remote: Digest) -> Diff:
        """Answer a peer's digest: entries it lacks or holds older, and peers we want."""
        send: list[Entry] = []
        want: list[bytes] = []
        listed = set()
        for item in remote.items:
            listed.add(item.peer)
            mine = self._entries.get(item.peer)
            if mine is None:
                want.append(item.peer)
                continue
            ours, theirs = (mine.clock, mine.item.hash), (item.clock, item.hash)
            if ours > theirs:
                send.append(mine)
            elif ours < theirs:
                want.append(item.peer)
        send.extend(entry for entry in self._within(remote.ranges) if entry.peer not in listed)
        send.sort(key=_by_peer)
        return Diff(tuple(e.raw for e in send), tuple(want))

    def _within(self, ranges: Iterable[tuple[int, int]]) -> Iterator[Entry]:
        """Yield the entries whose keys lie in the sorted ``ranges``, in PeerID order."""
        if self._order is None:
            self._order = sorted(self._entries)
        order = self._order
        for lo, hi in ranges:
            start = bisect_left(order, _key_bound(lo))
            stop = len(order) if hi >= KEY_SPACE else bisect_left(order, _key_bound(hi))
            for peer in order[start:stop]:
                yield self._entries[peer]

    def delta_for(self, want: Iterable[bytes]) -> Delta:
        """Return the entries held for the peers in ``want`` (the last step of a sync)."""
        found = (self._entries.get(peer) for peer in want)
        return Delta(tuple(entry.raw for entry in found if entry is not None))

    # --- persistence --------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Return every entry as canonical bytes: equal replicas give equal snapshots."""
        return canonical.packb(
            {
                "format": SNAPSHOT_FORMAT,
                "v": SNAPSHOT_VERSION,
                "entries": [entry.raw for entry in self.entries()],
            }
        )

    @classmethod
    def restore(cls, data: bytes, now_ms: int) -> Directory:
        """Rebuild a replica from :meth:`snapshot` bytes, re-verifying every entry.

        Entries now past retention, or ahead of a clock that went backwards, are left
        out (peers will resend them). Raises :class:`CorruptSnapshot` for anything else.
        When each entry was learned is not kept: restored leases read on the writer's
        clock until the peer's next renewal (see :mod:`registry_crdt.presence`).
        """
        try:
            decoded: Any = canonical.unpackb(data)
            body = check.fields(decoded, "snapshot", ("format", "v", "entries"))
            if body["format"] != SNAPSHOT_FORMAT or body["v"] != SNAPSHOT_VERSION:
                raise CorruptSnapshot("not a RoomVerse directory snapshot of version 1")
            raws = check.array(body["entries"], "snapshot.entries", len(data))
        except (Malformed, DirectoryError) as exc:
            raise CorruptSnapshot(f"unreadable snapshot: {exc}") from exc
        directory = cls()
        for i, raw in enumerate(raws):
            try:
                directory.apply(verify_entry(raw, now_ms), now_ms, learned=False)
            except FutureClock:
                continue
            except DirectoryError as exc:
                raise CorruptSnapshot(f"snapshot entry {i} refused: {exc}") from exc
        return directory


def auto_bits(count: int) -> int:
    """Return summary bits giving about 8 entries per bucket for ``count`` entries."""
    if count <= 8:
        return 0
    return min(MAX_SUMMARY_BITS, math.ceil(math.log2(count / 8)))


def _bucket_hash(entry: Entry) -> int:
    return int.from_bytes(entry.hash[:SUMMARY_HASH_BYTES], "big")


def _key_bound(key: int) -> bytes:
    """The smallest PeerID whose key is ``key`` (all Ed25519 PeerIDs share one prefix)."""
    return _PEER_ID_PREFIX + key.to_bytes(4, "big")


def _by_peer(entry: Entry) -> bytes:
    return entry.peer


def _merge_adjacent(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return tuple(merged)
