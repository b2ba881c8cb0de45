"""Reporting refused network input without letting a flood drown the log.

Every rejection is counted by reason. Up to :data:`EVENTS_PER_SECOND` are reported as
``rejected`` events each second; past that they are summed into one
``rejected_suppressed`` event when the second rolls over.
"""

from __future__ import annotations

import logging
from collections import Counter

from keys import peer_id_to_str
from keys.errors import RemoteError
from node.clock import MonotonicClock, monotonic
from node.events import EventLog

logger = logging.getLogger(__name__)

EVENTS_PER_SECOND = 50


class RejectionLog:
    def __init__(self, events: EventLog, clock: MonotonicClock = monotonic) -> None:
        self._events = events
        self._clock = clock
        self.by_reason: Counter[str] = Counter()
        self._window = 0
        self._in_window = 0
        self._suppressed = 0

    def reject(self, origin: bytes, channel: str, error: RemoteError) -> None:
        self.by_reason[error.reason] += 1
        second = int(self._clock())
        if second != self._window:
            if self._suppressed:
                self._events.emit("rejected_suppressed", count=self._suppressed)
            self._window, self._in_window, self._suppressed = second, 0, 0
        self._in_window += 1
        if self._in_window > EVENTS_PER_SECOND:
            self._suppressed += 1
            return
        peer = _peer_str(origin)
        logger.info("rejected %s from %s on %s: %s", error.reason, peer, channel, error)
        self._events.emit(
            "rejected", reason=error.reason, peer_id=peer, channel=channel, detail=str(error)
        )


def _peer_str(origin: bytes) -> str:
    try:
        return peer_id_to_str(origin)
    except Exception:  # the origin itself may be garbage; show it, do not crash on it
        return origin[:48].hex()
