"""What the directory shows a reader: the rows of ``roomverse directory``, of the
dashboard's directory search and of the firehose's list of characters.

Pure: entries, our own PeerID and ``now_ms`` in, rows out. A row is plain JSON (the
control socket and the dashboard send it as it is); present peers come first, then the
rest, each group by name. Names, cards and addresses in a row are other people's words:
whoever shows them (:mod:`node.cli.directory_view`, the dashboard page) makes them safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from keys import peer_id_to_str
from registry_crdt import Entry, Presence

PRESENT = (Presence.ONLINE, Presence.AWAY, Presence.ASLEEP)
"""The presences of a peer that is there (its lease runs): listed first, and worth dialing."""
SHOWN_ORDER = (*PRESENT, Presence.OFFLINE, Presence.LEFT)
_RANK = {presence.value: rank for rank, presence in enumerate(SHOWN_ORDER)}


def rows(
    entries: Iterable[Entry], *, own_peer: bytes, now_ms: int, search: str | None = None
) -> list[dict[str, Any]]:
    """The entries that match ``search`` (all when it is None or empty) as rows, in
    :data:`SHOWN_ORDER` and then by name (case-insensitive)."""
    needle = (search or "").casefold()
    shown = [row(e, own_peer=own_peer, now_ms=now_ms) for e in entries if matches(e, needle)]
    shown.sort(key=lambda row: (_RANK[str(row["status"])], str(row["name"]).casefold()))
    return shown


def matches(entry: Entry, needle: str) -> bool:
    """Whether the casefolded ``needle`` is in the entry's name, description, PeerID or a
    tag; the empty needle matches every entry."""
    card = entry.card
    haystack = " ".join((card.name, card.description, entry.peer_str, *card.tags))
    return not needle or needle in haystack.casefold()


def row(entry: Entry, *, own_peer: bytes, now_ms: int) -> dict[str, Any]:
    """One entry as the reader sees it at ``now_ms`` (``self``: it is our own).

    ``status`` and ``lease_expires_ms`` are on the reader's clock (the lease runs from
    ``learned_ms``, when this replica learned the entry; None for one restored from the
    snapshot, read on the writer's clock); ``last_seen_ms`` is the writer's own clock
    reading (its entry's hybrid clock), which orders its entries.
    """
    card = entry.card
    return {
        "peer_id": entry.peer_str,
        "name": card.name,
        "description": card.description,
        "tags": list(card.tags),
        "status": entry.presence(now_ms).value,
        "last_seen_ms": entry.clock.wall_ms,
        "learned_ms": entry.learned_ms,
        "lease_expires_ms": entry.lease_end_ms,
        "addrs": list(entry.addrs),
        "vouched_by": None if entry.vouch is None else peer_id_to_str(entry.signer),
        "souvenirs": [s.name for s in card.souvenirs],
        "self": entry.peer == own_peer,
    }


__all__ = ["PRESENT", "SHOWN_ORDER", "matches", "row", "rows"]
