"""What the directory shows a reader (:mod:`node.directory.listing`): pure, ``now`` in."""

from __future__ import annotations

from keys import Identity, peer_id_to_str
from node.directory.listing import PRESENT, matches, row, rows
from registry_crdt import (
    Clock,
    Directory,
    Entry,
    Status,
    legacy_peer_id,
    make_entry,
    make_vouched_entry,
)
from registry_crdt.testing import identities, sample_card

NOW = 1_800_000_000_000
LEASE_MS = 45_000


def entry(identity: Identity, name: str, status: Status = Status.ONLINE, age_ms: int = 0) -> Entry:
    card = sample_card(identity.peer_id_str, name=name, tags=("tea", "garden"))
    wall = NOW - age_ms
    return make_entry(
        identity, card, ["/ip4/10.0.0.1/tcp/4001"], status, Clock(wall), LEASE_MS, wall
    )


def test_present_peers_come_first_then_the_rest_each_by_name() -> None:
    ids = identities(6, seed=21)
    entries = [
        entry(ids[0], "zoe", Status.LEFT),
        entry(ids[1], "Yann", age_ms=LEASE_MS + 1),  # lease lapsed: offline
        entry(ids[2], "xavier", Status.ASLEEP),
        entry(ids[3], "Walt", Status.AWAY),
        entry(ids[4], "bea"),
        entry(ids[5], "Ada"),
    ]
    shown = rows(entries, own_peer=ids[4].peer_id, now_ms=NOW)
    assert [(r["name"], r["status"]) for r in shown] == [
        ("Ada", "online"),
        ("bea", "online"),
        ("Walt", "away"),
        ("xavier", "asleep"),
        ("Yann", "offline"),
        ("zoe", "left"),
    ]
    assert [r["self"] for r in shown] == [False, True, False, False, False, False]
    assert {r["status"] for r in shown[:4]} <= {p.value for p in PRESENT}


def test_a_row_is_json_with_the_card_the_lease_and_who_vouched() -> None:
    me, bridge = identities(2, seed=22)
    own = entry(me, "Mina", age_ms=1000)
    assert row(own, own_peer=me.peer_id, now_ms=NOW) == {
        "peer_id": me.peer_id_str,
        "name": "Mina",
        "description": own.card.description,
        "tags": ["tea", "garden"],
        "status": "online",
        "last_seen_ms": NOW - 1000,
        "learned_ms": None,  # not held by a replica: read on the writer's clock
        "lease_expires_ms": NOW - 1000 + LEASE_MS,
        "addrs": ["/ip4/10.0.0.1/tcp/4001"],
        "vouched_by": None,
        "souvenirs": [],
        "self": True,
    }
    legacy = peer_id_to_str(legacy_peer_id(bridge.peer_id, "old-timer"))
    vouched = make_vouched_entry(
        bridge,
        "old-timer",
        sample_card(legacy, name="Old Timer"),
        ["https://bridge.example/old-timer"],
        Status.ONLINE,
        Clock(NOW),
        LEASE_MS,
        NOW,
    )
    shown = row(vouched, own_peer=me.peer_id, now_ms=NOW)
    assert (shown["peer_id"], shown["vouched_by"], shown["self"]) == (
        legacy,
        bridge.peer_id_str,
        False,
    )


def test_the_lease_lapses_with_the_time_passed_in() -> None:
    (one,) = identities(1, seed=23)
    listed = entry(one, "Noor")
    assert row(listed, own_peer=b"", now_ms=NOW + LEASE_MS - 1)["status"] == "online"
    assert row(listed, own_peer=b"", now_ms=NOW + LEASE_MS + 1)["status"] == "offline"


def test_search_is_a_case_blind_substring_of_name_description_peer_id_or_tag() -> None:
    ids = identities(2, seed=24)
    mina, other = entry(ids[0], "Mina Kowalski"), entry(ids[1], "Someone")
    for needle in ("mina", "KOWAL", "teapots", "garden", ids[0].peer_id_str[-10:]):
        folded = needle.casefold()
        assert matches(mina, folded), needle
    assert matches(mina, "")
    assert not matches(mina, "nobody")
    assert [r["name"] for r in rows([mina, other], own_peer=b"", now_ms=NOW, search="MINA")] == [
        "Mina Kowalski"
    ]
    assert len(rows([mina, other], own_peer=b"", now_ms=NOW, search="")) == 2
    assert len(rows([mina, other], own_peer=b"", now_ms=NOW, search=None)) == 2


def test_a_held_entry_is_shown_on_the_readers_clock() -> None:
    (peer,) = identities(1, seed=24)
    # Written by a PC whose clock is 90 s behind ours: by its own expiresAt it lapsed
    # 45 s ago, but we learned it just now, so it is online for a whole lease.
    behind = entry(peer, "Slow", age_ms=90_000)
    directory = Directory()
    directory.apply(behind, NOW)
    (held,) = directory.entries()
    shown = row(held, own_peer=b"", now_ms=NOW + LEASE_MS - 1)
    assert shown["status"] == "online"
    assert shown["learned_ms"] == NOW
    assert shown["lease_expires_ms"] == NOW + LEASE_MS
    assert shown["last_seen_ms"] == NOW - 90_000  # the writer's own clock: it orders entries
    assert row(held, own_peer=b"", now_ms=NOW + LEASE_MS)["status"] == "offline"
    assert row(behind, own_peer=b"", now_ms=NOW)["status"] == "offline"  # not held
