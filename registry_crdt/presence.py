"""What an entry says (its status) and what a reader should believe now (its presence).

A lease is read on the reader's own clock. The writer signs ``expiresAt = clock.wall_ms +
lease``, both on *its* clock; a reader whose clock disagrees by 90 s would read a live
peer as lapsed (writer behind) or a dead one as alive for 90 s more (writer ahead). So a
replica notes, for the version it holds, when that version was written *on its own
clock* (``learned_ms``, see :meth:`registry_crdt.Directory.apply`): the writer's
``clock.wall_ms`` moved by how far the replica's clock is ahead of the writer's, as
measured by the caller from fresh exchanges with the writer (the node uses its sync
round trips), and lets the lease ``lease = expiresAt - clock.wall_ms``
run from there. That reads a message's age right however late it arrived — seen: gossip
handed a late joiner a killed peer's renewals 20 s after the kill, and a "learned when
it arrived" rule read that dead peer online for a whole lease. Bounds keep it honest:

* never more than :data:`LATE_LEARNED_GRACE_MS` past the writer's own ``expiresAt``
  (the envelope window, the most a peer's clock can be off and still be heard at all,
  plus a minute), and never later than its arrival;
* an entry whose writer's offset is not measured (no fresh exchange with it yet: a
  dead peer, a peer not yet synced with), or one restored from a snapshot at start-up,
  is read on the writer's clock, as it says. A live writer is synced with within
  seconds, and its next renewal (one heartbeat) is read locally.

Only the reading is local. Which entry wins a merge (the writer's hybrid logical clock)
and when an entry is forgotten (``retain_until``, from the writer's clock) stay functions
of the signed bytes alone, so every replica holds the same entries whatever its clock.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from registry_crdt.limits import MAX_SKEW_MS, MINUTE_MS

LATE_LEARNED_GRACE_MS: Final = MAX_SKEW_MS + MINUTE_MS
"""How far past the writer's ``expiresAt`` a lease read on the reader's clock may run."""


class Status(StrEnum):
    """What an entry says about its peer; ``left`` is a tombstone."""

    ONLINE = "online"
    AWAY = "away"
    ASLEEP = "asleep"
    LEFT = "left"


class Presence(StrEnum):
    """What a reader should believe now: the status, or offline once the lease lapsed."""

    ONLINE = "online"
    AWAY = "away"
    ASLEEP = "asleep"
    OFFLINE = "offline"
    LEFT = "left"


def lease_end(expires_ms: int, lease_ms: int, learned_ms: int | None) -> int:
    """When a lease lapses on the reader's clock (see the module docstring)."""
    if learned_ms is None:
        return expires_ms
    return min(learned_ms + lease_ms, expires_ms + LATE_LEARNED_GRACE_MS)


def read_presence(status: Status, lease_end_ms: int, now_ms: int) -> Presence:
    """The status, or ``offline`` from ``lease_end_ms`` on (``left`` stays left)."""
    if status is Status.LEFT:
        return Presence.LEFT
    if now_ms >= lease_end_ms:
        return Presence.OFFLINE
    return Presence(status.value)
