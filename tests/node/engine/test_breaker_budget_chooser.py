"""Engine failover policy: circuit breakers, the daily token budget, and choosing engines."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys.errors import ConfigError, LocalError
from node.engine.breaker import BreakerState, CircuitBreaker
from node.engine.budget import BudgetTier, TierPolicy, TokenBudget, policy_for
from node.engine.chooser import EngineChooser, EngineSpec

DAY = "2026-11-21"
NEXT_DAY = "2026-11-22"


def opened(now: float = 0.0, **kwargs: float) -> CircuitBreaker:
    breaker = CircuitBreaker(**kwargs)  # type: ignore[arg-type]
    for _ in range(breaker.failure_threshold):
        assert breaker.allows(now)
        breaker.record_failure(now)
    assert breaker.state is BreakerState.OPEN
    return breaker


# --- CircuitBreaker ---------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failure_threshold=3)
    breaker.record_failure(0.0)
    breaker.record_failure(0.0)
    breaker.record_success(0.0)  # breaks the run
    breaker.record_failure(0.0)
    breaker.record_failure(0.0)
    assert breaker.retry_at is None  # still closed
    assert breaker.allows(0.0)
    breaker.record_failure(1.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_at == 31.0


def test_open_refuses_until_cool_down_then_allows_exactly_one_probe() -> None:
    breaker = opened(open_for_s=30.0)
    assert not breaker.allows(29.999)
    assert breaker.retry_at == 30.0  # still open
    assert breaker.allows(30.0)
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allows(30.0)
    assert not breaker.allows(1000.0)


def test_successful_probe_closes_and_resets_cool_down() -> None:
    breaker = opened(open_for_s=10.0)
    assert breaker.allows(10.0)
    breaker.record_failure(10.0)
    assert breaker.cooldown_s == 20.0
    assert breaker.allows(30.0)
    breaker.record_success(31.0)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.cooldown_s == 10.0
    assert breaker.allows(31.0) and breaker.allows(31.0)
    # The next outage starts from the base cool-down again, with a fresh failure count.
    for _ in range(2):
        breaker.record_failure(40.0)
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(40.0)
    assert breaker.retry_at == 50.0


def test_failed_probes_double_the_cool_down_up_to_the_cap() -> None:
    breaker = opened(open_for_s=30.0, max_open_for_s=200.0)
    now = 0.0
    seen = []
    for _ in range(6):
        retry_at = breaker.retry_at
        assert retry_at is not None
        assert not breaker.allows(retry_at - 0.001)
        now = retry_at
        assert breaker.allows(now)
        breaker.record_failure(now)
        assert breaker.state is BreakerState.OPEN
        seen.append(breaker.cooldown_s)
    assert seen == [60.0, 120.0, 200.0, 200.0, 200.0, 200.0]


def test_released_probe_can_be_taken_again() -> None:
    breaker = opened(open_for_s=5.0)
    assert breaker.allows(5.0)
    breaker.release_probe()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allows(5.0)
    assert not breaker.allows(5.0)


def test_late_outcomes_while_open_change_nothing() -> None:
    breaker = opened(open_for_s=5.0)
    breaker.record_success(1.0)
    breaker.record_failure(2.0)
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_at == 5.0
    assert breaker.cooldown_s == 5.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"open_for_s": 0.0}, "open_for_s"),
        ({"open_for_s": math.nan}, "open_for_s"),
        ({"open_for_s": 30.0, "max_open_for_s": 10.0}, "max_open_for_s"),
        ({"max_open_for_s": math.inf}, "max_open_for_s"),
    ],
)
def test_breaker_rejects_bad_settings(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["call", "call", "fail", "fail", "ok", "release"]),
        # Whole seconds land exactly on (and just before) cool-down boundaries often.
        st.one_of(st.integers(0, 45).map(float), st.floats(0.0, 400.0, allow_nan=False)),
    ),
    max_size=80,
)


@settings(
    max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(events=EVENTS, threshold=st.integers(1, 4))
def test_breaker_never_calls_early_and_probes_once(
    events: list[tuple[str, float]], threshold: int
) -> None:
    base, cap = 10.0, 75.0
    breaker = CircuitBreaker(failure_threshold=threshold, open_for_s=base, max_open_for_s=cap)
    now = 0.0
    # A reference model of when the breaker opened and how long it must stay shut.
    closed_until = -math.inf
    expected_cooldown = base
    probes_out = 0
    for action, advance in events:
        now += advance
        before = breaker.state
        if action == "call":
            allowed = breaker.allows(now)
            if before is BreakerState.OPEN:
                assert allowed == (now >= closed_until)
            if allowed and breaker.state is BreakerState.HALF_OPEN:
                probes_out += 1
            assert probes_out <= 1
        elif action == "release":
            breaker.release_probe()
            probes_out = 0
        else:
            if action == "ok":
                breaker.record_success(now)
            else:
                breaker.record_failure(now)
            if before is not BreakerState.OPEN:
                probes_out = 0
            if before is BreakerState.HALF_OPEN:
                expected_cooldown = base if action == "ok" else min(cap, expected_cooldown * 2)
            if before is not BreakerState.OPEN and breaker.state is BreakerState.OPEN:
                closed_until = now + expected_cooldown
        if breaker.state is BreakerState.OPEN:
            assert breaker.retry_at == closed_until
        assert base <= breaker.cooldown_s <= cap


# --- TokenBudget and tiers --------------------------------------------------------------


def test_tiers_at_exact_thresholds() -> None:
    budget = TokenBudget(1000, low_at=0.5, critical_at=0.8)
    assert budget.tier(DAY) is BudgetTier.NORMAL
    assert budget.spend(499, DAY) is BudgetTier.NORMAL
    assert budget.spend(1, DAY) is BudgetTier.LOW  # exactly 0.5
    assert budget.spend(299, DAY) is BudgetTier.LOW
    assert budget.spend(1, DAY) is BudgetTier.CRITICAL  # exactly 0.8
    assert budget.spend(199, DAY) is BudgetTier.CRITICAL
    assert budget.remaining(DAY) == 1
    assert budget.spend(1, DAY) is BudgetTier.STOPPED  # exactly 1.0
    assert budget.spend(50, DAY) is BudgetTier.STOPPED
    assert budget.remaining(DAY) == 0
    assert budget.spent(DAY) == 1050


def test_count_resets_when_the_day_changes() -> None:
    budget = TokenBudget(100)
    budget.spend(100, DAY)
    assert budget.tier(DAY) is BudgetTier.STOPPED
    assert budget.tier(NEXT_DAY) is BudgetTier.NORMAL
    assert budget.remaining(NEXT_DAY) == 100
    assert budget.spend(10, NEXT_DAY) is BudgetTier.NORMAL
    assert budget.remaining(NEXT_DAY) == 90
    # A late report for yesterday does not eat into today.
    budget.spend(60, DAY)
    assert budget.spent(NEXT_DAY) == 10


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((0,), "daily_tokens"),
        ((-5,), "daily_tokens"),
        ((True,), "daily_tokens"),
        ((100, 0.0, 0.8), "low_at"),
        ((100, 1.0, 0.8), "low_at"),
        ((100, 0.5, 1.0), "critical_at"),
        ((100, 0.5, 0.0), "critical_at"),
        ((100, 0.8, 0.5), "critical_at"),
        ((100, 0.5, 0.5), "critical_at"),
        ((100, math.nan, 0.8), "low_at"),
    ],
)
def test_budget_rejects_bad_settings(args: tuple[float, ...], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        TokenBudget(*args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_budget_rejects_bad_spends() -> None:
    budget = TokenBudget(100)
    with pytest.raises(ConfigError) as info:
        budget.spend(-1, DAY)
    assert info.value.field == "tokens"
    for bad_day in ("21/11/2026", "20261121", "2026-13-01", ""):
        with pytest.raises(ConfigError) as info:
            budget.spend(1, bad_day)
        assert info.value.field == "day"
    assert budget.spent(DAY) == 0


def test_tier_policies() -> None:
    normal, low, critical, stopped = (policy_for(tier) for tier in BudgetTier)
    assert normal == TierPolicy(True, 1.0, prefer_cheapest_engine=False, may_reply=True)
    assert low == TierPolicy(True, 2.0, prefer_cheapest_engine=True, may_reply=True)
    assert not critical.autonomous_visits and critical.may_reply
    assert critical.prefer_cheapest_engine
    assert not stopped.autonomous_visits and not stopped.may_reply


# --- EngineChooser ----------------------------------------------------------------------

ENGINES = [
    EngineSpec("big"),
    EngineSpec("small", cheap=True),
    EngineSpec("medium"),
    EngineSpec("tiny", cheap=True),
]


def chooser() -> EngineChooser:
    return EngineChooser(ENGINES, breaker=lambda: CircuitBreaker(2, open_for_s=10.0))


def test_preferred_order_when_normal_cheap_first_when_low_or_critical() -> None:
    c = chooser()
    assert c.candidates(0.0, BudgetTier.NORMAL) == ["big", "small", "medium", "tiny"]
    for tier in (BudgetTier.LOW, BudgetTier.CRITICAL):
        assert c.candidates(0.0, tier) == ["small", "tiny", "big", "medium"]


def test_cheapest_first_on_request_in_any_tier_that_may_reply() -> None:
    c = chooser()
    for tier in (BudgetTier.NORMAL, BudgetTier.LOW, BudgetTier.CRITICAL):
        assert c.candidates(0.0, tier, cheapest_first=True) == ["small", "tiny", "big", "medium"]
    assert c.candidates(0.0, BudgetTier.STOPPED, cheapest_first=True) == []


def test_stopped_gives_no_candidates_and_takes_no_probe() -> None:
    c = chooser()
    for _ in range(2):
        c.record("big", False, 0.0)
    assert c.candidates(10.0, BudgetTier.STOPPED) == []
    assert c.breaker("big").state is BreakerState.OPEN  # probe not spent
    assert c.candidates(10.0, BudgetTier.NORMAL)[0] == "big"


def test_open_breakers_are_skipped_then_probed_once() -> None:
    c = chooser()
    for _ in range(2):
        c.record("big", False, 0.0)
        c.record("tiny", False, 0.0)
    assert c.candidates(5.0, BudgetTier.NORMAL) == ["small", "medium"]
    assert c.candidates(10.0, BudgetTier.NORMAL) == ["big", "small", "medium", "tiny"]
    # Both probes are out: a concurrent caller does not get them.
    assert c.candidates(10.0, BudgetTier.NORMAL) == ["small", "medium"]
    c.record("big", True, 11.0)
    c.release(["small", "medium", "tiny"])  # big answered; the rest were not tried
    assert c.breaker("big").state is BreakerState.CLOSED
    assert c.candidates(12.0, BudgetTier.LOW) == ["small", "tiny", "big", "medium"]


def test_all_down_gives_no_candidates() -> None:
    c = chooser()
    for spec in ENGINES:
        for _ in range(2):
            c.record(spec.name, False, 0.0)
    assert c.candidates(1.0, BudgetTier.NORMAL) == []


def test_chooser_rejects_bad_engine_lists_and_names() -> None:
    with pytest.raises(ConfigError) as info:
        EngineChooser([])
    assert info.value.field == "engines"
    with pytest.raises(ConfigError) as info:
        EngineChooser([EngineSpec("a"), EngineSpec("b"), EngineSpec("a")])
    assert info.value.field == "engines[2].name"
    with pytest.raises(LocalError):
        chooser().record("nope", True, 0.0)
