"""What an entry says (its status) and what a reader should believe now (its presence).

A lease is read on the reader's own clock. The writer signs ``expiresAt = clock.wall_ms +
lease``, both on *its* clock; a reader whose clock disagrees by 90 s would read a live
peer as lapsed (writer behind) or a dead one as alive for 90 s more (writer ahead). So a
replica notes, for the version it holds, the local time it learned that version
(``learned_ms``, see :meth:`registry_crdt.Directory.apply`) and lets the lease run
``lease = expiresAt - clock.wall_ms`` from there. Two bounds keep that honest:

* never more than :data:`LATE_LEARNED_GRACE_MS` past the writer's own ``expiresAt``: an
  entry learned long after it was written (a late joiner syncing a dead peer's last
  entry) is not brought back to life for a whole lease. The grace is the envelope window
  (the most a peer's clock can be off and still be heard at all) plus a minute for the
  entry's journey, so it never cuts short the lease of a live peer inside the window;
* an entry no replica learned — one restored from a snapshot at start-up, or one not
  held — is read on the writer's clock, as it says: we do not know when we learned it,
  and pretending "now" would show every recently dead peer online for a lease after each
  restart. The peer's next renewal (one heartbeat) is learned, and read locally.

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
