"""Entries: making, verifying, and every way a peer can send a bad one."""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import Identity, canonical, peer_id_to_str
from registry_crdt import (
    ENTRY_DOMAIN,
    Clock,
    DirectoryError,
    DirectoryUsageError,
    Entry,
    InvalidField,
    MalformedEntry,
    Presence,
    Status,
    UnknownField,
    UnsupportedVersion,
    card_to_dict,
    legacy_peer_id,
    make_entry,
    make_vouched_entry,
    sign_card,
    verify_entry,
)
from registry_crdt.limits import MAX_COUNTER, MAX_ENTRY_BYTES, MAX_LEASE_MS, MAX_SKEW_MS
from registry_crdt.testing import identities, sample_card

FUZZ = settings(
    max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
NOW = 1_700_000_000_000
LEASE = 60_000
DAY_MS = 86_400_000
MINA, KAI, BRIDGE = identities(3, seed=4)
ADDR = "/ip4/192.0.2.1/tcp/4001"


def mina_entry(**changes: Any) -> Entry:
    args: dict[str, Any] = {
        "card": sample_card(MINA.peer_id_str),
        "addrs": [ADDR],
        "status": Status.ONLINE,
        "clock": Clock(NOW),
        "lease_ms": LEASE,
        "now_ms": NOW,
    }
    args.update(changes)
    return make_entry(MINA, **args)


def forge(signer: Identity, card_signer: Identity | None = None, **fields: Any) -> bytes:
    """Sign an entry map as ``signer`` with none of make_entry's checks."""
    entry: dict[str, Any] = {
        "v": 1,
        "peer": signer.peer_id,
        "vouch": None,
        "card": None,
        "addrs": [ADDR],
        "status": "online",
        "clock": [NOW, 0],
        "expiresAt": NOW + LEASE,
    }
    entry.update(fields)
    if entry["card"] is None:
        card = sample_card(peer_id_to_str(entry["peer"]))
        entry["card"] = card_to_dict(sign_card(card_signer or signer, card))
    if "cardDigest" not in entry:
        entry["cardDigest"] = hashlib.sha256(canonical.packb(entry["card"])).digest()
    entry = {k: v for k, v in entry.items() if v is not ...}
    sig = signer.sign(ENTRY_DOMAIN + canonical.packb(entry))
    return canonical.packb({**entry, "sig": sig})


def reason_of(data: bytes, now_ms: int = NOW) -> str:
    with pytest.raises(DirectoryError) as caught:
        verify_entry(data, now_ms)
    return caught.value.reason


# --- the good path ------------------------------------------------------------------------


def test_make_then_verify_round_trip() -> None:
    entry = mina_entry()
    again = verify_entry(entry.raw, NOW)
    assert again == entry
    assert again.peer == MINA.peer_id == again.signer
    assert again.card.name == sample_card(MINA.peer_id_str).name
    assert again.addrs == (ADDR,)
    assert again.expires_ms == NOW + LEASE
    assert verify_entry(entry, NOW) is entry


def test_forge_helper_makes_valid_entries() -> None:
    verify_entry(forge(MINA), NOW)


def test_entries_cannot_be_built_by_hand() -> None:
    entry = mina_entry()
    with pytest.raises(DirectoryUsageError):
        Entry(
            peer=entry.peer,
            vouch=None,
            card=entry.card,
            card_digest=entry.card_digest,
            addrs=entry.addrs,
            status=entry.status,
            clock=entry.clock,
            expires_ms=entry.expires_ms,
            sig=entry.sig,
            raw=entry.raw,
            hash=entry.hash,
            item=entry.item,
            _token=object(),
        )


def test_vouched_entry_for_a_legacy_participant() -> None:
    peer = legacy_peer_id(BRIDGE.peer_id, "madoguchi-1")
    card = sample_card(peer_id_to_str(peer))
    entry = make_vouched_entry(
        BRIDGE,
        "madoguchi-1",
        card,
        ["https://abc.ngrok.app"],
        Status.ONLINE,
        Clock(NOW),
        LEASE,
        NOW,
    )
    checked = verify_entry(entry.raw, NOW)
    assert checked.peer == peer
    assert checked.signer == BRIDGE.peer_id
    assert checked.vouch is not None and checked.vouch.handle == "madoguchi-1"
    assert legacy_peer_id(BRIDGE.peer_id, "madoguchi-2") != peer
    assert legacy_peer_id(KAI.peer_id, "madoguchi-1") != peer


def test_lease_expiry_reads_offline_without_any_message() -> None:
    entry = mina_entry(status=Status.AWAY)
    assert entry.presence(NOW) is Presence.AWAY
    assert entry.presence(NOW + LEASE - 1) is Presence.AWAY
    assert entry.presence(NOW + LEASE) is Presence.OFFLINE
    assert mina_entry(status=Status.LEFT).presence(NOW) is Presence.LEFT


# --- adversarial entries ------------------------------------------------------------------


def test_forged_signature() -> None:
    entry = mina_entry()
    raw = bytearray(entry.raw)
    raw[entry.raw.index(entry.sig) + 10] ^= 0x01
    assert reason_of(bytes(raw)) == "bad_signature"


def test_entry_of_x_signed_by_y() -> None:
    # Y writes an entry under X's PeerID: it cannot produce X's signatures.
    raw = forge(KAI, peer=MINA.peer_id)
    assert reason_of(raw) == "bad_signature"
    # Even with a card genuinely signed by X (replayed from X's own entry).
    real_card = card_to_dict(mina_entry().card)
    raw = forge(KAI, peer=MINA.peer_id, card=real_card)
    assert reason_of(raw) == "bad_signature"


def test_card_signed_by_someone_else() -> None:
    assert reason_of(forge(MINA, card_signer=KAI)) == "bad_signature"


def test_bridge_cannot_vouch_for_a_real_character() -> None:
    raw = forge(BRIDGE, peer=MINA.peer_id, vouch={"by": BRIDGE.peer_id, "handle": "mina"})
    assert reason_of(raw) == "wrong_signer"


def test_card_for_another_peer() -> None:
    kai_card = card_to_dict(sign_card(MINA, sample_card(KAI.peer_id_str)))
    assert reason_of(forge(MINA, card=kai_card)) == "wrong_signer"


def test_vouched_entry_needs_urls() -> None:
    peer = legacy_peer_id(BRIDGE.peer_id, "h")
    vouch = {"by": BRIDGE.peer_id, "handle": "h"}
    assert reason_of(forge(BRIDGE, peer=peer, vouch=vouch)) == "invalid_field"
    verify_entry(forge(BRIDGE, peer=peer, vouch=vouch, addrs=["http://h.example:8000"]), NOW)


@pytest.mark.parametrize(
    ("clock", "reason"),
    [
        ([NOW + DAY_MS, 0], "future_clock"),
        ([NOW + MAX_SKEW_MS + 1, 0], "future_clock"),
        ([2**48 - 1, MAX_COUNTER], "future_clock"),
        ([2**48, 0], "invalid_field"),
        ([2**64 - 1, 0], "invalid_field"),
        ([NOW, MAX_COUNTER + 1], "invalid_field"),
        ([NOW, -1], "invalid_field"),
        ([NOW], "invalid_field"),
        ([NOW, 0, 0], "invalid_field"),
        ([float(NOW), 0], "invalid_field"),
    ],
)
def test_clock_bounds(clock: list[Any], reason: str) -> None:
    expires = clock[0] + LEASE if type(clock[0]) is int and clock[0] < 2**48 else NOW + 1
    # (the maximal clock gets a lease too: its clock must be what refuses it)
    assert reason_of(forge(MINA, clock=clock, expiresAt=expires)) == reason


def test_clock_at_the_skew_bound_is_accepted_and_later_refused_entries_pass() -> None:
    raw = forge(MINA, clock=[NOW + MAX_SKEW_MS, 0], expiresAt=NOW + MAX_SKEW_MS + LEASE)
    verify_entry(raw, NOW)
    early = forge(MINA, clock=[NOW + DAY_MS, 0], expiresAt=NOW + DAY_MS + LEASE)
    assert reason_of(early) == "future_clock"
    verify_entry(early, NOW + DAY_MS)  # once it is no longer in the future


@pytest.mark.parametrize("expires", [NOW, NOW - 1, NOW + MAX_LEASE_MS + 1, -1, 2**64 - 1], ids=str)
def test_lease_bounds(expires: int) -> None:
    assert reason_of(forge(MINA, expiresAt=expires)) == "invalid_field"


def test_oversize_entry() -> None:
    assert reason_of(bytes(MAX_ENTRY_BYTES + 1)) == "oversize"
    card = sample_card(MINA.peer_id_str, description="x")
    fat = card_to_dict(sign_card(MINA, card))
    fat["persona"]["personality"] = "\U0001f600" * 1000
    fat["souvenirs"] = [
        {
            "name": f"t{i}",
            "description": "\U0001f600" * 280,
            "readOnly": True,
            "schemaDigest": "0" * 32,
        }
        for i in range(16)
    ]
    raw = forge(MINA, card=fat)
    assert len(raw) <= MAX_ENTRY_BYTES
    assert reason_of(raw) == "oversize"  # the card is over its own cap


@pytest.mark.parametrize("where", ["entry", "vouch", "card"])
def test_unknown_fields(where: str) -> None:
    if where == "entry":
        raw = forge(MINA, note="hello")
    elif where == "vouch":
        peer = legacy_peer_id(BRIDGE.peer_id, "h")
        vouch = {"by": BRIDGE.peer_id, "handle": "h", "trust": 100}
        raw = forge(BRIDGE, peer=peer, vouch=vouch, addrs=["https://h.example"])
    else:
        card = card_to_dict(sign_card(MINA, sample_card(MINA.peer_id_str)))
        card["mood"] = "sly"
        raw = forge(MINA, card=card)
    with pytest.raises(UnknownField) as caught:
        verify_entry(raw, NOW)
    assert caught.value.reason == "unknown_field"


def test_missing_field() -> None:
    with pytest.raises(InvalidField, match=r"entry\.status"):
        verify_entry(forge(MINA, status=...), NOW)


def test_unsupported_version() -> None:
    with pytest.raises(UnsupportedVersion):
        verify_entry(forge(MINA, v=2, future="x"), NOW)


def test_card_digest_must_match() -> None:
    assert reason_of(forge(MINA, cardDigest=bytes(32))) == "invalid_field"


def test_bad_status_and_addrs() -> None:
    assert reason_of(forge(MINA, status="hiding")) == "invalid_field"
    assert reason_of(forge(MINA, addrs=[ADDR, ADDR])) == "invalid_field"
    assert reason_of(forge(MINA, addrs=["http://x.example"])) == "invalid_field"
    assert reason_of(forge(MINA, addrs=[f"/ip4/10.0.0.{i}" for i in range(17)])) == "invalid_field"


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x81", b"\x92\x01", b"\xa5hello", msgpack.packb([1, 2]), b"\x91" * 2000],
    ids=repr,
)
def test_malformed_msgpack(data: bytes) -> None:
    with pytest.raises(MalformedEntry) as caught:
        verify_entry(data, NOW)
    assert caught.value.reason == "malformed"


def test_non_canonical_encoding_is_refused() -> None:
    entry = mina_entry()
    fields = msgpack.unpackb(entry.raw, raw=False)
    reordered = msgpack.packb(dict(reversed(list(fields.items()))), use_bin_type=True)
    assert reordered != entry.raw
    assert reason_of(reordered) == "malformed"


def test_not_bytes() -> None:
    with pytest.raises(MalformedEntry):
        verify_entry("entry", NOW)  # type: ignore[arg-type]


def test_every_flipped_byte_is_refused() -> None:
    raw = mina_entry().raw
    for i in range(len(raw)):
        flipped = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        with pytest.raises(DirectoryError):
            verify_entry(flipped, NOW)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_directory_errors(data: bytes) -> None:
    with pytest.raises(DirectoryError):
        verify_entry(data, NOW)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=16)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=16,
)


FIELDS = msgpack.unpackb(mina_entry().raw, raw=False)


@FUZZ
@given(st.sampled_from(sorted(FIELDS)), msgpack_values)
def test_any_field_value_raises_only_directory_errors(name: str, value: Any) -> None:
    fields = dict(FIELDS)
    fields[name] = value
    with contextlib.suppress(DirectoryError):  # either still valid, or refused as such
        verify_entry(msgpack.packb(fields, use_bin_type=True), NOW)


# --- local misuse ---------------------------------------------------------------------------


def test_make_entry_refuses_what_peers_would_refuse() -> None:
    with pytest.raises(DirectoryUsageError) as caught:
        make_entry(MINA, sample_card(KAI.peer_id_str), [], Status.ONLINE, Clock(NOW), LEASE, NOW)
    assert caught.value.reason == "wrong_signer"
    for lease in (0, MAX_LEASE_MS + 1):
        with pytest.raises(DirectoryUsageError):
            mina_entry(lease_ms=lease)
    with pytest.raises(DirectoryUsageError) as caught:
        mina_entry(clock=Clock(NOW + DAY_MS))
    assert caught.value.reason == "future_clock"
    with pytest.raises(DirectoryUsageError) as caught:
        mina_entry(addrs=["not a multiaddr"])
    assert caught.value.reason == "invalid_field"
    with pytest.raises(DirectoryUsageError):
        make_vouched_entry(
            BRIDGE,
            "bad handle!",
            sample_card(MINA.peer_id_str),
            ["https://x"],
            Status.ONLINE,
            Clock(NOW),
            LEASE,
            NOW,
        )
