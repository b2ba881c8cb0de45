"""A replica harness: run the anti-entropy exchange between two in-memory replicas.

Used by the tests, the benchmark and any adapter test that wants a reference
conversation. Every message goes through :func:`to_bodies` and canonical msgpack, so
byte counts are what a stream would carry (envelope headers excluded); with
``wire=True`` the bytes are also decoded with :func:`from_body` and every entry is
verified by the receiving replica, exactly as a node would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from keys import Identity, canonical
from registry_crdt.card import NameCard, Persona
from registry_crdt.directory import Directory
from registry_crdt.entry import Entry
from registry_crdt.errors import DirectoryError
from registry_crdt.messages import Delta, Diff, Digest, Message, Summary, from_body, to_bodies


def identities(count: int, seed: int = 0) -> list[Identity]:
    """Return ``count`` deterministic identities (the same for the same ``seed``)."""
    return [
        Identity.from_seed(hashlib.sha256(f"roomverse-test/{seed}/{i}".encode()).digest())
        for i in range(count)
    ]


def sample_card(peer_id_str: str, **changes: Any) -> NameCard:
    """Return a plausible unsigned card for ``peer_id_str``, with ``changes`` applied."""
    card = NameCard(
        id=peer_id_str,
        name=f"Character {peer_id_str[-6:]}",
        description="A test character who likes quiet rooms and loud teapots.",
        persona=Persona(personality="curious, kind", greeting="Hello!", languages=("en",)),
        tags=("test",),
    )
    return replace(card, **changes)


@dataclass(slots=True)
class SyncStats:
    """What one or more exchanges cost: messages (bodies), their bytes, entries moved."""

    messages: int = 0
    body_bytes: int = 0
    entries: int = 0
    changed: int = 0
    rejected: list[str] = field(default_factory=list)


def sync(
    initiator: Directory,
    responder: Directory,
    now_ms: int,
    *,
    use_summary: bool = True,
    wire: bool = True,
    known: Mapping[bytes, Entry] | None = None,
    stats: SyncStats | None = None,
) -> SyncStats:
    """Run one anti-entropy exchange (both directions) and return its cost.

    ``use_summary`` starts with a summary (4 steps) instead of a full digest (3 steps).
    ``known`` maps wire bytes to already verified entries, to skip signature checks in
    simulations (``wire=False`` also skips decoding: receivers get the message objects).
    """
    stats = SyncStats() if stats is None else stats

    def send(message: Message) -> list[Message]:
        bodies = to_bodies(message)
        received: list[Message] = []
        for body in bodies:
            data = canonical.packb(body)
            stats.messages += 1
            stats.body_bytes += len(data)
            if wire:
                received.append(from_body(canonical.unpackb(data)))
        return received if wire else [message]

    def take(directory: Directory, entries: tuple[bytes, ...]) -> None:
        stats.entries += len(entries)
        for raw in entries:
            try:
                if known is not None and raw in known:
                    result = directory.apply(known[raw], now_ms)
                else:
                    result = directory.receive(raw, now_ms)
            except DirectoryError as exc:
                stats.rejected.append(exc.reason)
                continue
            stats.changed += result.changed

    def answer(directory: Directory, digests: list[Message]) -> Diff:
        diffs = [directory.diff(d) for d in digests if isinstance(d, Digest)]
        return Diff(
            tuple(raw for d in diffs for raw in d.entries),
            tuple(peer for d in diffs for peer in d.want),
        )

    def finish(first: Directory, second: Directory, diff: Diff) -> None:
        # ``first`` answered a digest of ``second``: second takes the entries, first the wants.
        if not diff.entries and not diff.want:
            return
        want: list[bytes] = []
        for reply in send(diff):
            assert isinstance(reply, Diff)
            take(second, reply.entries)
            want.extend(reply.want)
        if want:
            for delta in send(second.delta_for(want)):
                assert isinstance(delta, Delta)
                take(first, delta.entries)

    if use_summary:
        (summary,) = send(initiator.summary())
        assert isinstance(summary, Summary)
        digests = send(responder.digest(against=summary))
        finish(initiator, responder, answer(initiator, digests))
    else:
        digests = send(initiator.digest())
        finish(responder, initiator, answer(responder, digests))
    return stats
