"""A directory entry: one peer's signed presence, and the checks a receiver runs on it.

Wire form, a canonical msgpack map with exactly these keys::

    v          1
    peer       PeerID bytes: the key of this entry in the directory
    vouch      nil, or {by: bridge PeerID bytes, handle: str} for a legacy HTTP participant
    card       the name card (registry_crdt.card), signed by the same signer
    cardDigest SHA-256 of the card's canonical encoding
    addrs      multiaddrs; for a vouched entry, the participant's http(s) URL(s)
    status     online | away | asleep | left
    clock      [wall_ms, counter], a hybrid logical clock reading
    expiresAt  ms since the epoch; the lease: after it the peer reads as offline
    sig        Ed25519 by the signer over ENTRY_DOMAIN + canonical(map without sig)

Who may sign: the owner (``peer``) itself, or, for a vouched entry, the bridge ``vouch.by``
— and a bridge may only vouch for ``peer == legacy_peer_id(bridge, handle)``, a PeerID
derived from its own, which no one holds a key for. So every key has exactly one possible
signer and a bridge can never write over a real character's entry.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import InitVar, dataclass, field, replace
from typing import Any, Final

from keys import (
    EnvelopeError,
    Identity,
    Malformed,
    canonical,
    peer_id_from_public_key,
    peer_id_to_str,
    public_key_from_peer_id,
    verify_signature,
)
from registry_crdt import _schema as check
from registry_crdt.card import (
    NameCard,
    card_digest,
    card_from_dict,
    card_to_dict,
    sign_card,
    verify_card,
)
from registry_crdt.clock import Clock
from registry_crdt.errors import (
    BadEntrySignature,
    DirectoryError,
    DirectoryUsageError,
    EntryTooLarge,
    FutureClock,
    InvalidField,
    MalformedEntry,
    UnsupportedVersion,
    WrongSigner,
)
from registry_crdt.limits import (
    DIGEST_HASH_BYTES,
    HORIZON_MS,
    MAX_ADDRS,
    MAX_COUNTER,
    MAX_ENTRY_BYTES,
    MAX_HANDLE_CHARS,
    MAX_LEASE_MS,
    MAX_SKEW_MS,
    MAX_URL_CHARS,
    MAX_WALL_MS,
)
from registry_crdt.presence import Presence as Presence
from registry_crdt.presence import Status as Status
from registry_crdt.presence import lease_end, read_presence

ENTRY_VERSION: Final = 1
ENTRY_DOMAIN: Final = b"roomverse/directory-entry/v1\x00"
LEGACY_DOMAIN: Final = b"roomverse/legacy-peer/v1\x00"
MAX_VOUCHED_URLS: Final = 4
_FIELDS: Final = (
    "v",
    "peer",
    "vouch",
    "card",
    "cardDigest",
    "addrs",
    "status",
    "clock",
    "expiresAt",
    "sig",
)
_HANDLE: Final = re.compile(r"[A-Za-z0-9._-]+")
# Only the functions of this module hold it, so only they can build an Entry.
_CHECKED: Final = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class Vouch:
    """A bridge's claim to speak for a legacy HTTP participant it calls ``handle``."""

    by: bytes
    handle: str


@dataclass(frozen=True, slots=True)
class DigestItem:
    """What a digest says about one entry: whose, how new, and a 128-bit hash prefix."""

    peer: bytes
    clock: Clock
    hash: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """A checked, signed directory entry (only :func:`verify_entry`/:func:`make_entry` make one).

    Two entries are equal when their wire bytes are equal.
    """

    peer: bytes = field(compare=False)
    vouch: Vouch | None = field(compare=False)
    card: NameCard = field(compare=False, repr=False)
    card_digest: bytes = field(compare=False, repr=False)
    addrs: tuple[str, ...] = field(compare=False)
    status: Status = field(compare=False)
    clock: Clock = field(compare=False)
    expires_ms: int = field(compare=False)
    sig: bytes = field(compare=False, repr=False)
    raw: bytes = field(repr=False)
    hash: bytes = field(compare=False, repr=False)
    item: DigestItem = field(compare=False, repr=False)
    learned_ms: int | None = field(default=None, compare=False)
    """When the replica holding this entry learned it, on its own clock (None: not held,
    or restored from a snapshot). Not part of the entry: see :func:`held`."""
    _token: InitVar[object]

    def __post_init__(self, _token: object) -> None:
        if _token is not _CHECKED:
            raise DirectoryUsageError("entries are made by make_entry() or verify_entry()")

    @property
    def signer(self) -> bytes:
        """The PeerID that signed the entry: the peer, or its vouching bridge."""
        return self.vouch.by if self.vouch is not None else self.peer

    @property
    def peer_str(self) -> str:
        """The peer's PeerID as text (``12D3KooW...``)."""
        return peer_id_to_str(self.peer)

    @property
    def retain_until_ms(self) -> int:
        """When replicas forget this entry (and refuse it): see :func:`retain_until`."""
        return retain_until(self.clock)

    @property
    def lease_ms(self) -> int:
        """How long the lease runs, as the writer asked: ``expiresAt - clock.wall_ms``."""
        return self.expires_ms - self.clock.wall_ms

    @property
    def lease_end_ms(self) -> int:
        """When the lease lapses on the reader's clock (:mod:`registry_crdt.presence`):
        ``lease_ms`` after :attr:`learned_ms` (capped), else the writer's ``expiresAt``."""
        return lease_end(self.expires_ms, self.lease_ms, self.learned_ms)

    def presence(self, now_ms: int) -> Presence:
        """Return the status, or ``offline`` once the lease has lapsed (``left`` stays left).

        ``now_ms`` is the reader's clock; for an entry a :class:`~registry_crdt.Directory`
        holds, the lease runs from when that replica learned it, so a writer whose clock
        is off reads the same as one whose clock is right.
        """
        return read_presence(self.status, self.lease_end_ms, now_ms)

    def wins_over(self, other: Entry) -> bool:
        """Tell whether this entry replaces ``other`` for the same peer.

        Last writer wins on the clock; equal clocks (an equivocating signer) are broken
        by the larger SHA-256 of the wire bytes, which every replica computes alike.
        """
        return (self.clock, self.hash) > (other.clock, other.hash)


def held(entry: Entry, learned_ms: int | None) -> Entry:
    """Return ``entry`` as a replica holds it: the same signed entry, learned at
    ``learned_ms`` on the replica's clock (None: when is not known)."""
    if entry.learned_ms == learned_ms:
        return entry
    return replace(entry, learned_ms=learned_ms, _token=_CHECKED)


def retain_until(clock: Clock) -> int:
    """Return the time from which an entry with ``clock`` is forgotten and refused.

    ``clock.wall_ms + MAX_LEASE_MS + HORIZON_MS``: after the longest lease the entry
    could carry, plus the horizon. It depends on the clock alone, so it grows with the
    clock: whenever an entry is collected, every older entry of the same peer is already
    collectable too, and is refused if it arrives late — a collected tombstone can never
    let an older entry come back. It also exceeds every unexpired lease, so a live peer's
    entry is never collected.
    """
    return clock.wall_ms + MAX_LEASE_MS + HORIZON_MS


def key_of(peer: bytes) -> int:
    """Return the 32-bit position of ``peer`` in the key space digests and summaries split.

    The first four bytes of the Ed25519 public key: uniform for real keys, and grinding
    many keys into one position only costs the grinder sync efficiency.
    """
    return int.from_bytes(peer[6:10], "big")


def legacy_peer_id(bridge: bytes, handle: str) -> bytes:
    """Return the PeerID a bridge vouches for its legacy participant ``handle`` under.

    A hash, used as an Ed25519 public key no one has the private key of: only the
    bridge's own vouched entries can ever exist for it.
    """
    check.peer_id(bridge, "bridge")
    check.pattern(handle, "handle", _HANDLE, MAX_HANDLE_CHARS, "a handle ([A-Za-z0-9._-])")
    digest = hashlib.sha256(LEGACY_DOMAIN + bridge + b"\x00" + handle.encode()).digest()
    return peer_id_from_public_key(digest)


def make_entry(
    identity: Identity,
    card: NameCard,
    addrs: tuple[str, ...] | list[str],
    status: Status,
    clock: Clock,
    lease_ms: int,
    now_ms: int,
) -> Entry:
    """Sign ``identity``'s own entry (the card is signed too) and return it.

    The lease runs ``lease_ms`` from ``clock.wall_ms`` (at most ``MAX_LEASE_MS``). Raises
    :class:`DirectoryUsageError`, with the ``reason`` a receiver would give, for an entry
    that peers would refuse at ``now_ms``.
    """
    if card.id != identity.peer_id_str:
        raise DirectoryUsageError("card.id must be the signer's PeerID", reason="wrong_signer")
    return _seal(identity, identity.peer_id, None, card, addrs, status, clock, lease_ms, now_ms)


def make_vouched_entry(
    bridge: Identity,
    handle: str,
    card: NameCard,
    urls: tuple[str, ...] | list[str],
    status: Status,
    clock: Clock,
    lease_ms: int,
    now_ms: int,
) -> Entry:
    """Sign, as ``bridge``, the entry of the legacy HTTP participant it calls ``handle``.

    ``card.id`` must be ``peer_id_to_str(legacy_peer_id(bridge.peer_id, handle))``;
    ``urls`` are where the participant's HTTP server answers.
    """
    try:
        peer = legacy_peer_id(bridge.peer_id, handle)
    except DirectoryError as exc:
        raise DirectoryUsageError(str(exc), reason=exc.reason) from exc
    if card.id != peer_id_to_str(peer):
        raise DirectoryUsageError(
            "card.id must be legacy_peer_id(bridge, handle)", reason="wrong_signer"
        )
    vouch = Vouch(by=bridge.peer_id, handle=handle)
    return _seal(bridge, peer, vouch, card, urls, status, clock, lease_ms, now_ms)


def verify_entry(data: bytes | Entry, now_ms: int) -> Entry:
    """Check an entry from the network (wire bytes) and return it as an :class:`Entry`.

    Checks, cheapest first: size, msgpack, fields and bounds, canonical encoding, who may
    sign, the clock against ``now_ms + MAX_SKEW_MS``, then both signatures. An
    :class:`Entry` is re-checked against ``now_ms`` only. Raises only
    :class:`~registry_crdt.errors.DirectoryError` subclasses, for any input.
    """
    if isinstance(data, Entry):
        check_clock(data.clock, now_ms)
        return data
    decoded, entry = _parse(data, "entry")
    check_clock(entry.clock, now_ms)
    verify_card(entry.card, entry.signer)
    del decoded["sig"]
    signed = ENTRY_DOMAIN + canonical.packb(decoded)
    if not verify_signature(public_key_from_peer_id(entry.signer), signed, entry.sig):
        raise BadEntrySignature("entry signature does not verify under its signer's key")
    return entry


def check_entry_schema(data: Any, path: str = "entry") -> None:
    """Raise a :class:`DirectoryError` unless ``data`` is a well-formed entry (no signature
    or clock check: for body validators, which have neither the time nor the budget)."""
    _parse(data, path)


def check_clock(clock: Clock, now_ms: int) -> None:
    """Raise :class:`FutureClock` if ``clock`` is more than ``MAX_SKEW_MS`` ahead of now."""
    if clock.wall_ms > now_ms + MAX_SKEW_MS:
        raise FutureClock(
            f"clock is {clock.wall_ms - now_ms} ms ahead of now, skew cap {MAX_SKEW_MS} ms"
        )


def _seal(
    signer: Identity,
    peer: bytes,
    vouch: Vouch | None,
    card: NameCard,
    addrs: tuple[str, ...] | list[str],
    status: Status,
    clock: Clock,
    lease_ms: int,
    now_ms: int,
) -> Entry:
    if type(lease_ms) is not int or not 1 <= lease_ms <= MAX_LEASE_MS:
        raise DirectoryUsageError(f"lease_ms must be in 1..{MAX_LEASE_MS}", reason="invalid_field")
    if not isinstance(clock, Clock) or status not in list(Status):
        raise DirectoryUsageError("clock must be a Clock, status a Status", reason="invalid_field")
    signed_card = sign_card(signer, card)
    unsigned: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "peer": peer,
        "vouch": None if vouch is None else {"by": vouch.by, "handle": vouch.handle},
        "card": card_to_dict(signed_card),
        "cardDigest": card_digest(signed_card),
        "addrs": list(addrs),
        "status": str(Status(status).value),
        "clock": [clock.wall_ms, clock.counter],
        "expiresAt": clock.wall_ms + lease_ms,
    }
    try:
        plain = canonical.normalize(unsigned)
        sig = signer.sign(ENTRY_DOMAIN + canonical.packb(plain))
        raw = canonical.packb({**plain, "sig": sig})
        _, entry = _parse(raw, "entry")
        check_clock(entry.clock, now_ms)
    except (DirectoryError, EnvelopeError) as exc:
        raise DirectoryUsageError(f"entry refused: {exc}", reason=exc.reason) from exc
    return entry


def _parse(data: Any, path: str) -> tuple[dict[str, Any], Entry]:
    if type(data) is not bytes:
        raise MalformedEntry(f"{path}: must be bytes")
    if len(data) > MAX_ENTRY_BYTES:
        raise EntryTooLarge(f"{path} is {len(data)} bytes, cap {MAX_ENTRY_BYTES}")
    try:
        decoded = canonical.unpackb(data)
    except Malformed as exc:
        raise MalformedEntry(f"{path}: {exc}") from None
    if type(decoded) is not dict:
        raise MalformedEntry(f"{path}: must be a map")
    version = decoded.get("v")
    if type(version) is int and version != ENTRY_VERSION:
        raise UnsupportedVersion(f"{path}.v {version} is not supported")
    check.fields(decoded, path, _FIELDS)
    check.integer(version, f"{path}.v", ENTRY_VERSION, ENTRY_VERSION)
    peer = check.peer_id(decoded["peer"], f"{path}.peer")
    vouch = _vouch(decoded["vouch"], peer, f"{path}.vouch")
    addrs = _addrs(decoded["addrs"], vouch is not None, f"{path}.addrs")
    status = Status(check.one_of(decoded["status"], f"{path}.status", list(Status)))
    clock = _clock(decoded["clock"], f"{path}.clock")
    expires = check.integer(
        decoded["expiresAt"], f"{path}.expiresAt", 0, MAX_WALL_MS + MAX_LEASE_MS
    )
    if not clock.wall_ms < expires <= clock.wall_ms + MAX_LEASE_MS:
        raise InvalidField(f"{path}.expiresAt", f"must be 1..{MAX_LEASE_MS} ms after the clock")
    sig = check.binary(decoded["sig"], f"{path}.sig", 64)
    digest = check.binary(decoded["cardDigest"], f"{path}.cardDigest", 32)
    card = card_from_dict(decoded["card"], f"{path}.card")
    if card.id != peer_id_to_str(peer):
        raise WrongSigner(f"{path}.card.id names another peer than {path}.peer")
    if card_digest(card) != digest:
        raise InvalidField(f"{path}.cardDigest", "does not match the card")
    if canonical.packb(decoded) != data:
        raise MalformedEntry(f"{path}: non-canonical encoding")
    entry_hash = hashlib.sha256(data).digest()
    entry = Entry(
        peer=peer,
        vouch=vouch,
        card=card,
        card_digest=digest,
        addrs=addrs,
        status=status,
        clock=clock,
        expires_ms=expires,
        sig=sig,
        raw=data,
        hash=entry_hash,
        item=DigestItem(peer, clock, entry_hash[:DIGEST_HASH_BYTES]),
        _token=_CHECKED,
    )
    return decoded, entry


def _vouch(value: Any, peer: bytes, path: str) -> Vouch | None:
    if value is None:
        return None
    fields = check.fields(value, path, ("by", "handle"))
    bridge = check.peer_id(fields["by"], f"{path}.by")
    handle = check.pattern(
        fields["handle"], f"{path}.handle", _HANDLE, MAX_HANDLE_CHARS, "a handle ([A-Za-z0-9._-])"
    )
    if legacy_peer_id(bridge, handle) != peer:
        raise WrongSigner(f"{path}: a bridge may only vouch for legacy_peer_id(bridge, handle)")
    return Vouch(by=bridge, handle=handle)


def _addrs(value: Any, vouched: bool, path: str) -> tuple[str, ...]:
    if vouched:
        urls = check.array(value, path, MAX_VOUCHED_URLS, low=1)
        for i, url in enumerate(urls):
            check.url(url, f"{path}[{i}]", MAX_URL_CHARS)
        check.unique(urls, path)
        return tuple(urls)
    addrs = check.array(value, path, MAX_ADDRS)
    for i, addr in enumerate(addrs):
        check.multiaddr(addr, f"{path}[{i}]")
    check.unique(addrs, path)
    return tuple(addrs)


def _clock(value: Any, path: str) -> Clock:
    pair = check.array(value, path, 2, low=2)
    return Clock(
        check.integer(pair[0], f"{path}[0]", 0, MAX_WALL_MS),
        check.integer(pair[1], f"{path}[1]", 0, MAX_COUNTER),
    )
