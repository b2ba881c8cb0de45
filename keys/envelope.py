"""The signed envelope every application message travels in (DESIGN §3).

Wire form: a canonical msgpack map (see :mod:`keys.canonical`) with exactly the keys
``v`` (1), ``kind`` (str), ``from`` (PeerID bytes), ``seq`` (int), ``ts`` (ms since the
epoch), ``body`` (map) and ``sig`` (64 bytes). ``sig`` is Ed25519 over::

    DOMAIN + kind + b"\\x00" + channel + b"\\x00" + canonical(map without "sig")

where ``channel`` is the gossipsub topic or stream protocol id the envelope travels on,
so an envelope is only valid on the channel it was sealed for.

:func:`verify` demands the canonical encoding byte for byte, so every envelope has
exactly one valid encoding: the bytes signed, stored, hashed and shown are the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from types import MappingProxyType
from typing import Any, Final

from keys import canonical
from keys.bodies import BODIES, Bodies, validate_body
from keys.channels import channel_size_cap, kinds_allowed_on
from keys.errors import (
    BadSignature,
    EnvelopeError,
    KeyUsageError,
    Malformed,
    Oversize,
    SealError,
    SenderMismatch,
    StaleTimestamp,
    UnknownKind,
    UnknownVersion,
    WrongChannel,
)
from keys.identity import (
    SIGNATURE_SIZE,
    Identity,
    peer_id_to_str,
    public_key_from_peer_id,
    verify_signature,
)
from keys.kinds import HARD_CAP, KINDS, SIZE_CAPS
from keys.replay import ReplayWindow
from keys.sequence import MAX_SEQ

VERSION: Final = 1
DOMAIN: Final = b"roomverse/envelope/v1\x00"
DEFAULT_WINDOW_MS: Final = 300_000
MAX_TS_MS: Final = 2**63 - 1
_FIELDS: Final = frozenset({"v", "kind", "from", "seq", "ts", "body", "sig"})

# Only verify() holds this, so only verify() can build a Verified.
_VERIFIED_BY_VERIFY: Final = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verified:
    """An envelope that passed every check of :func:`verify`.

    Only :func:`verify` can construct one (the constructor demands a module-private
    token; ``dataclasses.replace`` fails for want of it), so a function that takes
    ``Verified`` cannot be handed unverified or altered data. Two instances are
    equal when they hold the same bytes received on the same channel.
    """

    v: int = field(compare=False)
    kind: str = field(compare=False)
    sender: bytes = field(compare=False)
    seq: int = field(compare=False)
    ts_ms: int = field(compare=False)
    body: Mapping[str, Any] = field(compare=False)
    sig: bytes = field(compare=False, repr=False)
    raw: bytes = field(repr=False)
    channel: str
    # An init-only variable, not a field: dataclasses.replace() cannot copy it.
    _token: InitVar[object]

    def __post_init__(self, _token: object) -> None:
        if _token is not _VERIFIED_BY_VERIFY:
            raise KeyUsageError("only keys.envelope.verify() can construct Verified")

    @property
    def sender_str(self) -> str:
        """The sender's PeerID as base58btc text (``12D3KooW...``)."""
        return peer_id_to_str(self.sender)


def _signing_input(kind: str, channel: str, unsigned: bytes) -> bytes:
    return DOMAIN + kind.encode() + b"\x00" + channel.encode() + b"\x00" + unsigned


def _is_int(value: object) -> bool:
    return type(value) is int  # bool is an int subclass and must not pass


def seal(
    identity: Identity,
    *,
    kind: str,
    channel: str,
    seq: int,
    ts_ms: int,
    body: Mapping[str, Any],
    bodies: Bodies = BODIES,
) -> bytes:
    """Sign an envelope and return its wire bytes.

    Raises :class:`SealError` (a local error, ``reason`` as ``verify()`` would report it)
    if the envelope would be refused by :func:`verify` given the same ``bodies``: unknown
    kind, kind not carried on ``channel``, ``seq`` or ``ts_ms`` out of range, a body
    outside its schema (or of a kind ``bodies`` has no validator for), or too big.
    """
    if kind not in KINDS:
        raise SealError(f"unknown kind {kind!r}", reason=UnknownKind.reason)
    if kind not in kinds_allowed_on(channel):
        raise SealError(f"kind {kind!r} is not carried on {channel!r}", reason=WrongChannel.reason)
    if not _is_int(seq) or not 0 <= seq <= MAX_SEQ:
        raise SealError(f"seq must be an int in 0..{MAX_SEQ}", reason=Malformed.reason)
    if not _is_int(ts_ms) or not 0 <= ts_ms <= MAX_TS_MS:
        raise SealError(f"ts_ms must be an int in 0..{MAX_TS_MS}", reason=Malformed.reason)
    if not isinstance(body, Mapping):
        raise SealError("body must be a mapping", reason=Malformed.reason)
    try:
        plain_body = canonical.normalize(body)
        validate_body(kind, plain_body, bodies)
    except EnvelopeError as exc:
        raise SealError(str(exc), reason=exc.reason) from exc
    unsigned = {
        "v": VERSION,
        "kind": kind,
        "from": identity.peer_id,
        "seq": seq,
        "ts": ts_ms,
        "body": plain_body,
    }
    sig = identity.sign(_signing_input(kind, channel, canonical.packb(unsigned)))
    wire = canonical.packb({**unsigned, "sig": sig})
    if len(wire) > SIZE_CAPS[kind]:
        raise SealError(
            f"{kind} envelope is {len(wire)} bytes, cap {SIZE_CAPS[kind]}",
            reason=Oversize.reason,
        )
    return wire


def verify(
    data: bytes,
    *,
    channel: str,
    now_ms: int,
    transport_peer: bytes | None = None,
    replay: ReplayWindow | None = None,
    window_ms: int = DEFAULT_WINDOW_MS,
    bodies: Bodies = BODIES,
) -> Verified:
    """Check an envelope received on ``channel`` and return it as :class:`Verified`.

    Checks, cheapest and least trusting first: size caps, msgpack, fields and types,
    version, kind and channel, body schema (the validator of its kind in ``bodies``; a
    kind without one is refused), canonical encoding, signature, transport peer (if
    given), ``|ts - now_ms| <= window_ms``, and ``replay.check`` (if given).

    Does not record the envelope in ``replay``: call ``replay.accept(v.sender, v.seq)``
    once it is stored. Raises only :class:`EnvelopeError` subclasses, for any ``data``.
    """
    size = len(data)
    if size > HARD_CAP:
        raise Oversize(f"envelope is {size} bytes, hard cap {HARD_CAP}")
    channel_cap = channel_size_cap(channel)
    if size > channel_cap:
        raise Oversize(f"envelope is {size} bytes, cap on this channel {channel_cap}")

    decoded = canonical.unpackb(data)
    if type(decoded) is not dict:
        raise Malformed("envelope is not a map")
    # Read v first so that a future version with other fields is reported as such.
    version = decoded.get("v")
    if _is_int(version) and version != VERSION:
        raise UnknownVersion(f"envelope version {version} is not supported")
    if decoded.keys() != _FIELDS:
        raise Malformed("envelope must have exactly the fields v, kind, from, seq, ts, body, sig")
    kind = decoded["kind"]
    sender = decoded["from"]
    seq = decoded["seq"]
    ts = decoded["ts"]
    body = decoded["body"]
    sig = decoded["sig"]
    if not _is_int(version):
        raise Malformed("v must be an int")
    if type(kind) is not str:
        raise Malformed("kind must be a str")
    if type(sender) is not bytes:
        raise Malformed("from must be bytes")
    if not _is_int(seq) or not 0 <= seq <= MAX_SEQ:
        raise Malformed(f"seq must be an int in 0..{MAX_SEQ}")
    if not _is_int(ts) or not 0 <= ts <= MAX_TS_MS:
        raise Malformed(f"ts must be an int in 0..{MAX_TS_MS}")
    if type(body) is not dict:
        raise Malformed("body must be a map")
    if type(sig) is not bytes or len(sig) != SIGNATURE_SIZE:
        raise Malformed(f"sig must be {SIGNATURE_SIZE} bytes")

    if kind not in KINDS:
        raise UnknownKind(f"unknown kind {canonical.field_label(kind)}")
    if kind not in kinds_allowed_on(channel):
        raise WrongChannel(f"kind {kind!r} is not carried on this channel")
    if size > SIZE_CAPS[kind]:
        raise Oversize(f"{kind} envelope is {size} bytes, cap {SIZE_CAPS[kind]}")
    validate_body(kind, canonical.normalize(body), bodies)

    if canonical.packb(decoded) != data:
        raise Malformed("non-canonical encoding")
    public_key = public_key_from_peer_id(sender)
    del decoded["sig"]
    signed = _signing_input(kind, channel, canonical.packb(decoded))
    if not verify_signature(public_key, signed, sig):
        raise BadSignature("signature does not verify")
    if transport_peer is not None and transport_peer != sender:
        raise SenderMismatch(f"from {peer_id_to_str(sender)} was delivered by another peer")
    if abs(ts - now_ms) > window_ms:
        raise StaleTimestamp(
            f"ts is {ts - now_ms} ms from now, window ±{window_ms} ms",
            sender=sender,
            ahead_ms=ts - now_ms,
        )
    if replay is not None:
        replay.check(sender, seq)

    return Verified(
        v=VERSION,
        kind=kind,
        sender=sender,
        seq=seq,
        ts_ms=ts,
        body=MappingProxyType(body),
        sig=sig,
        raw=bytes(data),
        channel=channel,
        _token=_VERIFIED_BY_VERIFY,
    )
