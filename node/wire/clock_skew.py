"""How far our clock is from our peers', measured from what they send, and said once.

Every envelope carries its sender's clock: ``ts``, the sender's wall time when it sealed
it, covered by the signature. ``our clock at receipt - ts`` is how far we are ahead of
that sender, plus the message's journey (milliseconds on a LAN, a few seconds for gossip
fetched late): a sample. Refused envelopes count too — a ``stale_timestamp`` refusal is
raised only after the signature verified, and it is exactly what a node whose clock is
minutes off receives from everyone — and so does the ``ts`` of a peer's sync refusal.
(Directory entries' hybrid clocks are not used: an entry says when it was *written*, and
anti-entropy hands over old ones, so its age is not its writer's skew.)

The judgement is robust on purpose: the median of each peer's last samples (one slow
gossip fetch does not count), then the median across peers (one peer with a wrong clock
does not move it; with two peers that disagree, the one closer to our own clock wins the
tie — we cannot tell who is wrong, and we do not accuse ourselves on a coin toss). Peers
further than :data:`WARN_S` from that median are named as outliers: their clocks, not
ours, disagree with the rest.

Beyond :data:`WARN_S` (30 s) a ``clock_skew`` event says so, once per change of state.
30 s because nothing breaks below it any more (leases are read on the receiver's clock,
:mod:`registry_crdt.presence`); because a PC without NTP drifts about a second a day, so
30 s means a clock set wrong or weeks adrift — worth its owner's attention; because it is
far above any journey a message takes, so a busy network raises no false alarm; and
because it leaves a clock ten times that much room before the ±5 min envelope window
makes peers refuse everything it sends. The warning clears below :data:`CLEAR_S`, so a
reading near the threshold cannot make it flap, and a verdict is said only once it has
held for :data:`SETTLE_S`: the first peer heard at start-up (or the only one heard so
far) may be the one whose clock is wrong.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from keys import DEFAULT_WINDOW_MS, peer_id_to_str
from node.clock import MonotonicClock, WallClock, monotonic, now_ms
from node.events import EventLog

WARN_S: Final = 30.0
CLEAR_S: Final = 20.0
SAMPLES_PER_PEER: Final = 15
SAMPLE_MAX_AGE_S: Final = 600.0
"""A peer not heard from for this long no longer counts (it left, or its clock moved)."""
JUDGE_EVERY_S: Final = 1.0
SETTLE_S: Final = 10.0
"""How long a new verdict must hold before ``clock_skew`` says it."""
MAX_PEERS: Final = 4096
"""Peers whose samples are kept; past this the stalest is forgotten."""

OK, AHEAD, BEHIND, UNKNOWN = "ok", "ahead", "behind", "unknown"


@dataclass(frozen=True, slots=True)
class SkewReading:
    """What we believe of our clock against our peers' (``offset_s`` > 0: ours is ahead)."""

    state: str
    """``unknown`` (no peer heard from), ``ok``, ``ahead`` or ``behind``."""
    offset_s: float | None
    peers: int
    """Peers whose clocks agree with the verdict (within WARN_S of the median)."""
    heard: int
    """Peers heard from within SAMPLE_MAX_AGE_S."""
    outliers: tuple[tuple[str, float], ...] = ()
    """Peers (PeerID, their offset) far from the rest: their clock is the odd one."""
    window_s: float = DEFAULT_WINDOW_MS / 1000

    @property
    def refused(self) -> bool:
        """Off by more than the envelope window: peers refuse everything we send."""
        return self.offset_s is not None and abs(self.offset_s) > self.window_s

    def message(self) -> str:
        """One line for the owner: ``your clock is 92 s ahead of your peers``."""
        if self.offset_s is None:
            return "no peer heard from yet"
        seconds = round(abs(self.offset_s))
        if self.state == OK:
            return f"your clock agrees with your peers' (within {max(seconds, 1)} s)"
        side = "ahead of" if self.state == AHEAD else "behind"
        if self.heard == 1:
            text = f"your clock is {seconds} s {side} your one peer's (either may be wrong)"
        else:
            agree = f"{self.peers} of {self.heard} agree"
            text = f"your clock is {seconds} s {side} your peers ({agree})"
        window = f"±{self.window_s:g} s"
        if self.refused:
            return f"{text}: they refuse everything this node sends (beyond {window}); set it right"
        return f"{text}: set it right (turn on network time); beyond {window} it is refused"

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "offset_s": None if self.offset_s is None else round(self.offset_s, 1),
            "peers": self.peers,
            "heard": self.heard,
            "refused": self.refused,
            "message": self.message(),
            "outliers": [{"peer_id": p, "offset_s": round(s, 1)} for p, s in self.outliers],
        }


class SkewEstimator:
    """The pure part: samples in, a reading out. ``at_s`` is monotonic seconds."""

    def __init__(self) -> None:
        self._samples: dict[bytes, deque[tuple[float, float]]] = {}
        self.state = UNKNOWN

    def observe(self, peer: bytes, offset_s: float, at_s: float) -> None:
        """One sample: at ``at_s``, ``peer``'s clock read ``offset_s`` behind ours."""
        samples = self._samples.get(peer)
        if samples is None:
            if len(self._samples) >= MAX_PEERS:
                stalest = min(self._samples, key=lambda p: self._samples[p][-1][0])
                del self._samples[stalest]
            samples = self._samples[peer] = deque(maxlen=SAMPLES_PER_PEER)
        samples.append((at_s, offset_s))

    def peer_offset_s(self, peer: bytes, at_s: float) -> float | None:
        """The median of ``peer``'s fresh samples, None if there is none."""
        fresh = [o for when, o in self._samples.get(peer, ()) if at_s - when <= SAMPLE_MAX_AGE_S]
        return statistics.median(fresh) if fresh else None

    def reading(self, at_s: float) -> SkewReading:
        """Judge now, and move :attr:`state` (with hysteresis) to the verdict."""
        per_peer: dict[bytes, float] = {}
        for peer, samples in list(self._samples.items()):
            fresh = [offset for when, offset in samples if at_s - when <= SAMPLE_MAX_AGE_S]
            if fresh:
                per_peer[peer] = statistics.median(fresh)
            else:
                del self._samples[peer]
        if not per_peer:
            self.state = UNKNOWN
            return SkewReading(UNKNOWN, None, 0, 0)
        offset = _median_towards_zero(list(per_peer.values()))
        self.state = _next_state(self.state, offset)
        outliers = tuple(
            (peer_id_to_str(p), o) for p, o in sorted(per_peer.items()) if abs(o - offset) > WARN_S
        )
        return SkewReading(
            self.state, offset, len(per_peer) - len(outliers), len(per_peer), outliers
        )


def _median_towards_zero(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return min(ordered[middle - 1], ordered[middle], key=abs)


def _next_state(state: str, offset_s: float) -> str:
    warned = state in (AHEAD, BEHIND)
    if abs(offset_s) >= (CLEAR_S if warned else WARN_S):
        return AHEAD if offset_s > 0 else BEHIND
    return OK


class ClockSkew:
    """The node's judgement of its clock: fed by the envelope gate, the rejection log and
    the sync protocol; emits ``clock_skew`` (``state``, ``offset_s``, ``peers``,
    ``heard``, ``refused``, ``message``) once a changed verdict has held for SETTLE_S,
    and never otherwise."""

    def __init__(
        self,
        events: EventLog,
        *,
        clock: MonotonicClock = monotonic,
        wall_ms: WallClock = now_ms,
    ) -> None:
        self._events = events
        self._clock = clock
        self._wall_ms = wall_ms
        self.estimator = SkewEstimator()
        self.direct = SkewEstimator()
        """Samples from exchanges only (:meth:`exchange`): each peer's own offset."""
        self._judged_at: float | None = None
        self._said: tuple[str, bool] = (UNKNOWN, False)
        self._pending: tuple[tuple[str, bool], float] = (self._said, 0.0)

    def envelope(self, sender: bytes, ts_ms: int) -> None:
        """A verified envelope from ``sender`` sealed at ``ts_ms`` arrived now."""
        self.sample(sender, (self._wall_ms() - ts_ms) / 1000)

    def exchange(self, sender: bytes, ts_ms: int) -> None:
        """Like :meth:`envelope`, for an envelope ``sender`` sealed for us just now, in an
        exchange we take part in (a sync round trip), never one relayed or fetched late:
        these samples alone also measure ``sender``'s clock for :meth:`peer_offset_ms`."""
        offset_s = (self._wall_ms() - ts_ms) / 1000
        self.direct.observe(sender, offset_s, self._clock())
        self.sample(sender, offset_s)

    def peer_offset_ms(self, peer: bytes) -> int | None:
        """How far our clock is ahead of ``peer``'s (ms), by our exchanges with it; None
        if we had none lately. Directory leases are read with it
        (:mod:`registry_crdt.presence`)."""
        offset_s = self.direct.peer_offset_s(peer, self._clock())
        return None if offset_s is None else round(offset_s * 1000)

    def sample(self, sender: bytes, offset_s: float) -> None:
        """We are ``offset_s`` ahead of ``sender``'s clock (by what it sent just now)."""
        now = self._clock()
        self.estimator.observe(sender, offset_s, now)
        if self._judged_at is None or now - self._judged_at >= JUDGE_EVERY_S:
            self.reading()

    def reading(self) -> SkewReading:
        """Judge now; say so if the verdict changed."""
        now = self._clock()
        self._judged_at = now
        reading = self.estimator.reading(now)
        said = (reading.state, reading.refused)
        if said != self._pending[0]:
            self._pending = (said, now)
        settled = now - self._pending[1] >= SETTLE_S
        if said != self._said and settled and reading.state != UNKNOWN:
            if reading.state != OK or self._said[0] in (AHEAD, BEHIND):
                assert reading.offset_s is not None
                self._events.emit(
                    "clock_skew",
                    state=reading.state,
                    offset_s=round(reading.offset_s),
                    peers=reading.peers,
                    heard=reading.heard,
                    refused=reading.refused,
                    message=reading.message(),
                )
            self._said = said
        return reading


__all__ = [
    "CLEAR_S",
    "SETTLE_S",
    "WARN_S",
    "ClockSkew",
    "SkewEstimator",
    "SkewReading",
]
