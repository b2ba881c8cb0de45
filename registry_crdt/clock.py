"""Hybrid logical clocks (Kulkarni et al., 2014), pure: the wall time is passed in.

A :class:`Clock` is ``(wall_ms, counter)``, ordered lexicographically. It stays close to
the physical time of the writer, yet never goes backwards even if the wall clock does,
and it moves past any clock it has observed, so an owner's new entry always beats the
ones it has seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry_crdt.errors import DirectoryUsageError, FutureClock
from registry_crdt.limits import MAX_COUNTER, MAX_SKEW_MS, MAX_WALL_MS


@dataclass(frozen=True, order=True, slots=True)
class Clock:
    """One hybrid-logical-clock reading: milliseconds since the epoch, then a counter."""

    wall_ms: int
    counter: int = 0

    def __post_init__(self) -> None:
        if type(self.wall_ms) is not int or not 0 <= self.wall_ms <= MAX_WALL_MS:
            raise DirectoryUsageError(f"wall_ms must be an int in 0..{MAX_WALL_MS}")
        if type(self.counter) is not int or not 0 <= self.counter <= MAX_COUNTER:
            raise DirectoryUsageError(f"counter must be an int in 0..{MAX_COUNTER}")

    def successor(self) -> Clock:
        """Return the smallest clock greater than this one.

        When the counter is full the wall time moves on by 1 ms instead: still monotonic,
        and the error is one millisecond per 65,536 events in the same millisecond.
        """
        if self.counter < MAX_COUNTER:
            return Clock(self.wall_ms, self.counter + 1)
        if self.wall_ms >= MAX_WALL_MS:
            raise DirectoryUsageError("the hybrid logical clock is exhausted")
        return Clock(self.wall_ms + 1, 0)


ZERO = Clock(0, 0)


class HLC:
    """A hybrid logical clock: the last reading it gave out, and the two HLC rules.

    Persist :attr:`last` (or rebuild it from your own directory entry) so that a restart
    with a wall clock that went backwards does not write entries that lose to old ones.
    """

    __slots__ = ("_last",)

    def __init__(self, last: Clock = ZERO) -> None:
        """Start after ``last`` (default: the epoch)."""
        self._last = last

    @property
    def last(self) -> Clock:
        """The most recent reading given out or observed."""
        return self._last

    def tick(self, now_ms: int) -> Clock:
        """Return a new reading for a local event: ``max(last, now)``, bumped if needed."""
        wall = _wall(now_ms)
        self._last = Clock(wall, 0) if wall > self._last.wall_ms else self._last.successor()
        return self._last

    def observe(self, remote: Clock, now_ms: int) -> Clock:
        """Merge a remote reading so the next :meth:`tick` is greater than it.

        Raises :class:`FutureClock` for a reading more than ``MAX_SKEW_MS`` ahead of
        ``now_ms``, so one peer with a wrong clock cannot drag ours into the future.
        """
        wall = _wall(now_ms)
        if remote.wall_ms > wall + MAX_SKEW_MS:
            raise FutureClock(f"clock is {remote.wall_ms - wall} ms ahead, skew cap {MAX_SKEW_MS}")
        top = max(self._last, remote)
        self._last = Clock(wall, 0) if wall > top.wall_ms else top.successor()
        return self._last


def _wall(now_ms: int) -> int:
    if type(now_ms) is not int or not 0 <= now_ms <= MAX_WALL_MS:
        raise DirectoryUsageError(f"now_ms must be an int in 0..{MAX_WALL_MS}")
    return now_ms
