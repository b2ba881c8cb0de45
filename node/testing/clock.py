"""A clock a test moves by hand, for logic that takes an injected clock."""

from __future__ import annotations


class ManualClock:
    """Monotonic seconds (a :data:`node.clock.MonotonicClock`) that move only when told.

    Call it for the time; :meth:`advance` moves it forward (never back, like the real one).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock never goes back")
        self.now += seconds


__all__ = ["ManualClock"]
