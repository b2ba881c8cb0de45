"""Waiting on a condition, the one way the tests do it.

The rule: check; if the check returns something truthy, that is the answer; if nothing
more can change (the output being watched has ended) or the deadline has passed, fail
with :class:`WaitTimeout`, which names what was awaited; otherwise pause and check again.
The pause is a poll interval, or less when whoever has news wakes the waiter first (see
:class:`tests.support.line_reader.LineReader`). Never a fixed sleep, never unbounded.

:func:`wait_until` is for threads (the blocking process and CLI helpers);
:func:`wait_until_async` is the same rule in a trio task, on trio's clock, for checks
that may themselves be coroutines (an HTTP request, a store read).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")

POLL_S = 0.05
"""Between two checks when no one wakes the waiter earlier (node.clock polls as often)."""


class WaitTimeout(AssertionError):
    """A condition did not hold in time: the test fails (it is an AssertionError)."""


def _never() -> str | None:
    return None


def _nothing() -> str:
    return ""


class _Deadline:
    """When to give up, and what to say then: shared by both waits."""

    def __init__(
        self,
        timeout: float,
        what: str,
        clock: Callable[[], float],
        poll: float,
        detail: Callable[[], str],
    ) -> None:
        self.timeout = timeout
        self.what = what
        self.clock = clock
        self.poll = poll
        self.detail = detail
        self.at = clock() + timeout

    def remaining(self) -> float:
        return self.at - self.clock()

    def next_pause(self, ended: str | None) -> float:
        """The pause before the next check; raises once there is no point in one."""
        remaining = self.remaining()
        if ended is None and remaining > 0:
            return min(self.poll, remaining)
        why = ended if ended is not None else f"timed out after {self.timeout:g} s"
        message = f"{why} waiting for {self.what}"
        if extra := self.detail():
            message += "\n" + extra
        raise WaitTimeout(message)


def wait_until(
    check: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    poll: float = POLL_S,
    ended: Callable[[], str | None] = _never,
    detail: Callable[[], str] = _nothing,
    pause: Callable[[float], object] = time.sleep,
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    ``what`` names the condition in the failure. ``ended`` says why nothing more can
    change (e.g. the process's output ended), or None: the wait then fails after one last
    check instead of running out the clock. ``detail`` adds what was seen to the failure.
    ``pause`` waits up to the given seconds (``threading.Condition.wait`` lets a producer
    wake the waiter early; the caller then holds that condition's lock).
    """
    deadline = _Deadline(timeout, what, time.monotonic, poll, detail)
    while True:
        # Read before the check: a check made after the end has seen everything.
        over = ended()
        if result := check():
            return result
        pause(deadline.next_pause(over))


async def wait_until_async(
    check: Callable[[], object],
    timeout: float,
    what: str,
    *,
    poll: float = POLL_S,
    detail: Callable[[], str] = _nothing,
) -> None:
    """:func:`wait_until` in a trio task: ``check`` may return an awaitable (it is awaited,
    within what is left of ``timeout``); the pause is :func:`trio.sleep`.

    For conditions that nothing signals from outside (a server's counters, a directory
    filled by gossip, a pruner's progress).
    """
    deadline = _Deadline(timeout, what, trio.current_time, poll, detail)
    while True:
        holds: object = False  # stays False if the check is cut off by the deadline
        with trio.move_on_after(max(0.0, deadline.remaining())):
            answer = check()
            holds = await answer if inspect.isawaitable(answer) else answer
        if holds:
            return
        await trio.sleep(deadline.next_pause(None))


__all__ = ["POLL_S", "WaitTimeout", "wait_until", "wait_until_async"]
