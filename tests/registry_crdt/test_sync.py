"""Sync messages: encoding and splitting, the envelope schema, and anti-entropy."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import (
    DOMAIN,
    PROTO_SYNC,
    TOPIC_DIRECTORY,
    Identity,
    SchemaError,
    SealError,
    canonical,
    seal,
    verify,
)
from registry_crdt import (
    DIRECTORY_BODIES,
    Clock,
    Delta,
    Diff,
    Digest,
    DigestItem,
    Directory,
    DirectoryError,
    Entry,
    MalformedMessage,
    Message,
    Refusal,
    Status,
    from_body,
    make_entry,
    to_bodies,
    validate_directory_body,
)
from registry_crdt.entry import key_of
from registry_crdt.limits import BODY_BUDGET_BYTES, KEY_SPACE
from registry_crdt.messages import FULL_RANGE, in_ranges
from registry_crdt.testing import identities, sample_card, sync

NOW = 1_700_000_000_000
LEASE = 60_000
SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
PEOPLE = identities(40, seed=6)
PREFIX = PEOPLE[0].peer_id[:6]


def entry_of(who: Identity, wall: int = NOW, **card: Any) -> Entry:
    return make_entry(
        who, sample_card(who.peer_id_str, **card), [], Status.ONLINE, Clock(wall), LEASE, wall
    )


ENTRIES = [entry_of(p, wall=NOW - 1) for p in PEOPLE] + [entry_of(p) for p in PEOPLE[:20]]


def round_trip(message: Message, max_bytes: int = BODY_BUDGET_BYTES) -> list[Message]:
    return [from_body(canonical.unpackb(canonical.packb(b))) for b in to_bodies(message, max_bytes)]


def random_peer(key: int) -> bytes:
    return PREFIX + key.to_bytes(4, "big") + os.urandom(28)


# --- encoding ------------------------------------------------------------------------------


def test_each_message_round_trips() -> None:
    directory = Directory(ENTRIES[:10])
    summary = directory.summary(3)
    digest = directory.digest()
    diff = Diff((ENTRIES[0].raw,), (PEOPLE[1].peer_id,))
    delta = Delta((ENTRIES[2].raw, ENTRIES[3].raw))
    refusal = Refusal("stale_timestamp", "your clock is 600 s ahead of mine")
    for message in (summary, digest, diff, delta, Delta(), Diff(), Digest((), ()), refusal):
        assert round_trip(message) == [message]


def test_large_messages_split_into_envelopes_that_fit() -> None:
    big = Directory(ENTRIES)
    items = tuple(
        sorted(
            (
                DigestItem(random_peer(k), Clock(NOW, k % 3), os.urandom(16))
                for k in range(0, KEY_SPACE, KEY_SPACE // 3000)
            ),
            key=lambda i: i.peer,
        )
    )
    digest = Digest(FULL_RANGE, items)
    bodies = to_bodies(digest)
    assert len(bodies) >= 3
    parts = [from_body(b) for b in bodies]
    assert tuple(i for p in parts if isinstance(p, Digest) for i in p.items) == items
    owner = PEOPLE[0]
    for i, body in enumerate(bodies + to_bodies(Delta(tuple(e.raw for e in ENTRIES)))):
        wire = seal(
            owner,
            kind="directory",
            channel=PROTO_SYNC,
            seq=i,
            ts_ms=NOW,
            body=body,
            bodies=DIRECTORY_BODIES,
        )
        assert len(wire) <= 64 * 1024
        verify(wire, channel=PROTO_SYNC, now_ms=NOW, bodies=DIRECTORY_BODIES)
    assert len(big) == len(PEOPLE)


keys_strategy = st.lists(st.integers(0, KEY_SPACE - 1), max_size=60, unique=True)


@SETTINGS
@given(
    keys_strategy,
    st.lists(st.integers(1, KEY_SPACE - 1), max_size=8, unique=True),
    st.integers(300, 3000),
)
def test_digest_splitting_keeps_every_body_self_consistent(
    keys: list[int], cuts: list[int], max_bytes: int
) -> None:
    bounds = sorted({0, KEY_SPACE, *cuts})
    ranges = tuple(zip(bounds[:-1:2], bounds[1::2], strict=False))
    inside = [k for k in keys if in_ranges(k, ranges)]
    items = tuple(
        sorted(
            (DigestItem(random_peer(k), Clock(NOW), bytes(16)) for k in inside),
            key=lambda i: i.peer,
        )
    )
    digest = Digest(ranges, items)
    parts = round_trip(digest, max_bytes)
    assert all(isinstance(p, Digest) for p in parts)
    digests = [p for p in parts if isinstance(p, Digest)]
    assert tuple(i for d in digests for i in d.items) == items
    covered = [r for d in digests for r in d.ranges]
    assert sum(hi - lo for lo, hi in covered) == sum(hi - lo for lo, hi in ranges)
    for d in digests:
        assert all(in_ranges(key_of(i.peer), d.ranges) for i in d.items)
        assert all(in_ranges(lo, ranges) and in_ranges(hi - 1, ranges) for lo, hi in d.ranges)


def test_delta_and_diff_splitting() -> None:
    raws = tuple(e.raw for e in ENTRIES)
    want = tuple(p.peer_id for p in PEOPLE)
    parts = round_trip(Diff(raws, want), max_bytes=4000)
    assert len(parts) > 5
    assert tuple(r for p in parts if isinstance(p, Diff) for r in p.entries) == raws
    assert tuple(w for p in parts if isinstance(p, Diff) for w in p.want) == want


# --- the envelope schema ------------------------------------------------------------------------


def test_keys_verify_checks_directory_bodies() -> None:
    owner = PEOPLE[0]
    body = to_bodies(Delta((ENTRIES[0].raw,)))[0]
    wire = seal_directory(owner, body)
    verified = verify(wire, channel=TOPIC_DIRECTORY, now_ms=NOW, bodies=DIRECTORY_BODIES)
    assert from_body(verified.body) == Delta((ENTRIES[0].raw,))
    with pytest.raises(SealError) as caught:
        seal_directory(owner, {"x": 1})
    assert caught.value.reason == "schema"
    # Without the directory's validator, keys takes no directory body at all.
    with pytest.raises(SchemaError):
        verify(wire, channel=TOPIC_DIRECTORY, now_ms=NOW)


def seal_directory(owner: Identity, body: dict[str, Any]) -> bytes:
    return seal(
        owner,
        kind="directory",
        channel=TOPIC_DIRECTORY,
        seq=1,
        ts_ms=NOW,
        body=body,
        bodies=DIRECTORY_BODIES,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.type"),
        ({"type": "gossip"}, "body.type"),
        ({"type": "delta", "entries": [], "extra": 1}, r"body\.extra"),
        ({"type": "summary", "bits": 13, "hashes": b""}, "body.bits"),
        ({"type": "summary", "bits": 1, "hashes": bytes(8)}, "body.hashes"),
        ({"type": "digest", "ranges": [[5, 5]], "items": []}, r"body\.ranges\[0\]"),
        ({"type": "digest", "ranges": [[0, 9], [5, 20]], "items": []}, r"body\.ranges\[1\]"),
        ({"type": "diff", "entries": [], "want": [b"x"]}, r"body\.want\[0\]"),
        ({"type": "refusal", "reason": "stale_timestamp"}, r"body\.detail"),
        ({"type": "refusal", "reason": "Nope!", "detail": ""}, r"body\.reason"),
        ({"type": "refusal", "reason": "x" * 41, "detail": ""}, r"body\.reason"),
        ({"type": "refusal", "reason": "schema", "detail": "a\x1b[2J"}, r"body\.detail"),
        ({"type": "refusal", "reason": "schema", "detail": "x" * 301}, r"body\.detail"),
        ({"type": "refusal", "reason": "schema", "detail": "", "ts": 1}, r"body\.ts"),
    ],
)
def test_malformed_bodies_are_schema_errors(body: dict[str, Any], field: str) -> None:
    with pytest.raises(SchemaError, match=field):
        validate_directory_body(body)
    with pytest.raises(MalformedMessage):
        from_body(body)


def test_entries_are_schema_checked_by_the_validator_only() -> None:
    body = {"type": "delta", "entries": [b"\xc1"]}
    assert from_body(body) == Delta((b"\xc1",))  # left to verify_entry / receive
    with pytest.raises(SchemaError, match=r"body\.entries\[0\].*malformed"):
        validate_directory_body(body)


def sign_raw(identity: Identity, body: dict[str, Any], channel: str) -> bytes:
    fields = {"v": 1, "kind": "directory", "from": identity.peer_id, "seq": 1, "ts": NOW}
    fields["body"] = body
    signed = DOMAIN + b"directory\x00" + channel.encode() + b"\x00" + canonical.packb(fields)
    return canonical.packb({**fields, "sig": identity.sign(signed)})


def test_entry_schema_is_checked_inside_envelopes() -> None:
    # An entry with an unknown field, in an envelope signed by someone seal() would refuse.
    fields = canonical.unpackb(ENTRIES[0].raw)
    fields["note"] = "smuggled"
    body = {"type": "delta", "entries": [canonical.packb(fields)]}
    with pytest.raises(SchemaError, match=r"body\.entries\[0\]\.note.*unknown_field"):
        verify(
            sign_raw(PEOPLE[0], body, TOPIC_DIRECTORY),
            channel=TOPIC_DIRECTORY,
            now_ms=NOW,
            bodies=DIRECTORY_BODIES,
        )


def test_digest_items_must_be_sorted_and_inside_the_ranges() -> None:
    a, b = sorted([PEOPLE[0].peer_id, PEOPLE[1].peer_id])
    items = [[b, NOW, 0, bytes(16)], [a, NOW, 0, bytes(16)]]
    with pytest.raises(MalformedMessage, match="sorted"):
        from_body({"type": "digest", "ranges": [[0, KEY_SPACE]], "items": items})
    outside = [[a, NOW, 0, bytes(16)]]
    ranges = [[key_of(a) + 1, key_of(a) + 2]] if key_of(a) + 2 <= KEY_SPACE else [[0, 1]]
    with pytest.raises(MalformedMessage, match="outside"):
        from_body({"type": "digest", "ranges": ranges, "items": outside})


body_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1, 2**33)
    | st.binary(max_size=40)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


VALID_BODIES = [
    body
    for message in (
        Directory(ENTRIES[:12]).summary(2),
        Directory(ENTRIES[:12]).digest(),
        Diff((ENTRIES[0].raw,), (PEOPLE[1].peer_id,)),
        Refusal("schema", "body.x: unknown field"),
    )
    for body in to_bodies(message)
]


@SETTINGS
@given(
    st.sampled_from(VALID_BODIES),
    st.sampled_from(
        ["type", "bits", "hashes", "ranges", "items", "entries", "want", "reason", "detail", "x"]
    ),
    body_values,
)
def test_any_body_raises_only_typed_errors(valid: dict[str, Any], name: str, value: Any) -> None:
    body = {**valid, name: value}
    with contextlib.suppress(MalformedMessage):
        from_body(body)
    with contextlib.suppress(SchemaError):
        validate_directory_body(body)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_entry_bytes_in_a_delta_raise_only_typed_errors(data: bytes) -> None:
    with contextlib.suppress(SchemaError):
        validate_directory_body({"type": "delta", "entries": [data]})
    with contextlib.suppress(DirectoryError):
        Directory().receive(data, NOW)


# --- anti-entropy ---------------------------------------------------------------------------


replica = st.lists(st.sampled_from(ENTRIES), max_size=25).map(Directory)


@SETTINGS
@given(replica, replica, st.booleans())
def test_one_exchange_makes_both_replicas_the_join(
    a: Directory, b: Directory, use_summary: bool
) -> None:
    expected = a.copy()
    expected.merge(b)
    stats = sync(a, b, NOW, use_summary=use_summary)
    assert a.snapshot() == b.snapshot() == expected.snapshot()
    assert stats.rejected == []
    assert stats.messages <= (4 if use_summary else 3)


def make_population(count: int) -> list[Entry]:
    crowd = identities(count, seed=7)
    return [entry_of(p, description="x" * 100) for p in crowd]


POPULATION = make_population(1000)


def test_sync_traffic_is_proportional_to_the_difference() -> None:
    a = Directory(POPULATION)
    b = a.copy()
    same = sync(a, b, NOW)
    assert same.messages == 2 and same.body_bytes < 1200  # summary + empty digest
    full = sync(a, b, NOW, use_summary=False)
    assert full.body_bytes > 60_000  # a full digest is ~70 bytes per entry

    renewed = entry_of(identities(1, seed=7)[0], wall=NOW + 1, description="x" * 100)
    a.apply(renewed, NOW + 1)
    one = sync(b, a, NOW + 1)
    assert a.snapshot() == b.snapshot()
    assert one.entries == 1
    assert one.body_bytes < 1200 + 20 * 70 + len(renewed.raw) + 100
    print(
        f"same {same.body_bytes} B, full digest {full.body_bytes} B, one update {one.body_bytes} B"
    )
