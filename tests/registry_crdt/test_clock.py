"""The hybrid logical clock: monotonic whatever the wall clock does, past what it observed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry_crdt import HLC, Clock, DirectoryUsageError, FutureClock
from registry_crdt.limits import MAX_COUNTER, MAX_SKEW_MS, MAX_WALL_MS

NOW = 1_700_000_000_000


def test_tick_follows_the_wall_clock() -> None:
    hlc = HLC()
    assert hlc.tick(NOW) == Clock(NOW, 0)
    assert hlc.tick(NOW) == Clock(NOW, 1)
    assert hlc.tick(NOW + 5) == Clock(NOW + 5, 0)


def test_tick_never_goes_back_when_the_wall_clock_does() -> None:
    hlc = HLC()
    hlc.tick(NOW)
    assert hlc.tick(NOW - 60_000) == Clock(NOW, 1)


def test_observe_moves_past_the_remote_clock() -> None:
    hlc = HLC()
    hlc.tick(NOW)
    seen = hlc.observe(Clock(NOW + 1000, 7), NOW)
    assert seen == Clock(NOW + 1000, 8)
    assert hlc.tick(NOW) > seen
    assert hlc.last == Clock(NOW + 1000, 9)


def test_observe_refuses_clocks_beyond_the_skew() -> None:
    hlc = HLC(Clock(NOW, 3))
    with pytest.raises(FutureClock) as caught:
        hlc.observe(Clock(NOW + MAX_SKEW_MS + 1), NOW)
    assert caught.value.reason == "future_clock"
    assert hlc.last == Clock(NOW, 3)  # unchanged


def test_full_counter_moves_the_wall_time_on() -> None:
    hlc = HLC(Clock(NOW, MAX_COUNTER))
    assert hlc.tick(NOW) == Clock(NOW + 1, 0)
    with pytest.raises(DirectoryUsageError):
        Clock(MAX_WALL_MS, MAX_COUNTER).successor()


@pytest.mark.parametrize(
    ("wall", "counter"), [(-1, 0), (MAX_WALL_MS + 1, 0), (0, -1), (0, MAX_COUNTER + 1), (True, 0)]
)
def test_clock_bounds(wall: int, counter: int) -> None:
    with pytest.raises(DirectoryUsageError):
        Clock(wall, counter)


def test_now_must_be_an_int() -> None:
    with pytest.raises(DirectoryUsageError):
        HLC().tick(1.5)  # type: ignore[arg-type]


events = st.lists(
    st.tuples(
        st.integers(min_value=-10_000, max_value=10_000),  # wall clock jitter
        st.none() | st.tuples(st.integers(-10_000, MAX_SKEW_MS), st.integers(0, 5)),
    ),
    max_size=40,
)


@settings(max_examples=500, deadline=None, database=None)
@given(events)
def test_readings_strictly_increase_and_stay_near_the_wall_clock(
    steps: list[tuple[int, tuple[int, int] | None]],
) -> None:
    hlc = HLC()
    previous = hlc.last
    highest_seen = 0
    for jitter, remote in steps:
        now = NOW + jitter
        highest_seen = max(highest_seen, now)
        if remote is None:
            reading = hlc.tick(now)
        else:
            seen = Clock(now + remote[0], remote[1])
            reading = hlc.observe(seen, now)
            assert reading > seen
            highest_seen = max(highest_seen, seen.wall_ms)
        assert reading > previous
        assert reading.wall_ms >= now
        # Never ahead of the largest physical time involved.
        assert reading.wall_ms <= highest_seen
        previous = reading
