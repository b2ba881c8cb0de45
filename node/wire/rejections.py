"""Reporting refused network input without letting a flood drown the log.

Every rejection is counted by reason. Up to :data:`EVENTS_PER_SECOND` are reported as
``rejected`` events each second; past that they are summed into one
``rejected_suppressed`` event when the second rolls over.

Some refusals repeat for as long as their cause lasts: a peer whose clock is off by more
than the envelope window has *everything* it sends refused (``stale_timestamp``), every
heartbeat and every sync, until someone sets a clock. Those are reported once per peer
per :data:`REPEAT_QUIET_S`, in words that say what is wrong, and counted in between
(``suppressed`` on the next report). Their signed timestamps also feed the node's own
clock judgement (:mod:`node.wire.clock_skew`): a node refusing everyone for this reason
is usually the one whose clock is wrong.

A refusal the other way — a peer telling us it refused what we sent (the sync protocol's
``refusal``) — is reported as ``sync_refused``, once per peer and reason per
:data:`REPEAT_QUIET_S` as well; except a ``stale_timestamp`` refusal while our clock
agrees with our other peers', which only says the refuser's clock is off (counted).
"""

from __future__ import annotations

import logging
from collections import Counter

from keys import DEFAULT_WINDOW_MS, StaleTimestamp, peer_id_to_str
from keys.errors import RemoteError
from node.clock import MonotonicClock, monotonic
from node.events import EventLog
from node.wire.clock_skew import ClockSkew

logger = logging.getLogger(__name__)

EVENTS_PER_SECOND = 50
REPEAT_QUIET_S = 600.0
MAX_QUIET_KEYS = 4096
REPEATING_REASONS = frozenset({StaleTimestamp.reason})
"""Refusals whose cause lasts (a wrong clock): reported once per peer per REPEAT_QUIET_S."""


class RejectionLog:
    def __init__(
        self,
        events: EventLog,
        clock: MonotonicClock = monotonic,
        *,
        clock_skew: ClockSkew | None = None,
    ) -> None:
        self._events = events
        self._clock = clock
        self._skew = clock_skew
        self.by_reason: Counter[str] = Counter()
        self.refused_by_peers: Counter[str] = Counter()
        """Refusals peers told us of, by their reason."""
        self._window = 0
        self._in_window = 0
        self._suppressed = 0
        self._quiet_until: dict[tuple[str, str], float] = {}
        self._quieted: Counter[tuple[str, str]] = Counter()

    def reject(self, origin: bytes, channel: str, error: RemoteError) -> None:
        self.by_reason[error.reason] += 1
        peer = _peer_str(origin)
        fields: dict[str, object] = {}
        if isinstance(error, StaleTimestamp) and error.ahead_ms is not None:
            # Signed, so the sender's clock really reads that: a sample of our skew.
            if self._skew is not None:
                self._skew.sample(error.sender or origin, -error.ahead_ms / 1000)
            fields["ahead_s"] = round(error.ahead_ms / 1000)  # the sender's clock vs ours
        if error.reason in REPEATING_REASONS:
            suppressed = self._quiet((peer, error.reason))
            if suppressed is None:
                return
            fields["suppressed"] = suppressed
            detail = self._stale_detail(error)
        else:
            detail = str(error)
            if not self._within_rate():
                return
        logger.info("rejected %s from %s on %s: %s", error.reason, peer, channel, detail)
        self._events.emit(
            "rejected", reason=error.reason, peer_id=peer, channel=channel, detail=detail, **fields
        )

    def peer_refused(
        self, peer_id: str, channel: str, reason: str, detail: str, offset_s: float | None
    ) -> None:
        """``peer_id`` told us it refused what we sent on ``channel``, and why.

        A peer refusing our timestamps while our clock agrees with our other peers' is
        that peer's clock being off, which our own ``rejected`` line about it says (it
        sends us heartbeats we refuse): that refusal is counted, not said twice.
        """
        self.refused_by_peers[reason] += 1
        if reason == StaleTimestamp.reason and self._skew is not None:
            reading = self._skew.reading()
            if reading.state == "ok" and reading.heard > 1:
                logger.debug("%s refused our timestamps; its clock is the odd one", peer_id)
                return
        if self._quiet((peer_id, f"refused:{reason}")) is None:
            return
        logger.warning("%s refused our %s: %s (%s)", peer_id, channel, reason, detail)
        self._events.emit(
            "sync_refused",
            peer_id=peer_id,
            channel=channel,
            reason=reason,
            detail=detail,
            offset_s=None if offset_s is None else round(offset_s),
        )

    def _quiet(self, key: tuple[str, str]) -> int | None:
        """None while ``key`` was reported less than REPEAT_QUIET_S ago (counted); else
        how many were held back since its last report."""
        now = self._clock()
        if now < self._quiet_until.get(key, float("-inf")):
            self._quieted[key] += 1
            return None
        if len(self._quiet_until) >= MAX_QUIET_KEYS:  # many peers: forget the lapsed ones
            for lapsed in [k for k, until in self._quiet_until.items() if until <= now]:
                del self._quiet_until[lapsed]
        self._quiet_until[key] = now + REPEAT_QUIET_S
        return self._quieted.pop(key, 0)

    def _within_rate(self) -> bool:
        second = int(self._clock())
        if second != self._window:
            if self._suppressed:
                self._events.emit("rejected_suppressed", count=self._suppressed)
            self._window, self._in_window, self._suppressed = second, 0, 0
        self._in_window += 1
        if self._in_window > EVENTS_PER_SECOND:
            self._suppressed += 1
            return False
        return True

    def _stale_detail(self, error: RemoteError) -> str:
        ahead = getattr(error, "ahead_ms", None)
        if ahead is None:
            return str(error)
        seconds = round(abs(ahead) / 1000)
        side = "ahead of" if ahead > 0 else "behind"
        whose = ""
        if self._skew is not None:
            reading = self._skew.reading()
            if reading.state == "ok" and reading.heard > 1:
                whose = " and our other peers'"
            elif reading.state in ("ahead", "behind") and reading.peers > 1:
                whose = " (ours is the clock that is off: see clock_skew)"
        return (
            f"their clock is {seconds} s {side} ours{whose}: everything they send is refused "
            f"(window ±{DEFAULT_WINDOW_MS // 1000} s) until a clock is set right; more "
            f"refusals from them are counted, not logged, for {REPEAT_QUIET_S / 60:g} min"
        )


def _peer_str(origin: bytes) -> str:
    try:
        return peer_id_to_str(origin)
    except Exception:  # the origin itself may be garbage; show it, do not crash on it
        return origin[:48].hex()
