"""Merge is a join: commutative, associative, idempotent, with the empty replica as identity.

Replicas are drawn from a pool of pre-signed entries (a few peers, a vouched legacy
participant, several clocks, and equivocating twins sharing a clock), so thousands of
examples cost no signing. Replicas are compared by their canonical snapshots, byte for
byte.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import peer_id_to_str
from registry_crdt import Clock, Directory, Entry, Status, legacy_peer_id
from registry_crdt.entry import make_entry, make_vouched_entry
from registry_crdt.testing import identities, sample_card

LAWS = settings(
    max_examples=2000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NOW = 1_700_000_000_000
LEASE = 60_000
OWNERS = identities(4, seed=1)
(BRIDGE,) = identities(1, seed=2)
HANDLE = "old-madoguchi"


def _pool() -> list[Entry]:
    pool = []
    clocks = [Clock(NOW - 2, 0), Clock(NOW - 2, 1), Clock(NOW - 1, 0), Clock(NOW, 0)]
    for owner in OWNERS:
        card = sample_card(owner.peer_id_str)
        for clock in clocks:
            # Twins: the same clock, different content (an equivocating owner).
            for status, addr in ((Status.ONLINE, "/ip4/10.0.0.1/tcp/1"), (Status.AWAY, "/dns/x")):
                pool.append(make_entry(owner, card, [addr], status, clock, LEASE, NOW))
        pool.append(make_entry(owner, card, [], Status.LEFT, Clock(NOW, 2), LEASE, NOW))
    legacy = peer_id_to_str(legacy_peer_id(BRIDGE.peer_id, HANDLE))
    for clock in clocks:
        for url in ("https://a.example", "https://b.example"):
            card = sample_card(legacy)
            pool.append(
                make_vouched_entry(BRIDGE, HANDLE, card, [url], Status.ONLINE, clock, LEASE, NOW)
            )
    return pool


POOL = _pool()
replicas = st.lists(st.sampled_from(POOL), max_size=12).map(Directory)


def joined(*parts: Directory) -> bytes:
    result = Directory()
    for part in parts:
        result.merge(part)
    return result.snapshot()


@LAWS
@given(replicas, replicas)
def test_merge_is_commutative(a: Directory, b: Directory) -> None:
    assert joined(a, b) == joined(b, a)


@LAWS
@given(replicas, replicas, replicas)
def test_merge_is_associative(a: Directory, b: Directory, c: Directory) -> None:
    left = a.copy()
    left.merge(b)
    left.merge(c)
    bc = b.copy()
    bc.merge(c)
    right = a.copy()
    right.merge(bc)
    assert left.snapshot() == right.snapshot()


@LAWS
@given(replicas)
def test_merge_is_idempotent(a: Directory) -> None:
    before = a.snapshot()
    assert a.merge(a.copy()) == 0
    assert a.snapshot() == before


@LAWS
@given(replicas)
def test_empty_replica_is_the_identity(a: Directory) -> None:
    before = a.snapshot()
    empty = Directory()
    assert a.merge(empty) == 0
    assert a.snapshot() == before
    empty.merge(a)
    assert empty.snapshot() == before


@LAWS
@given(st.lists(st.sampled_from(POOL), max_size=16), st.randoms(use_true_random=False))
def test_arrival_order_does_not_matter(entries: list[Entry], rng: random.Random) -> None:
    shuffled = list(entries)
    rng.shuffle(shuffled)
    forward, backward = Directory(), Directory()
    for entry in entries:
        forward.apply(entry, NOW)
    for entry in shuffled:
        backward.apply(entry, NOW)
    assert forward.snapshot() == backward.snapshot()
    # Each peer ends with its greatest entry: the join is the maximum, whatever came first.
    for peer in {e.peer for e in entries}:
        best = max((e for e in entries if e.peer == peer), key=lambda e: (e.clock, e.hash))
        assert forward.get(peer) == best
