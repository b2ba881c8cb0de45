"""How a character feels about one partner: an integer 0–100 and the tier it falls in.

Pure rules, time passed in (ms since the epoch). The shape, and why:

- A new partner starts at :data:`START` (10): a stranger, with room to fall as well as rise.
- A completed, friendly visit closes a share of the distance to 100 (:data:`GAIN_RATE` =
  15 % for a visit of :data:`FULL_TURNS` turns or more, less for shorter ones), rounded
  up so every good visit counts. That gives diminishing returns: 10 → 24 (acquaintance) →
  36 → 46 (friend, third visit) → ... → close friend at the eighth visit, and 100 only in
  the limit. A visit within :data:`QUICK_REVISIT_MS` (6 h) of the previous one earns half
  (rounded up), so an eager autonomy loop cannot farm friendship in an afternoon.
- The tone of the visit (:class:`Tone`, judged by our own engine in the farewell summary
  call) decides how far it counts. A friendly visit earns the gain above. A neutral one
  (or one nobody judged) earns the same gain but never lifts the value past
  :data:`NEUTRAL_CEILING` (74, the top of friend): bland talk makes friends, only warmth
  makes close friends. An unfriendly visit costs :data:`UNFRIENDLY_COST` (5) whatever its
  outcome, so a rude visitor sinks with every visit, however often it comes.
- Declined and answering-machine visits do not move it (the host was busy, nobody's
  fault); an aborted visit costs 1. The result is never lower for a friendlier tone than
  for a less friendly one with the same inputs.
- Idle time decays it by 1 point per full week since the last visit, but never below a
  floor that grows with the number of visits (:func:`floor_for`: 10 + 2 per visit, at
  most 30): old friends drift back to acquaintances, never to strangers, and decay
  never raises a value that is already below the floor.

Tiers (:func:`tier_for`): stranger < 20 ≤ acquaintance < 45 ≤ friend < 75 ≤ close friend.
One good visit makes an acquaintance, three a friend, about eight a close friend.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import TypeAlias

from keys.errors import LocalError

Affinity: TypeAlias = int
"""0 (hostile) .. 100 (closest); always an int so storage and comparisons are exact."""

MIN_AFFINITY = 0
MAX_AFFINITY = 100
START = 10
GAIN_RATE = 0.15
FULL_TURNS = 4
QUICK_REVISIT_MS = 6 * 60 * 60 * 1000
UNFRIENDLY_COST = 5
NEUTRAL_CEILING = 74
ABORT_COST = 1
WEEK_MS = 7 * 24 * 60 * 60 * 1000
FLOOR_PER_VISIT = 2
FLOOR_CAP = 30


class AffinityError(LocalError):
    """A caller passed a value outside the rules' domain (affinity outside 0–100, ...)."""


class AffinityTier(StrEnum):
    STRANGER = "stranger"
    ACQUAINTANCE = "acquaintance"
    FRIEND = "friend"
    CLOSE_FRIEND = "close_friend"


TIER_THRESHOLDS: tuple[tuple[int, AffinityTier], ...] = (
    (75, AffinityTier.CLOSE_FRIEND),
    (45, AffinityTier.FRIEND),
    (20, AffinityTier.ACQUAINTANCE),
    (0, AffinityTier.STRANGER),
)


class Tone(StrEnum):
    """How the partner treated us during a visit, as our summary call judged it."""

    FRIENDLY = "friendly"
    NEUTRAL = "neutral"
    UNFRIENDLY = "unfriendly"


class VisitOutcome(StrEnum):
    """How a visit ended, as far as the relation is concerned."""

    COMPLETED = "completed"
    """Both sides talked and said farewell."""
    DECLINED = "declined"
    """The host said no (busy, policy, rate limit)."""
    ANSWERED = "answered"
    """The host was away or asleep; its answering machine took a message."""
    ABORTED = "aborted"
    """The visit broke off: a timeout, a vanished peer, an error."""


def _check_value(value: int) -> None:
    if not MIN_AFFINITY <= value <= MAX_AFFINITY:
        raise AffinityError(f"affinity {value} outside {MIN_AFFINITY}..{MAX_AFFINITY}")


def _clamp(value: int) -> Affinity:
    return max(MIN_AFFINITY, min(MAX_AFFINITY, value))


def tier_for(value: Affinity) -> AffinityTier:
    """The tier ``value`` falls in (thresholds in :data:`TIER_THRESHOLDS`)."""
    _check_value(value)
    return next(tier for threshold, tier in TIER_THRESHOLDS if value >= threshold)


def floor_for(visits: int) -> Affinity:
    """How low idle decay can take a relation with ``visits`` visits behind it."""
    if visits < 0:
        raise AffinityError(f"visit count {visits} is negative")
    return min(FLOOR_CAP, START + FLOOR_PER_VISIT * visits)


def decayed(
    value: Affinity, last_visit_ms: int | None, now_ms: int, *, visits: int = 0
) -> Affinity:
    """``value`` after idling from ``last_visit_ms`` to ``now_ms``: −1 per full week.

    Never below :func:`floor_for` ``(visits)``, never above ``value``; a clock that went
    backwards (``now_ms`` before the last visit) decays nothing.
    """
    _check_value(value)
    if last_visit_ms is None or now_ms <= last_visit_ms:
        return value
    loss = (now_ms - last_visit_ms) // WEEK_MS
    return max(value - loss, min(value, floor_for(visits)))


def _gain(current: Affinity, turns: int, quick: bool) -> int:
    rate = GAIN_RATE * min(turns, FULL_TURNS) / FULL_TURNS
    gain = math.ceil((MAX_AFFINITY - current) * rate)
    return math.ceil(gain / 2) if quick else gain


def after_visit(
    current: Affinity,
    outcome: VisitOutcome,
    turns: int,
    tone: Tone,
    visits_before: int,
    now_ms: int,
    last_visit_ms: int | None,
) -> Affinity:
    """The relation's value after a visit that ended at ``now_ms``.

    ``current`` is the stored value; idle decay since ``last_visit_ms`` (None: first
    visit) is applied first, then the visit's effect. ``turns`` counts both sides' turns;
    ``tone`` is how the partner treated us (:data:`Tone.NEUTRAL` when nobody judged it).
    """
    _check_value(current)
    if turns < 0:
        raise AffinityError(f"turn count {turns} is negative")
    value = decayed(current, last_visit_ms, now_ms, visits=visits_before)
    if tone is Tone.UNFRIENDLY:
        return _clamp(value - UNFRIENDLY_COST)
    if outcome is VisitOutcome.COMPLETED:
        quick = last_visit_ms is not None and now_ms - last_visit_ms < QUICK_REVISIT_MS
        raised = _clamp(value + _gain(value, turns, quick))
        if tone is Tone.NEUTRAL:
            return max(value, min(raised, NEUTRAL_CEILING))
        return raised
    if outcome is VisitOutcome.ABORTED:
        return _clamp(value - ABORT_COST)
    return value
