"""Identity and PeerIDs, cross-checked against py-libp2p and the base58 package."""

from __future__ import annotations

import base64
import re

import base58
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.crypto.ed25519 import Ed25519PrivateKey, Ed25519PublicKey, create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID

from keys import (
    Identity,
    InvalidPeerId,
    KeyUsageError,
    Malformed,
    peer_id_from_public_key,
    peer_id_from_str,
    peer_id_to_str,
    public_key_from_peer_id,
    verify_signature,
)
from keys._base58 import b58decode, b58encode

LAWS = settings(max_examples=500, deadline=None, database=None)
seeds = st.binary(min_size=32, max_size=32)


@settings(max_examples=200, deadline=None, database=None)
@given(seeds)
def test_peer_id_matches_libp2p(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    key_pair = create_new_key_pair(seed)
    libp2p_id = ID.from_pubkey(key_pair.public_key)
    assert identity.peer_id == libp2p_id.to_bytes()
    assert identity.peer_id_str == libp2p_id.to_base58()
    assert identity.peer_id_str.startswith("12D3KooW")
    assert identity.public_key == key_pair.public_key.to_bytes()
    assert key_pair.private_key.to_bytes() == identity.seed


def test_key_pair_built_by_hand_matches() -> None:
    identity = Identity.generate()
    private_key = Ed25519PrivateKey.from_bytes(identity.seed)
    key_pair = KeyPair(private_key, private_key.get_public_key())
    assert ID.from_pubkey(key_pair.public_key).to_bytes() == identity.peer_id
    assert ID.from_base58(identity.peer_id_str).extract_public_key() is not None


def test_signatures_interoperate_with_libp2p() -> None:
    identity = Identity.generate()
    key_pair = create_new_key_pair(identity.seed)
    assert Ed25519PublicKey.from_bytes(identity.public_key).verify(b"m", identity.sign(b"m"))
    assert verify_signature(identity.public_key, b"m", key_pair.private_key.sign(b"m"))


def test_sign_and_verify() -> None:
    identity = Identity.generate()
    sig = identity.sign(b"hello")
    assert len(sig) == 64
    assert verify_signature(identity.public_key, b"hello", sig)
    assert not verify_signature(identity.public_key, b"hellO", sig)
    assert not verify_signature(Identity.generate().public_key, b"hello", sig)
    assert not verify_signature(identity.public_key, b"hello", sig[:-1])
    assert not verify_signature(identity.public_key[:-1], b"hello", sig)
    assert not verify_signature(bytes(32), b"hello", sig)


def test_from_seed_is_deterministic() -> None:
    seed = bytes(range(32))
    assert Identity.from_seed(seed) == Identity.from_seed(seed)
    assert Identity.from_seed(seed).seed == seed
    assert Identity.from_seed(seed) != Identity.generate()


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_from_seed_refuses_wrong_length(seed: bytes) -> None:
    with pytest.raises(KeyUsageError):
        Identity.from_seed(seed)


def test_repr_does_not_reveal_seed() -> None:
    identity = Identity.from_seed(bytes(range(32)))
    text = repr(identity) + str(identity)
    assert identity.peer_id_str in text
    for form in (
        identity.seed.hex(),
        base64.b64encode(identity.seed).decode(),
        repr(identity.seed),
    ):
        assert form not in text


def test_fingerprint_format() -> None:
    identity = Identity.from_seed(bytes(range(32)))
    assert re.fullmatch(r"[0-9a-f]{4}(:[0-9a-f]{4}){7}", identity.fingerprint)
    assert identity.fingerprint != Identity.generate().fingerprint


@LAWS
@given(seeds)
def test_peer_id_string_round_trip(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    assert peer_id_to_str(identity.peer_id) == identity.peer_id_str
    assert peer_id_from_str(identity.peer_id_str) == identity.peer_id
    assert public_key_from_peer_id(identity.peer_id) == identity.public_key
    assert peer_id_from_public_key(identity.public_key) == identity.peer_id


@LAWS
@given(st.binary(max_size=64))
def test_base58_matches_reference(data: bytes) -> None:
    assert b58encode(data) == base58.b58encode(data).decode()
    assert b58decode(b58encode(data)) == data


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0OIl",
        "12D3KooW" + "x" * 100,
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",  # sha256 PeerID (RSA era)
        "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeS",  # one character short
        "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB ",
    ],
)
def test_peer_id_from_str_refuses(text: str) -> None:
    with pytest.raises(InvalidPeerId):
        peer_id_from_str(text)


@pytest.mark.parametrize(
    "peer_id",
    [
        b"",
        bytes(38),
        b"\x00\x24\x08\x02\x12\x20" + bytes(32),
        b"\x00\x24\x08\x01\x12\x20" + bytes(31),
    ],
)
def test_public_key_from_peer_id_refuses(peer_id: bytes) -> None:
    with pytest.raises(Malformed):
        public_key_from_peer_id(peer_id)


def test_peer_id_from_public_key_refuses_wrong_length() -> None:
    with pytest.raises(KeyUsageError):
        peer_id_from_public_key(bytes(31))
