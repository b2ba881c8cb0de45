"""The bodies of ``directory`` envelopes: gossip deltas and the anti-entropy exchange.

Four messages, each a map with a ``type``::

    delta    {entries: [entry bytes]}                 gossip, or the last step of a sync
    summary  {bits, hashes}                           one 8-byte XOR of entry hashes per
                                                      bucket (2**bits buckets of the key space)
    digest   {ranges: [[lo, hi]], items: [[peer, wall, counter, hash16]]}
                                                      every entry the sender holds whose key
                                                      lies in the ranges, sorted by peer
    diff     {entries: [entry bytes], want: [peer]}   what the digest's sender lacks or holds
                                                      older, and what it holds newer
    refusal  {reason, detail}                         sync only: the last message of a sync
                                                      its sender refused, and why (``reason``
                                                      a code such as ``stale_timestamp``,
                                                      ``detail`` one line for the owner)

Keys are the first 32 bits of the Ed25519 public key (:func:`~registry_crdt.entry.key_of`);
ranges are half-open ``[lo, hi)`` over ``0..2**32``. A digest is authoritative inside its
ranges: a peer it does not list there is one its sender lacks.

A ``refusal`` is added in a backward-compatible way: it is only ever sent to a peer whose
message was refused anyway, so a node that predates it refuses it (``schema``) at the
end of a sync that had already failed, and nothing else changes for it.

Anti-entropy (A starts, B answers; every step a pure function of a replica)::

    A: summary()          ──summary──▶  B: digest(against=summary)   (differing buckets only)
    A: diff(digest)       ◀──digest───
                          ───diff────▶  B: apply entries; delta_for(diff.want)
    A: apply entries      ◀──delta────

or, skipping the summary, A sends ``digest()`` (all ranges) and B answers with
``diff``, A with ``delta_for``. A summary match costs ``8 · 2**bits`` bytes where a full
digest costs ~70 bytes per entry; both then cost O(difference). The summary is an
optimisation, not a security boundary (XOR can be balanced by a peer that crafts many
keys), so nodes should still send a full digest now and then.

:func:`to_bodies` splits a message into bodies that fit one envelope; :func:`from_body`
checks a body's structure (entries stay bytes: check them with ``verify_entry``).
:data:`DIRECTORY_BODIES` is what to pass ``keys.verify`` / ``keys.seal`` as ``bodies``
wherever ``directory`` envelopes travel, so every delta and sync body is checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from keys import Bodies, SchemaError
from keys.kinds import KIND_DIRECTORY
from registry_crdt import _schema as check
from registry_crdt.clock import Clock
from registry_crdt.entry import DigestItem, check_entry_schema, key_of
from registry_crdt.errors import DirectoryError, InvalidField, MalformedMessage
from registry_crdt.limits import (
    BODY_BUDGET_BYTES,
    DIGEST_HASH_BYTES,
    KEY_SPACE,
    MAX_COUNTER,
    MAX_DIGEST_ITEMS,
    MAX_ENTRY_BYTES,
    MAX_MESSAGE_ENTRIES,
    MAX_RANGES,
    MAX_SUMMARY_BITS,
    MAX_WALL_MS,
    MAX_WANT,
    SUMMARY_HASH_BYTES,
)

FULL_RANGE: Final = ((0, KEY_SPACE),)
_TYPES: Final = ("delta", "summary", "digest", "diff", "refusal")
MAX_REFUSAL_DETAIL_CHARS: Final = 300
_REASON: Final = re.compile(r"[a-z][a-z0-9_]*")
_MAX_REASON_CHARS: Final = 40
# Room for the body's own keys and array headers.
_BODY_OVERHEAD: Final = 64
_PEER_ITEM_BYTES: Final = 2 + 38


@dataclass(frozen=True, slots=True)
class Delta:
    """Entries as wire bytes, for gossip or as the answer to a ``want`` list."""

    entries: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Summary:
    """An XOR of entry hashes per bucket: ``2**bits`` buckets of the key space."""

    bits: int
    hashes: bytes

    def bucket(self, index: int) -> bytes:
        """Return the 8-byte hash of bucket ``index``."""
        start = index * SUMMARY_HASH_BYTES
        return self.hashes[start : start + SUMMARY_HASH_BYTES]


@dataclass(frozen=True, slots=True)
class Digest:
    """What the sender holds inside ``ranges`` (half-open, sorted key ranges)."""

    ranges: tuple[tuple[int, int], ...] = FULL_RANGE
    items: tuple[DigestItem, ...] = ()


@dataclass(frozen=True, slots=True)
class Diff:
    """The answer to a digest: entries its sender lacks or holds older, and peers to send."""

    entries: tuple[bytes, ...] = ()
    want: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the sender refused this sync (the message it could not accept); last message."""

    reason: str
    detail: str = ""


Message = Delta | Summary | Digest | Diff | Refusal


def bucket_range(index: int, bits: int) -> tuple[int, int]:
    """Return the key range ``[lo, hi)`` of summary bucket ``index`` at ``bits``."""
    width = KEY_SPACE >> bits
    return index * width, (index + 1) * width


def in_ranges(key: int, ranges: Sequence[tuple[int, int]]) -> bool:
    """Tell whether ``key`` lies in one of the sorted, disjoint ``ranges``."""
    low, high = 0, len(ranges)
    while low < high:
        middle = (low + high) // 2
        if ranges[middle][1] <= key:
            low = middle + 1
        else:
            high = middle
    return low < len(ranges) and ranges[low][0] <= key


# --- encoding -----------------------------------------------------------------------------


def to_bodies(message: Message, max_bytes: int = BODY_BUDGET_BYTES) -> list[dict[str, Any]]:
    """Return ``message`` as one or more envelope bodies of at most ~``max_bytes`` each.

    Always at least one body (an empty diff or delta is an answer too). Splitting keeps
    each body meaningful alone: digest bodies split the ranges where they split the items.
    """
    budget = max_bytes - _BODY_OVERHEAD
    if isinstance(message, Refusal):
        return [{"type": "refusal", "reason": message.reason, "detail": message.detail}]
    if isinstance(message, Summary):
        return [{"type": "summary", "bits": message.bits, "hashes": message.hashes}]
    if isinstance(message, Digest):
        return [
            {
                "type": "digest",
                "ranges": [[lo, hi] for lo, hi in ranges],
                "items": [[i.peer, i.clock.wall_ms, i.clock.counter, i.hash] for i in items],
            }
            for ranges, items in _split_digest(message, budget)
        ]
    if isinstance(message, Delta):
        return [
            {"type": "delta", "entries": entries}
            for entries, _ in _split_lists(message.entries, (), budget)
        ]
    return [
        {"type": "diff", "entries": entries, "want": want}
        for entries, want in _split_lists(message.entries, message.want, budget)
    ]


def _int_size(value: int) -> int:
    if value < 128:
        return 1
    if value < 256:
        return 2
    if value < 65536:
        return 3
    if value < 2**32:
        return 5
    return 9


def _bin_size(value: bytes) -> int:
    size = len(value)
    return size + (2 if size < 256 else 3 if size < 65536 else 5)


def _item_size(item: DigestItem) -> int:
    return (
        1
        + _PEER_ITEM_BYTES
        + _int_size(item.clock.wall_ms)
        + _int_size(item.clock.counter)
        + 2
        + DIGEST_HASH_BYTES
    )


def _split_lists(
    entries: Sequence[bytes], want: Sequence[bytes], budget: int
) -> Iterator[tuple[list[bytes], list[bytes]]]:
    chunk: tuple[list[bytes], list[bytes]] = ([], [])
    size = 0
    for kind, value in [(0, e) for e in entries] + [(1, w) for w in want]:
        cost = _bin_size(value)
        full = size + cost > budget or (kind == 0 and len(chunk[0]) >= MAX_MESSAGE_ENTRIES)
        if full and (chunk[0] or chunk[1]):
            yield chunk
            chunk, size = ([], []), 0
        chunk[kind].append(value)
        size += cost
    yield chunk


def _split_digest(
    digest: Digest, budget: int
) -> Iterator[tuple[list[tuple[int, int]], list[DigestItem]]]:
    ranges: list[tuple[int, int]] = []
    items: list[DigestItem] = []
    size = 0
    position = 0
    for lo, hi in digest.ranges:
        start = lo
        range_cost = 1 + _int_size(lo) + _int_size(hi)
        if size + range_cost > budget and (ranges or items):
            yield ranges, items
            ranges, items, size = [], [], 0
        size += range_cost
        while position < len(digest.items) and key_of(digest.items[position].peer) < hi:
            item = digest.items[position]
            cost = _item_size(item)
            key = key_of(item.peer)
            # Cut before this item, unless the previous one shares its key (a cut must
            # fall between keys; past that the body merely runs over its budget).
            can_cut = key > start and (not items or key_of(items[-1].peer) < key)
            too_many = len(items) >= MAX_DIGEST_ITEMS
            if (size + cost > budget or too_many) and can_cut:
                ranges.append((start, key))
                yield ranges, items
                ranges, items, size, start = [], [], range_cost, key
            items.append(item)
            size += cost
            position += 1
        ranges.append((start, hi))
    yield ranges, items


# --- decoding -----------------------------------------------------------------------------


def from_body(body: Mapping[str, Any]) -> Message:
    """Check the structure of a ``directory`` body and return it as a message.

    Entries are only checked to be bytes within the size cap; pass each to
    ``verify_entry``. Raises only :class:`MalformedMessage`.
    """
    try:
        return _from_body(body)
    except MalformedMessage:
        raise
    except InvalidField as exc:
        raise MalformedMessage(str(exc)) from None


def validate_directory_body(body: Mapping[str, Any]) -> None:
    """The ``directory`` body validator ``keys.verify`` runs: structure and entry schemas.

    Signatures and clocks are left to ``verify_entry``, which has ``now_ms``.
    """
    try:
        message = from_body(body)
        if isinstance(message, Delta | Diff):
            for i, raw in enumerate(message.entries):
                check_entry_schema(raw, f"body.entries[{i}]")
    except DirectoryError as exc:
        raise SchemaError(f"{exc} ({exc.reason})") from exc


DIRECTORY_BODIES: Final[Bodies] = MappingProxyType({KIND_DIRECTORY: validate_directory_body})
"""The ``directory`` body validator, as ``keys.verify(..., bodies=)`` takes it."""


def _from_body(body: Mapping[str, Any]) -> Message:
    if not isinstance(body, Mapping):
        raise MalformedMessage("body: must be a map")
    kind = check.one_of(body.get("type"), "body.type", _TYPES)
    if kind == "summary":
        check.fields(body, "body", ("type", "bits", "hashes"))
        bits = check.integer(body["bits"], "body.bits", 0, MAX_SUMMARY_BITS)
        hashes = check.binary(body["hashes"], "body.hashes", SUMMARY_HASH_BYTES << bits)
        return Summary(bits, hashes)
    if kind == "digest":
        check.fields(body, "body", ("type", "ranges", "items"))
        return _digest(body["ranges"], body["items"])
    if kind == "delta":
        check.fields(body, "body", ("type", "entries"))
        return Delta(_entries(body["entries"]))
    if kind == "refusal":
        check.fields(body, "body", ("type", "reason", "detail"))
        reason = check.pattern(
            body["reason"], "body.reason", _REASON, _MAX_REASON_CHARS, "a reason code ([a-z0-9_])"
        )
        detail = check.text(body["detail"], "body.detail", 0, MAX_REFUSAL_DETAIL_CHARS)
        return Refusal(reason, detail)
    check.fields(body, "body", ("type", "entries", "want"))
    want = check.array(body["want"], "body.want", MAX_WANT)
    for i, peer in enumerate(want):
        check.peer_id(peer, f"body.want[{i}]")
    check.unique(want, "body.want")
    return Diff(_entries(body["entries"]), tuple(want))


def _entries(value: Any) -> tuple[bytes, ...]:
    entries = check.array(value, "body.entries", MAX_MESSAGE_ENTRIES)
    for i, raw in enumerate(entries):
        if type(raw) is not bytes or not 1 <= len(raw) <= MAX_ENTRY_BYTES:
            raise MalformedMessage(f"body.entries[{i}]: must be 1..{MAX_ENTRY_BYTES} bytes")
    return tuple(entries)


def _digest(raw_ranges: Any, raw_items: Any) -> Digest:
    ranges: list[tuple[int, int]] = []
    for i, pair in enumerate(check.array(raw_ranges, "body.ranges", MAX_RANGES)):
        check.array(pair, f"body.ranges[{i}]", 2, low=2)
        lo = check.integer(pair[0], f"body.ranges[{i}][0]", 0, KEY_SPACE - 1)
        hi = check.integer(pair[1], f"body.ranges[{i}][1]", lo + 1, KEY_SPACE)
        if ranges and lo < ranges[-1][1]:
            raise MalformedMessage(f"body.ranges[{i}]: ranges must be sorted and disjoint")
        ranges.append((lo, hi))
    items: list[DigestItem] = []
    for i, raw in enumerate(check.array(raw_items, "body.items", MAX_DIGEST_ITEMS)):
        where = f"body.items[{i}]"
        check.array(raw, where, 4, low=4)
        peer = check.peer_id(raw[0], f"{where}[0]")
        clock = Clock(
            check.integer(raw[1], f"{where}[1]", 0, MAX_WALL_MS),
            check.integer(raw[2], f"{where}[2]", 0, MAX_COUNTER),
        )
        digest_hash = check.binary(raw[3], f"{where}[3]", DIGEST_HASH_BYTES)
        if items and peer <= items[-1].peer:
            raise MalformedMessage(f"{where}: items must be sorted by peer, without repeats")
        if not in_ranges(key_of(peer), ranges):
            raise MalformedMessage(f"{where}: peer lies outside the digest's ranges")
        items.append(DigestItem(peer, clock, digest_hash))
    return Digest(tuple(ranges), tuple(items))
