"""The signed envelope: round trip, tampering, canonical form, channels, time, replay."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import (
    DOMAIN,
    KINDS_BY_CHANNEL,
    PROTO_MCP,
    PROTO_SYNC,
    PROTO_VISIT,
    TOPIC_ACTIONS,
    TOPIC_CONTEXTS,
    TOPIC_DIRECTORY,
    BadSignature,
    EnvelopeError,
    Identity,
    KeyUsageError,
    Malformed,
    Oversize,
    Replayed,
    ReplayWindow,
    SchemaError,
    SealError,
    SenderMismatch,
    StaleTimestamp,
    UnknownKind,
    UnknownVersion,
    Verified,
    WrongChannel,
    canonical,
    seal,
    verify,
)
from tests.support.bodies import free_form

FREE = free_form("directory", "visit", "mcp")
"""Kinds whose bodies belong to other packages carry any map in these tests."""


LAWS = settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ALICE = Identity.from_seed(bytes(range(32)))
BOB = Identity.from_seed(bytes(range(1, 33)))
NOW = 1_700_000_000_000
WINDOW_MS = 300_000
SPEAK = {"type": "speak", "text": "hello"}

# --- strategies -------------------------------------------------------------------

short_text = st.text(min_size=1, max_size=40)
ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.none() | st.booleans() | ints | floats | st.text(max_size=30) | st.binary(max_size=30)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
free_bodies = st.dictionaries(st.text(max_size=8), values, max_size=6)

speak = st.fixed_dictionaries(
    {"type": st.just("speak"), "text": st.text(min_size=1, max_size=2000)},
    optional={"visit": st.text(min_size=1, max_size=64), "to": st.text(min_size=1, max_size=128)},
)
move = st.fixed_dictionaries({"type": st.just("move"), "to": st.text(min_size=1, max_size=128)})
look = st.fixed_dictionaries({"type": st.just("look"), "at": st.text(min_size=1, max_size=128)})
gesture = st.fixed_dictionaries(
    {"type": st.just("gesture"), "name": st.from_regex(r"[a-z_]{1,32}", fullmatch=True)}
)
context_text = st.fixed_dictionaries(
    {"type": st.just("text"), "text": st.text(min_size=1, max_size=8000)}
)
context_image = st.fixed_dictionaries(
    {
        "type": st.just("image"),
        "mime": st.sampled_from(["image/png", "image/jpeg", "image/webp", "image/gif"]),
        "data": st.binary(min_size=1, max_size=4096),
    },
    optional={"alt": st.text(max_size=500)},
)


@st.composite
def envelopes(draw: st.DrawFn) -> tuple[Identity, str, str, int, int, Mapping[str, Any]]:
    """A valid (identity, kind, channel, seq, ts, body) for any channel."""
    channel = draw(st.sampled_from(sorted(KINDS_BY_CHANNEL)))
    kind = next(iter(KINDS_BY_CHANNEL[channel]))
    bodies: st.SearchStrategy[Any]
    if kind == "action":
        bodies = st.one_of(speak, move, look, gesture)
    elif kind == "context":
        bodies = st.one_of(context_text, context_image)
    else:
        bodies = free_bodies
    body = draw(bodies)
    identity = Identity.from_seed(draw(st.binary(min_size=32, max_size=32)))
    seq = draw(st.integers(min_value=0, max_value=2**63 - 1))
    ts = draw(st.integers(min_value=0, max_value=2**63 - 1))
    return identity, kind, channel, seq, ts, body


def seal_speak(**overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "kind": "action",
        "channel": TOPIC_ACTIONS,
        "seq": 7,
        "ts_ms": NOW,
        "body": SPEAK,
    }
    identity = overrides.pop("identity", ALICE)
    args.update(overrides)
    return seal(identity, **args)


def sign_raw(identity: Identity, fields: dict[str, Any], channel: str) -> bytes:
    """Sign an arbitrary map the way seal() does, skipping every check."""
    fields = {**fields, "from": identity.peer_id}
    kind = fields["kind"]
    kind_bytes = kind.encode() if isinstance(kind, str) else bytes(kind)
    signed = DOMAIN + kind_bytes + b"\x00" + channel.encode() + b"\x00"
    sig = identity.sign(signed + canonical.packb(fields))
    return canonical.packb({**fields, "sig": sig})


def verify_now(data: bytes, channel: str = TOPIC_ACTIONS, **kwargs: Any) -> Verified:
    return verify(data, channel=channel, now_ms=NOW, bodies=FREE, **kwargs)


# --- laws -------------------------------------------------------------------------


@LAWS
@given(envelopes())
def test_seal_then_verify_round_trips(case: tuple[Identity, str, str, int, int, Any]) -> None:
    identity, kind, channel, seq, ts, body = case
    wire = seal(identity, kind=kind, channel=channel, seq=seq, ts_ms=ts, body=body, bodies=FREE)
    verified = verify(
        wire, channel=channel, now_ms=ts, transport_peer=identity.peer_id, bodies=FREE
    )
    assert (verified.v, verified.kind, verified.sender, verified.seq, verified.ts_ms) == (
        1,
        kind,
        identity.peer_id,
        seq,
        ts,
    )
    assert verified.body == body
    assert verified.raw == wire
    assert verified.channel == channel
    assert verified.sender_str == identity.peer_id_str
    assert len(verified.sig) == 64
    assert canonical.packb(canonical.unpackb(wire)) == wire


@LAWS
@given(envelopes(), st.data())
def test_any_flipped_bit_fails(
    case: tuple[Identity, str, str, int, int, Any], data: st.DataObject
) -> None:
    identity, kind, channel, seq, ts, body = case
    wire = seal(identity, kind=kind, channel=channel, seq=seq, ts_ms=ts, body=body, bodies=FREE)
    index = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    tampered = bytearray(wire)
    tampered[index] ^= 1 << bit
    with pytest.raises(EnvelopeError):
        verify(bytes(tampered), channel=channel, now_ms=ts, bodies=FREE)


@LAWS
@given(envelopes(), st.data())
def test_any_replaced_inserted_or_deleted_bytes_fail(
    case: tuple[Identity, str, str, int, int, Any], data: st.DataObject
) -> None:
    identity, kind, channel, seq, ts, body = case
    wire = seal(identity, kind=kind, channel=channel, seq=seq, ts_ms=ts, body=body, bodies=FREE)
    start = data.draw(st.integers(min_value=0, max_value=len(wire)))
    end = data.draw(st.integers(min_value=start, max_value=min(len(wire), start + 8)))
    patch = data.draw(st.binary(max_size=8))
    tampered = wire[:start] + patch + wire[end:]
    if tampered == wire:
        return
    with pytest.raises(EnvelopeError):
        verify(tampered, channel=channel, now_ms=ts, bodies=FREE)


@settings(max_examples=2000, deadline=None, database=None)
@given(st.binary(max_size=512), st.sampled_from([*sorted(KINDS_BY_CHANNEL), "other/channel"]))
def test_arbitrary_bytes_raise_only_envelope_errors(data: bytes, channel: str) -> None:
    with pytest.raises(EnvelopeError):
        verify(data, channel=channel, now_ms=NOW, bodies=FREE)


envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "v": st.integers(0, 2) | values,
        "kind": st.sampled_from(["action", "context", "x"]) | values,
        "from": st.just(ALICE.peer_id) | st.binary(max_size=40) | values,
        "seq": st.integers(-2, 2**64 - 1) | values,
        "ts": st.just(NOW) | values,
        "body": st.just(SPEAK) | free_bodies | values,
        "sig": st.binary(min_size=64, max_size=64) | values,
        "extra": values,
    },
)


@LAWS
@given(envelope_like, st.booleans())
def test_structured_garbage_raises_only_envelope_errors(
    fields: dict[str, Any], bin_type: bool
) -> None:
    data = msgpack.packb(fields, use_bin_type=bin_type)
    with pytest.raises(EnvelopeError):
        verify_now(data)


# --- field tampering without re-signing ----------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 8),
        ("ts", NOW + 1),
        ("body", {"type": "speak", "text": "hellO"}),
        ("from", BOB.peer_id),
        ("sig", bytes(64)),
    ],
)
def test_changed_field_fails_signature(field: str, value: Any) -> None:
    fields = canonical.unpackb(seal_speak())
    fields[field] = value
    with pytest.raises(BadSignature):
        verify_now(canonical.packb(fields))


def test_swapped_signatures_fail() -> None:
    one = canonical.unpackb(seal_speak(seq=1))
    two = canonical.unpackb(seal_speak(seq=2))
    one["sig"], two["sig"] = two["sig"], one["sig"]
    for fields in (one, two):
        with pytest.raises(BadSignature):
            verify_now(canonical.packb(fields))


# --- canonical encoding ---------------------------------------------------------------


def test_wider_int_encoding_is_refused() -> None:
    wire = seal_speak(seq=7)
    wide = wire.replace(b"\xa3seq\x07", b"\xa3seq\xce\x00\x00\x00\x07")
    assert wide != wire
    assert msgpack.unpackb(wide) == msgpack.unpackb(wire)
    with pytest.raises(Malformed, match="non-canonical"):
        verify_now(wide)


def test_other_map_order_is_refused() -> None:
    wire = seal_speak()
    fields = msgpack.unpackb(wire)
    reordered = msgpack.packb(dict(reversed(list(fields.items()))), use_bin_type=True)
    assert msgpack.unpackb(reordered) == fields
    with pytest.raises(Malformed, match="non-canonical"):
        verify_now(reordered)


def test_float32_is_refused() -> None:
    body = {"n": 0.5}
    wire = seal(
        ALICE, kind="directory", channel=TOPIC_DIRECTORY, seq=1, ts_ms=NOW, body=body, bodies=FREE
    )
    narrow = wire.replace(b"\xcb" + msgpack.packb(0.5)[1:], b"\xca\x3f\x00\x00\x00")
    assert narrow != wire
    with pytest.raises(Malformed, match="non-canonical"):
        verify_now(narrow, TOPIC_DIRECTORY)


def test_str8_for_short_string_is_refused() -> None:
    wire = seal_speak()
    long_form = wire.replace(b"\xa5hello", b"\xd9\x05hello")
    with pytest.raises(Malformed, match="non-canonical"):
        verify_now(long_form)


def test_duplicate_key_is_refused() -> None:
    wire = seal_speak()
    # The map header says 7 pairs; add an 8th that repeats "v".
    duplicated = b"\x88" + wire[1:] + b"\xa1v\x01"
    with pytest.raises(Malformed):
        verify_now(duplicated)


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(Malformed):
        verify_now(seal_speak() + b"\x00")


# --- fields, version, kind, schema ------------------------------------------------------


def test_unknown_version() -> None:
    fields = {"v": 2, "kind": "action", "seq": 1, "ts": NOW, "body": SPEAK}
    with pytest.raises(UnknownVersion):
        verify_now(sign_raw(ALICE, fields, TOPIC_ACTIONS))
    with pytest.raises(UnknownVersion):
        verify_now(canonical.packb({"v": 2, "anything": "else"}))


def test_unknown_kind() -> None:
    fields = {"v": 1, "kind": "chat", "seq": 1, "ts": NOW, "body": SPEAK}
    with pytest.raises(UnknownKind) as caught:
        verify_now(sign_raw(ALICE, fields, TOPIC_ACTIONS))
    assert caught.value.reason == "unknown_kind"


@pytest.mark.parametrize(
    "change",
    [
        {"v": True},
        {"seq": -1},
        {"seq": 2**63},
        {"seq": True},
        {"ts": -5},
        {"ts": 1.5},
        {"kind": b"action"},
        {"body": [1]},
    ],
)
def test_wrong_field_types_are_malformed(change: dict[str, Any]) -> None:
    fields = {"v": 1, "kind": "action", "seq": 1, "ts": NOW, "body": SPEAK, **change}
    with pytest.raises(Malformed):
        verify_now(sign_raw(ALICE, fields, TOPIC_ACTIONS))


def test_missing_or_extra_field_is_malformed() -> None:
    fields = canonical.unpackb(seal_speak())
    with pytest.raises(Malformed):
        verify_now(canonical.packb({k: v for k, v in fields.items() if k != "ts"}))
    with pytest.raises(Malformed):
        verify_now(canonical.packb({**fields, "x": 1}))


def test_non_ed25519_sender_is_malformed() -> None:
    fields = canonical.unpackb(seal_speak())
    fields["from"] = b"\x12\x20" + bytes(32)  # a sha256 multihash PeerID
    with pytest.raises(Malformed):
        verify_now(canonical.packb(fields))


def test_body_outside_schema_is_refused() -> None:
    fields = {"v": 1, "kind": "action", "seq": 1, "ts": NOW, "body": {"type": "fly"}}
    with pytest.raises(SchemaError, match=r"body\.type"):
        verify_now(sign_raw(ALICE, fields, TOPIC_ACTIONS))


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    deep = b"\x91" * 900 + b"\x00"
    with pytest.raises(EnvelopeError):
        verify_now(deep)
    nested: Any = 0
    for _ in range(200):
        nested = [nested]
    fields = {"v": 1, "kind": "directory", "seq": 1, "ts": NOW, "body": {"x": nested}}
    data = msgpack.packb({**fields, "from": ALICE.peer_id, "sig": bytes(64)}, use_bin_type=True)
    with pytest.raises(SchemaError, match="nested"):
        verify_now(data, TOPIC_DIRECTORY)


# --- channel, sender, time, replay ----------------------------------------------------------


def test_wrong_channel_for_kind() -> None:
    with pytest.raises(WrongChannel) as caught:
        verify_now(seal_speak(), TOPIC_CONTEXTS)
    assert isinstance(caught.value, UnknownKind)
    assert caught.value.reason == "wrong_channel"
    with pytest.raises(WrongChannel):
        verify_now(seal_speak(), "roomverse/2/actions")


def test_channel_is_signed() -> None:
    wire = seal(
        ALICE, kind="directory", channel=TOPIC_DIRECTORY, seq=1, ts_ms=NOW, body={}, bodies=FREE
    )
    verify_now(wire, TOPIC_DIRECTORY)
    with pytest.raises(BadSignature):
        verify_now(wire, PROTO_SYNC)


@pytest.mark.parametrize(
    ("kind", "channel"),
    [("visit", PROTO_VISIT), ("mcp", PROTO_MCP), ("directory", PROTO_SYNC)],
)
def test_stream_protocol_kinds(kind: str, channel: str) -> None:
    wire = seal(
        ALICE, kind=kind, channel=channel, seq=3, ts_ms=NOW, body={"t": "knock"}, bodies=FREE
    )
    assert verify_now(wire, channel).body == {"t": "knock"}


def test_transport_peer() -> None:
    wire = seal_speak()
    assert verify_now(wire, transport_peer=ALICE.peer_id).sender == ALICE.peer_id
    with pytest.raises(SenderMismatch):
        verify_now(wire, transport_peer=BOB.peer_id)


@pytest.mark.parametrize("offset", [-WINDOW_MS, 0, WINDOW_MS])
def test_timestamp_inside_window(offset: int) -> None:
    verify(seal_speak(), channel=TOPIC_ACTIONS, now_ms=NOW + offset)


@pytest.mark.parametrize("offset", [-WINDOW_MS - 1, WINDOW_MS + 1, 10**12])
def test_timestamp_outside_window(offset: int) -> None:
    with pytest.raises(StaleTimestamp) as caught:
        verify(seal_speak(), channel=TOPIC_ACTIONS, now_ms=NOW + offset)
    # Raised after the signature verified: who sent it and how far its clock is off.
    assert caught.value.ahead_ms == -offset
    assert caught.value.sender == ALICE.peer_id


def test_custom_window() -> None:
    verify(seal_speak(), channel=TOPIC_ACTIONS, now_ms=NOW + 10, window_ms=10)
    with pytest.raises(StaleTimestamp):
        verify(seal_speak(), channel=TOPIC_ACTIONS, now_ms=NOW + 11, window_ms=10)


def test_replay_window_is_checked_not_updated() -> None:
    window = ReplayWindow()
    wire = seal_speak(seq=5)
    verified = verify_now(wire, replay=window)
    verify_now(wire, replay=window)  # verify alone records nothing
    window.accept(verified.sender, verified.seq)
    with pytest.raises(Replayed):
        verify_now(wire, replay=window)
    verify_now(seal_speak(seq=4), replay=window)  # reordered, still new
    verify_now(seal_speak(seq=5, identity=BOB), replay=window)  # other sender


# --- size caps ---------------------------------------------------------------------------------


def test_two_mib_is_refused_quickly() -> None:
    data = b"\x80" + bytes(2 * 1024 * 1024)
    started = time.perf_counter()
    for channel in (TOPIC_ACTIONS, TOPIC_CONTEXTS, "unknown"):
        with pytest.raises(Oversize):
            verify_now(data, channel)
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize(
    ("channel", "cap"),
    [
        (TOPIC_ACTIONS, 16 * 1024),
        (TOPIC_CONTEXTS, 256 * 1024),
        (TOPIC_DIRECTORY, 64 * 1024),
        (PROTO_SYNC, 64 * 1024),
        (PROTO_VISIT, 32 * 1024),
        (PROTO_MCP, 64 * 1024),
    ],
)
def test_per_channel_cap(channel: str, cap: int) -> None:
    with pytest.raises(Oversize):
        verify_now(bytes(cap + 1), channel)
    with pytest.raises(Malformed):
        verify_now(bytes(cap), channel)


@pytest.mark.parametrize(
    ("kind", "channel", "cap"),
    [("directory", TOPIC_DIRECTORY, 64 * 1024), ("visit", PROTO_VISIT, 32 * 1024)],
)
def test_seal_refuses_oversize(kind: str, channel: str, cap: int) -> None:
    body = {"blob": bytes(cap)}
    with pytest.raises(SealError) as caught:
        seal(ALICE, kind=kind, channel=channel, seq=1, ts_ms=NOW, body=body, bodies=FREE)
    assert caught.value.reason == "oversize"
    fields = {"v": 1, "kind": kind, "seq": 1, "ts": NOW, "body": body}
    with pytest.raises(Oversize):
        verify_now(sign_raw(ALICE, fields, channel), channel)


def test_largest_image_fits_context_cap() -> None:
    body = {"type": "image", "mime": "image/png", "data": bytes(192 * 1024), "alt": "é" * 500}
    wire = seal(ALICE, kind="context", channel=TOPIC_CONTEXTS, seq=1, ts_ms=NOW, body=body)
    assert verify_now(wire, TOPIC_CONTEXTS).body["data"] == body["data"]


def test_longest_speech_fits_action_cap() -> None:
    body = {"type": "speak", "text": "\U0001f600" * 2000, "visit": "v" * 64, "to": "t" * 128}
    assert verify_now(seal_speak(body=body)).body == body


# --- seal refuses what verify would refuse -------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"kind": "chat"}, "unknown_kind"),
        ({"channel": TOPIC_CONTEXTS}, "wrong_channel"),
        ({"seq": -1}, "malformed"),
        ({"seq": True}, "malformed"),
        ({"seq": 2**63}, "malformed"),
        ({"ts_ms": -1}, "malformed"),
        ({"ts_ms": 1.0}, "malformed"),
        ({"body": {"type": "speak", "text": ""}}, "schema"),
        ({"body": {"type": "speak", "text": "x", "extra": 1}}, "schema"),
        ({"body": {"type": "speak", "text": "\ud800"}}, "schema"),
    ],
)
def test_seal_refuses(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(SealError) as caught:
        seal_speak(**overrides)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), 2**64, -(2**63) - 1, object(), {1: 2}, {"k": set()}]
)
def test_seal_refuses_unencodable_values(value: Any) -> None:
    with pytest.raises(SealError):
        seal(ALICE, kind="mcp", channel=PROTO_MCP, seq=1, ts_ms=NOW, body={"x": value}, bodies=FREE)


def test_seal_accepts_subclasses_and_tuples() -> None:
    from enum import IntEnum, StrEnum

    class Action(StrEnum):
        SPEAK = "speak"

    class Level(IntEnum):
        HIGH = 3

    wire = seal_speak(body={"type": Action.SPEAK, "text": "hi"})
    assert verify_now(wire).body == {"type": "speak", "text": "hi"}
    wire = seal(
        ALICE,
        kind="mcp",
        channel=PROTO_MCP,
        seq=1,
        ts_ms=NOW,
        body={"a": (1, Level.HIGH)},
        bodies=FREE,
    )
    body = verify_now(wire, PROTO_MCP).body
    assert body == {"a": [1, 3]}
    assert type(body["a"][1]) is int


# --- Verified ----------------------------------------------------------------------------------


def test_only_verify_constructs_verified() -> None:
    verified = verify_now(seal_speak())
    fields = {f.name: getattr(verified, f.name) for f in dataclasses.fields(verified)}
    with pytest.raises(KeyUsageError):
        Verified(**fields, _token=object())
    with pytest.raises(TypeError):
        Verified(**fields)
    # replace() would copy every field but the token, so it cannot forge one either.
    with pytest.raises(ValueError, match="_token"):
        dataclasses.replace(verified, seq=99)  # type: ignore[call-arg]


def test_verified_is_immutable_and_hashable() -> None:
    verified = verify_now(seal_speak())
    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.seq = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        verified.body["text"] = "changed"  # type: ignore[index]
    assert verified == verify_now(seal_speak())
    assert len({verified, verify_now(seal_speak())}) == 1
    assert "sig" not in repr(verified)


def test_errors_carry_reason_codes() -> None:
    codes = {
        Malformed: "malformed",
        UnknownVersion: "unknown_version",
        UnknownKind: "unknown_kind",
        WrongChannel: "wrong_channel",
        Oversize: "oversize",
        SchemaError: "schema",
        BadSignature: "bad_signature",
        SenderMismatch: "sender_mismatch",
        StaleTimestamp: "stale_timestamp",
        Replayed: "replayed",
    }
    for cls, code in codes.items():
        assert cls.reason == code
        assert cls("x").reason == code
