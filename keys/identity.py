"""Ed25519 identity: one key per character, which is also its libp2p host key.

A libp2p PeerID for an Ed25519 key is the identity multihash (code 0x00) of the
protobuf-encoded ``PublicKey{Type: Ed25519, Data: key}``, so the key can always be read
back out of the PeerID; that is why envelopes carry only ``from`` and no public key.
"""

from __future__ import annotations

import hashlib

import nacl.exceptions
import nacl.signing

from keys._base58 import b58decode, b58encode
from keys.errors import InvalidPeerId, KeyUsageError, Malformed

SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64

# identity multihash (code 0x00, length 36) of the protobuf PublicKey
# {field 1 (Type) = 1 (Ed25519), field 2 (Data) = 32 bytes}.
_PEER_ID_PREFIX = b"\x00\x24\x08\x01\x12\x20"
PEER_ID_SIZE = len(_PEER_ID_PREFIX) + PUBLIC_KEY_SIZE
# base58 of a 38-byte PeerID is 52 characters; the bound stops quadratic decoding of junk.
_MAX_PEER_ID_STR_LEN = 64


def peer_id_from_public_key(public_key: bytes) -> bytes:
    """Return the libp2p PeerID bytes of a 32-byte Ed25519 public key."""
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_SIZE:
        raise KeyUsageError("an Ed25519 public key is 32 bytes")
    return _PEER_ID_PREFIX + public_key


def public_key_from_peer_id(peer_id: bytes) -> bytes:
    """Return the Ed25519 public key inlined in ``peer_id``.

    Raises :class:`~keys.errors.Malformed` for anything but an Ed25519 identity-multihash
    PeerID, since PeerIDs normally come from the network.
    """
    if (
        not isinstance(peer_id, bytes)
        or len(peer_id) != PEER_ID_SIZE
        or not peer_id.startswith(_PEER_ID_PREFIX)
    ):
        raise Malformed("peer id is not an Ed25519 identity-multihash PeerID")
    return peer_id[len(_PEER_ID_PREFIX) :]


def is_peer_id(peer_id: bytes) -> bool:
    """Tell whether ``peer_id`` is an Ed25519 identity-multihash PeerID."""
    return (
        isinstance(peer_id, bytes)
        and len(peer_id) == PEER_ID_SIZE
        and peer_id.startswith(_PEER_ID_PREFIX)
    )


def peer_id_to_str(peer_id: bytes) -> str:
    """Return the base58btc text form of PeerID bytes (``12D3KooW...`` for Ed25519)."""
    return b58encode(peer_id)


def peer_id_from_str(text: str) -> bytes:
    """Parse a base58btc PeerID string; only Ed25519 PeerIDs are accepted."""
    if not isinstance(text, str) or not 0 < len(text) <= _MAX_PEER_ID_STR_LEN:
        raise InvalidPeerId("not a PeerID: wrong length")
    try:
        peer_id = b58decode(text)
    except ValueError:
        raise InvalidPeerId("not a PeerID: not base58btc") from None
    if not is_peer_id(peer_id):
        raise InvalidPeerId("not an Ed25519 PeerID (expected 12D3KooW...)")
    return peer_id


def verify_signature(public_key: bytes, data: bytes, signature: bytes) -> bool:
    """Tell whether ``signature`` is a valid Ed25519 signature of ``data`` by ``public_key``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(data, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True


def fingerprint_of(public_key: bytes) -> str:
    """Return a short human fingerprint: 16 bytes of SHA-256, hex in groups of 4."""
    digest = hashlib.sha256(public_key).digest()[:16].hex()
    return ":".join(digest[i : i + 4] for i in range(0, len(digest), 4))


class Identity:
    """An Ed25519 signing identity. Its repr shows the PeerID, never the seed."""

    __slots__ = ("_peer_id", "_signing_key")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        """Wrap a PyNaCl signing key; prefer :meth:`generate` or :meth:`from_seed`."""
        self._signing_key = signing_key
        self._peer_id = _PEER_ID_PREFIX + bytes(signing_key.verify_key)

    @classmethod
    def generate(cls) -> Identity:
        """Return a new identity from the operating system's CSPRNG."""
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """Return the identity derived from a 32-byte Ed25519 seed."""
        if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
            raise KeyUsageError("an Ed25519 seed is 32 bytes")
        return cls(nacl.signing.SigningKey(seed))

    @property
    def seed(self) -> bytes:
        """The 32-byte private seed. Secret: never log it or send it."""
        return bytes(self._signing_key)

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._peer_id[len(_PEER_ID_PREFIX) :]

    @property
    def peer_id(self) -> bytes:
        """The libp2p PeerID bytes."""
        return self._peer_id

    @property
    def peer_id_str(self) -> str:
        """The libp2p PeerID as base58btc text (``12D3KooW...``)."""
        return b58encode(self._peer_id)

    @property
    def fingerprint(self) -> str:
        """A short fingerprint of the public key for humans to compare."""
        return fingerprint_of(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``data``."""
        return bytes(self._signing_key.sign(data).signature)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return self._peer_id == other._peer_id

    def __hash__(self) -> int:
        return hash(self._peer_id)

    def __repr__(self) -> str:
        return f"Identity({self.peer_id_str})"
