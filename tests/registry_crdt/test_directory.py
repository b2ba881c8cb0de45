"""One replica: apply outcomes, equivocation, leases, garbage collection, persistence."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import canonical
from registry_crdt import (
    Clock,
    CorruptSnapshot,
    Directory,
    DirectoryError,
    Entry,
    FutureClock,
    Outcome,
    Presence,
    Status,
    make_entry,
    retain_until,
)
from registry_crdt.limits import HORIZON_MS, MAX_LEASE_MS, MAX_SKEW_MS
from registry_crdt.testing import identities, sample_card, sync

NOW = 1_700_000_000_000
LEASE = 60_000
MINA, KAI, LEO = identities(3, seed=5)


def entry_of(
    who: Any = MINA,
    wall: int = NOW,
    counter: int = 0,
    status: Status = Status.ONLINE,
    lease: int = LEASE,
    addr: str = "/ip4/10.0.0.1/tcp/1",
) -> Entry:
    card = sample_card(who.peer_id_str)
    return make_entry(who, card, [addr], status, Clock(wall, counter), lease, wall)


# --- apply -----------------------------------------------------------------------------------


def test_apply_outcomes() -> None:
    directory = Directory()
    old, new = entry_of(wall=NOW), entry_of(wall=NOW + 1)
    assert directory.apply(old, NOW).outcome is Outcome.NEW
    assert directory.apply(old, NOW).outcome is Outcome.DUPLICATE
    result = directory.apply(new, NOW + 1)
    assert (result.outcome, result.changed) == (Outcome.UPDATED, True)
    result = directory.apply(old, NOW + 1)
    assert (result.outcome, result.changed) == (Outcome.STALE, False)
    assert directory.get(MINA.peer_id) == new
    assert len(directory) == 1 and MINA.peer_id in directory


def test_apply_refuses_future_clocks() -> None:
    ahead = entry_of(wall=NOW + MAX_SKEW_MS + 1)
    with pytest.raises(FutureClock):
        Directory().apply(ahead, NOW)
    assert Directory().apply(ahead, NOW + 1).outcome is Outcome.NEW


def test_receive_verifies_and_skips_known_bytes() -> None:
    directory = Directory()
    entry = entry_of()
    assert directory.receive(entry.raw, NOW).outcome is Outcome.NEW
    # The held entry is recognised by hash, before the (here failing) clock check.
    assert directory.receive(entry.raw, NOW - 10 * MAX_SKEW_MS).outcome is Outcome.DUPLICATE
    with pytest.raises(DirectoryError):
        directory.receive(entry.raw[:-1], NOW)


def test_equivocation_is_flagged_and_resolved_identically_in_every_order() -> None:
    twins = [
        entry_of(wall=NOW, status=status, addr=addr)
        for status in (Status.ONLINE, Status.AWAY)
        for addr in ("/ip4/10.0.0.1/tcp/1", "/ip4/10.0.0.2/tcp/1")
    ]
    assert len({t.raw for t in twins}) == 4 and len({t.clock for t in twins}) == 1
    winner = max(twins, key=lambda t: t.hash)
    snapshots = set()
    for order in itertools.permutations(twins):
        directory = Directory()
        outcomes = [directory.apply(t, NOW).outcome for t in order]
        assert outcomes[0] is Outcome.NEW
        assert all(o is Outcome.EQUIVOCATION for o in outcomes[1:])
        assert directory.get(MINA.peer_id) == winner
        snapshots.add(directory.snapshot())
    assert len(snapshots) == 1
    # A later clock ends the equivocation for everyone.
    directory = Directory(twins)
    assert directory.apply(entry_of(wall=NOW, counter=1), NOW).outcome is Outcome.UPDATED


def test_merge_reports_changes() -> None:
    a = Directory([entry_of(MINA), entry_of(KAI, wall=NOW - 1)])
    b = Directory([entry_of(KAI, wall=NOW), entry_of(LEO)])
    assert a.merge(b) == 2
    assert a.merge(b) == 0
    assert [e.peer for e in a] == sorted([MINA.peer_id, KAI.peer_id, LEO.peer_id])


# --- leases and presence -------------------------------------------------------------------


def test_lapsed_lease_reads_offline_without_any_message() -> None:
    directory = Directory(
        [
            entry_of(MINA, lease=LEASE),
            entry_of(KAI, status=Status.ASLEEP, lease=2 * LEASE),
            entry_of(LEO, status=Status.LEFT),
        ]
    )
    assert {e.peer for e in directory.online(NOW)} == {MINA.peer_id, KAI.peer_id}
    assert [e.peer for e in directory.online(NOW + LEASE)] == [KAI.peer_id]
    assert directory.online(NOW + 2 * LEASE) == []
    assert directory.presence(MINA.peer_id, NOW + LEASE) is Presence.OFFLINE
    assert directory.presence(KAI.peer_id, NOW) is Presence.ASLEEP
    assert directory.presence(LEO.peer_id, NOW) is Presence.LEFT
    assert directory.presence(b"unknown", NOW) is Presence.OFFLINE
    # Lapsed entries are still held (and replicated) until their retention ends.
    assert len(directory) == 3


def test_renewal_brings_a_peer_back() -> None:
    directory = Directory([entry_of(wall=NOW)])
    later = NOW + 2 * LEASE
    assert directory.online(later) == []
    directory.apply(entry_of(wall=later), later)
    assert len(directory.online(later)) == 1


# --- garbage collection --------------------------------------------------------------------


def test_tombstone_is_collected_after_the_horizon_only() -> None:
    tombstone = entry_of(wall=NOW, status=Status.LEFT)
    directory = Directory([tombstone])
    until = retain_until(tombstone.clock)
    assert until == NOW + MAX_LEASE_MS + HORIZON_MS
    assert directory.collect_garbage(until - 1) == []
    assert directory.collect_garbage(until) == [MINA.peer_id]
    assert len(directory) == 0


def test_collected_tombstone_is_not_resurrected_by_a_late_stale_entry() -> None:
    # Mina was online with the longest lease, then left. A replica that was partitioned
    # the whole time still holds the old online entry.
    online = entry_of(wall=NOW, lease=MAX_LEASE_MS)
    left = entry_of(wall=NOW + 1000, status=Status.LEFT)
    partitioned = Directory([online])
    directory = Directory([online])
    directory.apply(left, NOW + 1000)
    later = retain_until(left.clock)
    assert directory.collect_garbage(later) == [MINA.peer_id]
    # A late delta carrying the old entry is refused, not resurrected...
    assert directory.apply(online, later).outcome is Outcome.BEYOND_HORIZON
    assert directory.receive(online.raw, later).outcome is Outcome.BEYOND_HORIZON
    # ...and so is anti-entropy with the partitioned replica, which forgets it too.
    sync(directory, partitioned, later)
    assert MINA.peer_id not in directory
    partitioned.collect_garbage(later)
    assert partitioned.snapshot() == directory.snapshot() == Directory().snapshot()


def test_live_entries_are_never_collected() -> None:
    entry = entry_of(wall=NOW, lease=MAX_LEASE_MS)
    directory = Directory([entry])
    assert directory.collect_garbage(entry.expires_ms - 1) == []
    assert directory.presence(MINA.peer_id, entry.expires_ms - 1) is Presence.ONLINE


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3 * HORIZON_MS),
            st.sampled_from(list(Status)),
            st.integers(1, MAX_LEASE_MS),
        ),
        min_size=2,
        max_size=4,
        unique_by=lambda step: step[0],
    ),
    st.integers(0, 5 * HORIZON_MS),
)
def test_nothing_collected_ever_comes_back(
    writes: list[tuple[int, Status, int]], gc_at: int
) -> None:
    entries = sorted(
        (entry_of(wall=NOW + at, status=status, lease=lease) for at, status, lease in writes),
        key=lambda e: e.clock,
    )
    directory = Directory()
    for entry in entries:
        directory.apply(entry, entry.clock.wall_ms)
    now = NOW + gc_at
    collected = directory.collect_garbage(now)
    for late in range(3):
        for entry in entries:  # every older (or the same) entry arriving late
            if collected and now + late * HORIZON_MS >= entry.clock.wall_ms:
                result = directory.apply(entry, now + late * HORIZON_MS)
                assert not result.changed


# --- deltas and persistence ------------------------------------------------------------------


def test_delta_since_lists_local_changes() -> None:
    directory = Directory()
    start = directory.version
    first = entry_of(MINA)
    directory.apply(first, NOW)
    mark = directory.version
    second = entry_of(KAI)
    directory.apply(second, NOW)
    directory.apply(first, NOW)  # a duplicate is no change
    assert directory.delta_since(start).entries == (first.raw, second.raw)
    assert directory.delta_since(mark).entries == (second.raw,)
    assert directory.delta_since(directory.version).entries == ()


def test_snapshot_round_trip() -> None:
    directory = Directory([entry_of(MINA), entry_of(KAI, status=Status.LEFT), entry_of(LEO)])
    data = directory.snapshot()
    restored = Directory.restore(data, NOW)
    assert restored.snapshot() == data
    assert [e.raw for e in restored] == [e.raw for e in directory]
    # Canonical: the same content gives the same bytes, whatever the history.
    assert Directory(reversed(list(directory))).snapshot() == data


def test_restore_leaves_out_entries_past_retention_or_ahead_of_a_rewound_clock() -> None:
    old, new = entry_of(MINA, wall=NOW), entry_of(KAI, wall=NOW + HORIZON_MS)
    data = Directory([old, new]).snapshot()
    assert [e.peer for e in Directory.restore(data, retain_until(old.clock))] == [KAI.peer_id]
    assert [e.peer for e in Directory.restore(data, NOW)] == [MINA.peer_id]


def test_restore_refuses_a_tampered_snapshot() -> None:
    entry = entry_of()
    data = Directory([entry]).snapshot()
    at = data.index(entry.sig)
    tampered = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
    with pytest.raises(CorruptSnapshot):
        Directory.restore(tampered, NOW)
    wrong = canonical.packb({"format": "something-else", "v": 1, "entries": []})
    with pytest.raises(CorruptSnapshot):
        Directory.restore(wrong, NOW)


@settings(
    max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_to_restore_raise_only_corrupt_snapshot(data: bytes) -> None:
    with contextlib.suppress(CorruptSnapshot):  # or a valid (empty) snapshot
        Directory.restore(data, NOW)
