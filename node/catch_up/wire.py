"""``/roomverse/catchup/1.0.0``: what one catch-up exchange looks like on the wire.

Gossip delivers an action once, or never: a message lost on a link is advertised to
peers for three heartbeats (py-libp2p's gossip window), and one sent into a connection
the liveness check then closes as dead is gone for good (issue 18 measured 2-5 lost
lines in 4 runs of 10 at 40 % loss). CatchUp is the actions' anti-entropy: A tells B
which recent public envelopes it holds, B answers with the ones A lacks::

    A ──held───▶ B      one frame: {"v": 1, "held": [[sender, [seq, ...]], ...]}
    A ◀──frames── B     [channel, envelope] per frame, then an empty frame

The request carries no application content (only which signed envelopes A holds), so it
is a plain msgpack map on the Noise-authenticated stream, not an envelope. The answer is
the original envelopes, sealed and signed by their authors: A verifies each one as if
gossip had brought it (signature, channel, timestamp window, replay window), so a relay
can withhold envelopes but never forge or replay one. Every read is bounded in size,
count and time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from keys import TOPIC_ACTIONS, TOPIC_CONTEXTS
from keys.errors import RemoteError
from keys.kinds import KIND_ACTION, KIND_CONTEXT, SIZE_CAPS

PROTO_CATCH_UP: Final = "/roomverse/catchup/1.0.0"
VERSION: Final = 1

KINDS: Final = (KIND_ACTION, KIND_CONTEXT)
CHANNELS: Final = frozenset({TOPIC_ACTIONS, TOPIC_CONTEXTS})
"""The public channels catch-up repairs (visits and the directory have their own)."""

MAX_HELD: Final = 1024
"""(sender, seq) pairs in one request: a requester holding more lists its newest."""
MAX_HELD_SENDERS: Final = 256
MAX_REQUEST_BYTES: Final = 64 * 1024
MAX_SENDER_BYTES: Final = 64
MAX_SEQ: Final = 2**63 - 1

MAX_ENVELOPES: Final = 256
"""Envelopes in one answer; what does not fit comes in the next exchange."""
MAX_ANSWER_BYTES: Final = 2 * 1024 * 1024
MAX_ANSWER_FRAME: Final = SIZE_CAPS[KIND_CONTEXT] + 1024
"""One answer frame: the largest public envelope and its channel name."""


class CatchUpProtocolError(RemoteError):
    """The peer broke the catch-up protocol (malformed request or answer, over a cap)."""

    reason = "catch_up_protocol"


@dataclass(frozen=True, slots=True)
class HeldSet:
    """Which public envelopes the requester holds, by sender."""

    seqs: Mapping[bytes, frozenset[int]]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        sender, seq = key
        held = self.seqs.get(sender)
        return held is not None and seq in held

    def __len__(self) -> int:
        return sum(len(seqs) for seqs in self.seqs.values())


def encode_request(held: Sequence[tuple[bytes, int]]) -> bytes:
    """The request frame for the ``(sender, seq)`` pairs we hold, newest first; pairs
    beyond :data:`MAX_HELD` (or senders beyond :data:`MAX_HELD_SENDERS`) are left out."""
    by_sender: dict[bytes, list[int]] = {}
    count = 0
    for sender, seq in held:
        if count == MAX_HELD:
            break
        if sender not in by_sender and len(by_sender) == MAX_HELD_SENDERS:
            continue
        by_sender.setdefault(sender, []).append(seq)
        count += 1
    body = {"v": VERSION, "held": [[sender, sorted(seqs)] for sender, seqs in by_sender.items()]}
    return _pack(body)


def decode_request(data: bytes) -> HeldSet:
    """Check and read a request frame; raises :class:`CatchUpProtocolError`."""
    if len(data) > MAX_REQUEST_BYTES:
        raise CatchUpProtocolError(f"a request of {len(data)} bytes, cap {MAX_REQUEST_BYTES}")
    body = _unpack(data, "request")
    if not isinstance(body, dict) or set(body) != {"v", "held"}:
        raise CatchUpProtocolError("a request is a map of exactly v and held")
    if body["v"] != VERSION:
        raise CatchUpProtocolError(f"unknown catch-up version {body['v']!r}")
    held = body["held"]
    if not isinstance(held, list) or len(held) > MAX_HELD_SENDERS:
        raise CatchUpProtocolError(f"held is a list of at most {MAX_HELD_SENDERS} senders")
    seqs: dict[bytes, frozenset[int]] = {}
    total = 0
    for item in held:
        if not (isinstance(item, list) and len(item) == 2):
            raise CatchUpProtocolError("each held item is [sender, [seq, ...]]")
        sender, numbers = item
        if not isinstance(sender, bytes) or not 0 < len(sender) <= MAX_SENDER_BYTES:
            raise CatchUpProtocolError("a held sender is 1-64 bytes")
        if sender in seqs:
            raise CatchUpProtocolError("a sender is listed twice")
        if not isinstance(numbers, list) or not all(_is_seq(n) for n in numbers):
            raise CatchUpProtocolError("held seqs are integers in 0..2**63-1")
        total += len(numbers)
        if total > MAX_HELD:
            raise CatchUpProtocolError(f"more than {MAX_HELD} held envelopes")
        seqs[sender] = frozenset(numbers)
    return HeldSet(seqs)


def encode_answer(channel: str, raw: bytes) -> bytes:
    return _pack([channel, raw])


def decode_answer(data: bytes) -> tuple[str, bytes]:
    """``(channel, envelope bytes)`` from one answer frame (the envelope is not checked
    here: the receiver verifies it like gossip)."""
    item = _unpack(data, "answer")
    if not (isinstance(item, list) and len(item) == 2):
        raise CatchUpProtocolError("an answer frame is [channel, envelope]")
    channel, raw = item
    if channel not in CHANNELS:
        raise CatchUpProtocolError(f"catch-up does not carry channel {channel!r}")
    if not isinstance(raw, bytes):
        raise CatchUpProtocolError("the envelope is bytes")
    return channel, raw


def _pack(value: object) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def _unpack(data: bytes, what: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, max_bin_len=len(data))
    except (ValueError, msgpack.UnpackException) as exc:
        raise CatchUpProtocolError(f"a malformed {what}: {exc}") from exc


def _is_seq(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_SEQ
