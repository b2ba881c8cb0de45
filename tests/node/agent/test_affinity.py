"""Affinity rules: bounded, monotone in friendliness, friendship in a few good visits,
close friendship only through friendly ones, rude visitors sinking however often they
come, slow decay that never raises a value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys.errors import LocalError
from node.agent.affinity import (
    FULL_TURNS,
    NEUTRAL_CEILING,
    QUICK_REVISIT_MS,
    START,
    WEEK_MS,
    AffinityError,
    AffinityTier,
    Tone,
    VisitOutcome,
    after_visit,
    decayed,
    floor_for,
    tier_for,
)

DAY_MS = 24 * 60 * 60 * 1000
T0 = 1_763_700_000_000

values = st.integers(0, 100)
outcomes = st.sampled_from(list(VisitOutcome))
tones = st.sampled_from(list(Tone))
FRIENDLINESS = [Tone.UNFRIENDLY, Tone.NEUTRAL, Tone.FRIENDLY]
"""Least to most friendly."""
turns = st.integers(0, 50)
visit_counts = st.integers(0, 500)
gaps = st.one_of(st.none(), st.integers(-WEEK_MS, 200 * WEEK_MS))


def _visit(
    current: int, outcome: VisitOutcome, turns: int, tone: Tone, visits: int, gap: int | None
) -> int:
    last = None if gap is None else T0 - gap
    return after_visit(current, outcome, turns, tone, visits, T0, last)


def _series(gaps_ms: list[int], turns_each: int, tone: Tone = Tone.FRIENDLY) -> list[int]:
    """Values after each of a run of completed visits of one tone, from a stranger."""
    value, now, last, seen = START, T0, None, []
    for visits_before, gap in enumerate(gaps_ms):
        now += gap
        value = after_visit(
            value, VisitOutcome.COMPLETED, turns_each, tone, visits_before, now, last
        )
        last = now
        seen.append(value)
    return seen


# --- tiers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        (0, AffinityTier.STRANGER),
        (19, AffinityTier.STRANGER),
        (20, AffinityTier.ACQUAINTANCE),
        (44, AffinityTier.ACQUAINTANCE),
        (45, AffinityTier.FRIEND),
        (74, AffinityTier.FRIEND),
        (75, AffinityTier.CLOSE_FRIEND),
        (100, AffinityTier.CLOSE_FRIEND),
    ],
)
def test_tier_thresholds(value: int, tier: AffinityTier) -> None:
    assert tier_for(value) is tier


def test_a_new_partner_is_a_stranger_and_tiers_are_plain_strings() -> None:
    assert tier_for(START) is AffinityTier.STRANGER
    assert str(AffinityTier.CLOSE_FRIEND) == "close_friend"


@given(values, values)
def test_tiers_are_monotone(a: int, b: int) -> None:
    order = list(AffinityTier)
    low, high = sorted((a, b))
    assert order.index(tier_for(low)) <= order.index(tier_for(high))


# --- visits ----------------------------------------------------------------------------


@given(values, outcomes, turns, tones, visit_counts, gaps)
def test_after_visit_stays_in_bounds(
    current: int, outcome: VisitOutcome, n: int, tone: Tone, visits: int, gap: int | None
) -> None:
    assert 0 <= _visit(current, outcome, n, tone, visits, gap) <= 100


@given(values, outcomes, turns, visit_counts, gaps)
def test_a_friendlier_tone_is_never_worse(
    current: int, outcome: VisitOutcome, n: int, visits: int, gap: int | None
) -> None:
    results = [_visit(current, outcome, n, tone, visits, gap) for tone in FRIENDLINESS]
    assert results == sorted(results)


@given(values, values, outcomes, turns, tones, visit_counts, gaps)
def test_after_visit_is_monotone_in_the_current_value(
    a: int, b: int, outcome: VisitOutcome, n: int, tone: Tone, visits: int, gap: int | None
) -> None:
    low, high = sorted((a, b))
    assert _visit(low, outcome, n, tone, visits, gap) <= _visit(high, outcome, n, tone, visits, gap)


@given(
    st.lists(st.integers(QUICK_REVISIT_MS, WEEK_MS - 1), min_size=30, max_size=30),
    st.integers(FULL_TURNS, 40),
)
def test_good_visits_make_a_friend_within_six_and_a_close_friend_eventually(
    gaps_ms: list[int], n: int
) -> None:
    series = _series(gaps_ms, n)
    assert tier_for(series[0]) is AffinityTier.ACQUAINTANCE
    assert any(tier_for(v) is AffinityTier.FRIEND for v in series[:6])
    assert tier_for(series[-1]) is AffinityTier.CLOSE_FRIEND
    assert series == sorted(series)  # never falls while the visits keep coming
    gains = [b - a for a, b in zip([START, *series], series, strict=False)]
    assert gains[-1] <= gains[0]  # diminishing returns


def test_the_documented_progression() -> None:
    series = _series([DAY_MS] * 8, FULL_TURNS)
    assert series == [24, 36, 46, 55, 62, 68, 73, 78]


def test_quick_revisits_earn_less_than_spaced_ones() -> None:
    quick = _series([QUICK_REVISIT_MS - 1] * 6, FULL_TURNS)
    spaced = _series([QUICK_REVISIT_MS] * 6, FULL_TURNS)
    assert quick[0] == spaced[0]  # the first visit has no previous one to be close to
    assert quick[-1] < spaced[-1]


def test_short_visits_earn_less_and_empty_ones_nothing() -> None:
    full = after_visit(START, VisitOutcome.COMPLETED, FULL_TURNS, Tone.FRIENDLY, 0, T0, None)
    short = after_visit(START, VisitOutcome.COMPLETED, 1, Tone.FRIENDLY, 0, T0, None)
    empty = after_visit(START, VisitOutcome.COMPLETED, 0, Tone.FRIENDLY, 0, T0, None)
    assert START == empty < short < full


@pytest.mark.parametrize(
    ("outcome", "tone", "delta"),
    [
        (VisitOutcome.DECLINED, Tone.FRIENDLY, 0),
        (VisitOutcome.ANSWERED, Tone.FRIENDLY, 0),
        (VisitOutcome.ABORTED, Tone.FRIENDLY, -1),
        (VisitOutcome.DECLINED, Tone.NEUTRAL, 0),
        (VisitOutcome.ABORTED, Tone.NEUTRAL, -1),
        (VisitOutcome.DECLINED, Tone.UNFRIENDLY, -5),
        (VisitOutcome.COMPLETED, Tone.UNFRIENDLY, -5),
    ],
)
def test_declined_aborted_and_unfriendly_visits_barely_move_or_lower_it(
    outcome: VisitOutcome, tone: Tone, delta: int
) -> None:
    assert after_visit(50, outcome, 6, tone, 3, T0, T0 - DAY_MS) == 50 + delta


def test_unfriendly_visits_never_go_below_zero() -> None:
    assert after_visit(2, VisitOutcome.COMPLETED, 6, Tone.UNFRIENDLY, 3, T0, None) == 0


def test_neutral_visits_gain_like_friendly_ones_up_to_friend_never_close_friend() -> None:
    friendly = _series([DAY_MS] * 30, FULL_TURNS, Tone.FRIENDLY)
    neutral = _series([DAY_MS] * 30, FULL_TURNS, Tone.NEUTRAL)
    below = [v for v in friendly if v <= NEUTRAL_CEILING]
    assert neutral[: len(below)] == below
    assert max(neutral) == NEUTRAL_CEILING and tier_for(NEUTRAL_CEILING) is AffinityTier.FRIEND
    assert tier_for(friendly[-1]) is AffinityTier.CLOSE_FRIEND
    # A close friend met for a bland visit keeps what it has.
    assert after_visit(90, VisitOutcome.COMPLETED, 6, Tone.NEUTRAL, 20, T0, T0 - DAY_MS) == 90


@given(st.lists(st.integers(1, 2 * WEEK_MS), min_size=1, max_size=60), st.integers(0, 40))
def test_a_rude_visitor_never_rises_however_often_it_comes(gaps_ms: list[int], n: int) -> None:
    series = _series(gaps_ms, n, Tone.UNFRIENDLY)
    assert series == sorted(series, reverse=True)
    assert all(v <= START for v in series)


@given(st.lists(tones, min_size=1, max_size=80), st.integers(FULL_TURNS, 20))
def test_close_friendship_needs_friendly_visits(visit_tones: list[Tone], n: int) -> None:
    value, now, last = START, T0, None
    for visits_before, tone in enumerate(visit_tones):
        now += DAY_MS
        value = after_visit(value, VisitOutcome.COMPLETED, n, tone, visits_before, now, last)
        last = now
    if Tone.FRIENDLY not in visit_tones:
        assert tier_for(value) is not AffinityTier.CLOSE_FRIEND


@given(st.integers(1, 200), st.integers(FULL_TURNS, 20))
def test_rude_and_friendly_visits_in_turn_never_make_a_close_friend(pairs: int, n: int) -> None:
    value, now, last = START, T0, None
    for visit in range(2 * pairs):
        now += DAY_MS
        tone = Tone.UNFRIENDLY if visit % 2 else Tone.FRIENDLY
        value = after_visit(value, VisitOutcome.COMPLETED, n, tone, visit, now, last)
        last = now
    assert tier_for(value) is not AffinityTier.CLOSE_FRIEND


# --- decay -----------------------------------------------------------------------------


@given(values, st.integers(0, 1000 * WEEK_MS), visit_counts)
def test_decay_never_goes_up_and_never_below_the_floor(value: int, idle: int, visits: int) -> None:
    after = decayed(value, T0, T0 + idle, visits=visits)
    assert after <= value
    assert after >= min(value, floor_for(visits))


@given(values, st.integers(0, 100 * WEEK_MS), st.integers(0, 100 * WEEK_MS), visit_counts)
def test_decay_is_monotone_in_idle_time(value: int, a: int, b: int, visits: int) -> None:
    short, long = sorted((a, b))
    assert decayed(value, T0, T0 + long, visits=visits) <= decayed(
        value, T0, T0 + short, visits=visits
    )


def test_decay_is_one_point_per_full_week() -> None:
    assert decayed(80, T0, T0 + WEEK_MS - 1, visits=10) == 80
    assert decayed(80, T0, T0 + WEEK_MS, visits=10) == 79
    assert decayed(80, T0, T0 + 10 * WEEK_MS, visits=10) == 70
    assert decayed(80, T0, T0 + 1000 * WEEK_MS, visits=10) == floor_for(10) == 30


def test_decay_ignores_a_clock_that_went_backwards_and_first_visits() -> None:
    assert decayed(80, T0, T0 - WEEK_MS * 10) == 80
    assert decayed(80, None, T0) == 80


def test_old_friends_drift_to_acquaintances_never_to_strangers() -> None:
    friend = _series([DAY_MS] * 10, FULL_TURNS)[-1]
    years_later = decayed(friend, T0, T0 + 200 * WEEK_MS, visits=10)
    assert tier_for(years_later) is AffinityTier.ACQUAINTANCE
    assert decayed(START, T0, T0 + 200 * WEEK_MS, visits=0) == START


# --- misuse ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-1, 101])
def test_values_outside_the_range_are_refused(value: int) -> None:
    with pytest.raises(AffinityError):
        tier_for(value)
    with pytest.raises(AffinityError):
        after_visit(value, VisitOutcome.COMPLETED, 3, Tone.FRIENDLY, 0, T0, None)


def test_negative_counts_are_refused_as_local_errors() -> None:
    with pytest.raises(LocalError):
        after_visit(50, VisitOutcome.COMPLETED, -1, Tone.FRIENDLY, 0, T0, None)
    with pytest.raises(LocalError):
        floor_for(-1)
