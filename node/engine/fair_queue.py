"""One engine, several characters: generations taken in turn per caller, the queue visible.

Why: the party's characters share one embedded model, and llama.cpp decodes one reply at a
time. First come, first served would let one chatty caller (a guard regenerating, a long
visit) hold everyone else up; :class:`FairQueue` serves callers round-robin instead, each
caller's own requests in order, and :meth:`FairQueue.snapshot` says who is being served and
who waits, for the party's status line and each character's ``status``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import trio

from node.clock import monotonic
from node.engine.openai_server import ChatRequest, Generate, Generation


@dataclass(slots=True)
class _Waiter:
    caller: str
    arrived: int
    turn: trio.Event = field(default_factory=trio.Event)


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    serving: str | None
    """The caller whose reply is being generated now (None: idle)."""
    waiting: dict[str, int]
    """Requests waiting per caller."""
    served: dict[str, int]
    """Replies generated per caller since the engine started."""
    busy_s: float
    """Seconds spent generating since the engine started."""

    def as_json(self) -> dict[str, object]:
        return {
            "serving": self.serving,
            "waiting": dict(self.waiting),
            "served": dict(self.served),
            "busy_s": round(self.busy_s, 1),
        }


class FairQueue:
    """Wraps a ``generate`` callable: one generation at a time, callers served in turn."""

    def __init__(self, generate: Generate) -> None:
        self._generate = generate
        self._queues: dict[str, deque[_Waiter]] = {}
        self._arrivals = 0
        self._turns = 0
        self._last_turn: dict[str, int] = {}
        """When each caller was last served (in turns): the least recently served goes next."""
        self._serving: str | None = None
        self._served: dict[str, int] = {}
        self._busy_s = 0.0

    async def __call__(self, request: ChatRequest) -> Generation:
        self._arrivals += 1
        waiter = _Waiter(request.caller, self._arrivals)
        self._queues.setdefault(waiter.caller, deque()).append(waiter)
        self._hand_over()
        try:
            await waiter.turn.wait()
        except BaseException:
            # Cancelled while waiting (the caller gave up): leave the line, and if the turn
            # had just been handed to us, pass it on.
            self._leave(waiter)
            if waiter.turn.is_set():
                self._serving = None
                self._hand_over()
            raise
        self._leave(waiter)
        self._turns += 1
        self._last_turn[waiter.caller] = self._turns
        started = monotonic()
        try:
            return await self._generate(request)
        finally:
            self._busy_s += monotonic() - started
            self._served[waiter.caller] = self._served.get(waiter.caller, 0) + 1
            self._serving = None
            self._hand_over()

    def snapshot(self) -> QueueSnapshot:
        return QueueSnapshot(
            serving=self._serving,
            waiting={caller: len(queue) for caller, queue in self._queues.items() if queue},
            served=dict(self._served),
            busy_s=self._busy_s,
        )

    def _leave(self, waiter: _Waiter) -> None:
        queue = self._queues[waiter.caller]
        queue.remove(waiter)
        if not queue:
            del self._queues[waiter.caller]

    def _hand_over(self) -> None:
        """Wake the oldest request of the waiting caller served least recently."""
        if self._serving is not None or not self._queues:
            return
        caller = min(
            self._queues,
            key=lambda c: (self._last_turn.get(c, 0), self._queues[c][0].arrived),
        )
        self._serving = caller  # reserved, so nobody slips in before it wakes
        self._queues[caller][0].turn.set()


__all__ = ["FairQueue", "QueueSnapshot"]
