"""Leases read on the reader's clock (issue 18): a writer whose clock is off by anything
inside the envelope window reads online on every replica while it renews, offline a
lease after its last renewal, and replicas stay identical whatever their clocks."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import Identity
from registry_crdt import Clock, Directory, Entry, OffsetOf, Presence, Status, make_entry
from registry_crdt.limits import MAX_SKEW_MS, MINUTE_MS
from registry_crdt.presence import LATE_LEARNED_GRACE_MS
from registry_crdt.testing import identities, sample_card

NOW = 1_800_000_000_000
LEASE = 6_000
HEARTBEAT = 2_000
WRITER, OTHER = identities(2, seed=18)


def written(
    who: Identity = WRITER,
    at: int = NOW,
    *,
    skew: int = 0,
    status: Status = Status.ONLINE,
    counter: int = 0,
    lease: int = LEASE,
) -> Entry:
    """An entry written at true time ``at`` by a writer whose clock reads ``skew`` ms ahead."""
    wall = at + skew
    card = sample_card(who.peer_id_str)
    return make_entry(who, card, [], status, Clock(wall, counter), lease, wall)


@pytest.mark.parametrize("skew", [-90_000, +90_000, -MAX_SKEW_MS + LEASE, MAX_SKEW_MS])
def test_a_renewing_writer_is_online_whatever_its_clock(skew: int) -> None:
    directory = Directory()
    for beat in range(5):
        at = NOW + beat * HEARTBEAT
        directory.apply(written(at=at, skew=skew), at + 5)  # 5 ms on the wire
        for t in range(at + 5, at + 5 + HEARTBEAT, 250):
            assert directory.presence(WRITER.peer_id, t) is Presence.ONLINE, (skew, t)
    last = NOW + 4 * HEARTBEAT + 5
    assert directory.presence(WRITER.peer_id, last + LEASE - 1) is Presence.ONLINE
    assert directory.presence(WRITER.peer_id, last + LEASE) is Presence.OFFLINE
    assert directory.online(last + LEASE) == []


def test_before_the_fix_a_writer_behind_read_offline_at_once() -> None:
    # What issue 18 saw: the writer's own expiresAt is already past on a reader 90 s ahead.
    entry = written(skew=-90_000)
    assert entry.presence(NOW) is Presence.OFFLINE  # not held: the writer's clock
    directory = Directory()
    directory.apply(entry, NOW)
    assert directory.presence(entry, NOW) is Presence.ONLINE  # held: learned just now
    assert directory.get(WRITER.peer_id) == entry  # the same entry (same bytes)


def test_a_writer_ahead_reads_offline_a_lease_after_it_died_not_later() -> None:
    directory = Directory()
    directory.apply(written(skew=+90_000), NOW)
    assert directory.presence(WRITER.peer_id, NOW + LEASE) is Presence.OFFLINE
    # On its own clock it would have looked alive 90 s longer.
    assert written(skew=+90_000).presence(NOW + LEASE) is Presence.ONLINE


def test_status_and_tombstones_are_kept_and_only_the_lease_moves() -> None:
    directory = Directory()
    directory.apply(written(skew=-90_000, status=Status.AWAY), NOW)
    assert directory.presence(WRITER.peer_id, NOW) is Presence.AWAY
    directory.apply(written(at=NOW + 1, skew=-90_000, status=Status.LEFT), NOW + 1)
    assert directory.presence(WRITER.peer_id, NOW + 10 * LEASE) is Presence.LEFT


def test_a_duplicate_or_an_older_entry_does_not_renew_the_lease() -> None:
    directory = Directory()
    old, new = written(at=NOW), written(at=NOW + HEARTBEAT)
    directory.apply(new, NOW + HEARTBEAT)
    directory.apply(new, NOW + HEARTBEAT + 3_000)  # the same entry again, by sync
    directory.apply(old, NOW + HEARTBEAT + 3_000)  # an older one, late
    held = directory.get(WRITER.peer_id)
    assert held is not None and held.learned_ms == NOW + HEARTBEAT
    assert directory.presence(WRITER.peer_id, NOW + HEARTBEAT + LEASE) is Presence.OFFLINE


def test_an_entry_learned_long_after_it_was_written_is_not_revived() -> None:
    # A late joiner syncs a dead peer's last entry, written 20 minutes ago.
    directory = Directory()
    long_ago = NOW - 20 * MINUTE_MS
    directory.apply(written(at=long_ago), NOW)
    assert directory.presence(WRITER.peer_id, NOW) is Presence.OFFLINE
    # Inside the grace (the envelope window + a minute past its own expiry) it counts from
    # when we learned it, but never past that bound: here half a lease after learning.
    recent = NOW - LATE_LEARNED_GRACE_MS - LEASE // 2
    directory.apply(written(at=recent, counter=1), NOW)
    assert directory.presence(WRITER.peer_id, NOW + LEASE // 2 - 1) is Presence.ONLINE
    assert directory.presence(WRITER.peer_id, NOW + LEASE // 2) is Presence.OFFLINE


def offsets(**by_peer: int) -> OffsetOf:
    """``offset_of`` for the measured offsets given (``writer=``, ``other=``), in ms."""
    known = {WRITER.peer_id: by_peer.get("writer"), OTHER.peer_id: by_peer.get("other")}
    return lambda peer: known.get(peer)


def test_a_dead_peers_last_entry_handed_late_to_a_joiner_reads_offline() -> None:
    # Seen in the ten-node test: gossip handed a late joiner a killed peer's renewals
    # 20 s after the kill; read from their arrival, the dead peer was online for a lease.
    last = written(at=NOW - 20_000)
    for offset_of in (offsets(), offsets(writer=0), offsets(writer=+90)):
        late = Directory()
        late.receive(last.raw, NOW, offset_of=offset_of)
        assert late.presence(WRITER.peer_id, NOW) is Presence.OFFLINE


@pytest.mark.parametrize("skew", [-90_000, +90_000])
def test_a_measured_offset_reads_a_skewed_writers_lease_on_our_clock(skew: int) -> None:
    entry = written(skew=skew)
    unmeasured = Directory()
    unmeasured.receive(entry.raw, NOW + 40, offset_of=offsets())
    # Not measured: on the writer's clock (a writer behind reads lapsed at once).
    assert unmeasured.presence(WRITER.peer_id, NOW + 40) is written(skew=skew).presence(NOW + 40)
    measured = Directory()
    measured.receive(entry.raw, NOW + 40, offset_of=offsets(writer=-skew + 3))
    assert measured.presence(WRITER.peer_id, NOW + 40) is Presence.ONLINE
    # The lease runs from when it was written (NOW, on our clock), however late it came.
    assert measured.presence(WRITER.peer_id, NOW + 3 + LEASE - 1) is Presence.ONLINE
    assert measured.presence(WRITER.peer_id, NOW + 3 + LEASE) is Presence.OFFLINE


def test_an_entry_is_never_read_as_written_after_it_arrived() -> None:
    # A writer whose offset was measured long ago and whose clock jumped ahead since.
    directory = Directory()
    directory.receive(written(skew=+60_000).raw, NOW, offset_of=offsets(writer=0))
    held = directory.get(WRITER.peer_id)
    assert held is not None and held.learned_ms == NOW
    assert directory.presence(WRITER.peer_id, NOW + LEASE) is Presence.OFFLINE


def test_a_restored_snapshot_reads_on_the_writers_clock_until_the_next_renewal() -> None:
    directory = Directory()
    directory.apply(written(skew=-90_000), NOW)
    restored = Directory.restore(directory.snapshot(), NOW + 1000)
    held = restored.get(WRITER.peer_id)
    assert held is not None and held.learned_ms is None
    assert restored.presence(WRITER.peer_id, NOW + 1000) is Presence.OFFLINE
    restored.apply(written(at=NOW + HEARTBEAT, skew=-90_000), NOW + HEARTBEAT)
    assert restored.presence(WRITER.peer_id, NOW + HEARTBEAT) is Presence.ONLINE


def test_merge_keeps_when_the_other_replica_learned_an_entry() -> None:
    a, b = Directory(), Directory()
    b.apply(written(skew=-90_000), NOW)
    assert a.merge(b) == 1
    held = a.get(WRITER.peer_id)
    assert held is not None and held.learned_ms == NOW
    assert a.copy().presence(WRITER.peer_id, NOW + 1) is Presence.ONLINE


# --- determinism and convergence ------------------------------------------------------


def _history(skews: list[int], beats: int) -> list[tuple[int, Entry]]:
    """(true time written, entry) for two writers with the given clock skews."""
    out = []
    for beat in range(beats):
        for who, skew in zip((WRITER, OTHER), skews, strict=True):
            at = NOW + beat * HEARTBEAT + (0 if who is WRITER else 700)
            out.append((at, written(who, at, skew=skew, counter=beat)))
    return out


HISTORY_SKEWS = [-90_000, +90_000]
HISTORY = _history(HISTORY_SKEWS, 6)
CONVERGE = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@CONVERGE
@given(
    delays=st.lists(
        st.lists(st.integers(0, 1_500), min_size=len(HISTORY), max_size=len(HISTORY)),
        min_size=3,
        max_size=3,
    ),
    shuffle_seed=st.integers(0, 2**32 - 1),
)
def test_replicas_stay_identical_and_agree_on_who_is_online(
    delays: list[list[int]], shuffle_seed: int
) -> None:
    """Three replicas learn the same entries with different delays (up to 1.5 s, in any
    order): they hold identical bytes, and away from the moments a lease could lapse on
    one and not yet on another, they agree on the online set."""
    replicas = []
    learned_at: list[dict[bytes, int]] = []
    for replica_delays in delays:
        arrivals = [(at + d, entry) for (at, entry), d in zip(HISTORY, replica_delays, strict=True)]
        random.Random(shuffle_seed).shuffle(arrivals)
        arrivals.sort(key=lambda pair: pair[0])  # a replica takes them in its own time order
        directory = Directory()
        for arrived, entry in arrivals:
            directory.apply(entry, arrived)
        replicas.append(directory)
        learned_at.append({e.peer: e.learned_ms or 0 for e in directory.entries()})
    assert len({r.snapshot() for r in replicas}) == 1
    assert len({r.digest().items for r in replicas}) == 1

    last_write = max(at for at, _ in HISTORY)
    # While both writers renew, everyone reads both online.
    for t in range(NOW + 1_500 + 700, last_write, 333):
        for directory in replicas:
            assert {e.peer for e in directory.online(t)} == {WRITER.peer_id, OTHER.peer_id}
    # Once every replica's lease of the last renewals has run out, everyone reads offline.
    everyone_lapsed = max(max(seen.values()) for seen in learned_at) + LEASE
    for directory in replicas:
        assert directory.online(everyone_lapsed) == []
        assert directory.online(min(min(seen.values()) for seen in learned_at) + LEASE - 1)
