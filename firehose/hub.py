"""The hub: every published event to every viewer whose filters match, never waiting
for any of them.

Each viewer has a bounded queue of JSON objects. :meth:`Hub.publish` is synchronous and
O(viewers): it only appends, and a viewer whose queue is full is closed as a slow consumer
(the others never notice). The fan-out (:mod:`firehose.fanout`) takes each viewer's queue
as frames of JSON lines (:meth:`Viewer.take_frames`), encoding them once for all the
viewers that share them (:meth:`Viewer.share_key`).

A viewer that resumes from a cursor is attached to the live stream *first*, remembering
the newest cursor already published (``upto``); while the backlog is copied up to
``upto``, live events are held aside; then the held events newer than ``upto`` follow.
So there is no gap (everything ≤ ``upto`` was stored before it was published, so the
backlog read sees it) and no duplicate (held events ≤ ``upto`` are dropped) at the seam.
A backlog that was pruned past the cursor is announced with a ``cursor_too_old`` frame,
never skipped silently.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

import trio

from firehose.events import FirehoseEvent, hello_frame, take_frame, too_old_frame
from firehose.limits import Filters, ViewerLimits
from keys import Verified

FIRST_CURSOR = 1
"""Cursors are SQLite row ids: the first ever stored is 1, so an oldest cursor above 1
means something was pruned."""
DEPARTURES_KEPT = 256
MAX_CATCH_UP_ROUNDS = 8
"""A resuming viewer whose held live events overflow re-reads the backlog; one that
cannot catch up in this many rounds reads slower than the network speaks."""


class Backlog(Protocol):
    """Where resuming viewers read from: the events stored so far, by cursor."""

    async def bounds(self) -> tuple[int, int]:
        """``(oldest, latest)`` cursor held, ``(0, 0)`` when empty."""
        ...

    async def read(self, cursor: int, kinds: Collection[str], limit: int) -> list[FirehoseEvent]:
        """Up to ``limit`` events of ``kinds`` with cursor ≥ ``cursor``, oldest first."""
        ...


class Viewer:
    """One connected viewer as the hub sees it: a bounded queue of JSON objects (one line
    each), at most ``queue_size`` events plus the hello, that the fan-out takes as frames
    (:meth:`take_frames`). A deque rather than a memory channel, so a frame can stop at
    its byte bound without taking an object out it cannot send yet.

    Viewers share frames: a viewer whose queue holds only live events, queued since it
    was last emptied, holds exactly what every other such viewer with the same filters
    and the same start holds, so :meth:`share_key` is equal for them and the fan-out
    encodes their frames once.
    """

    def __init__(
        self,
        filters: Filters,
        limits: ViewerLimits,
        skip_upto: int,
        catching_up: bool,
        on_queued: Callable[[], None] = lambda: None,
    ):
        self.filters = filters
        self._queue: deque[str] = deque()
        self._capacity = limits.queue_size + 1
        self._frame_objects = limits.frame_objects
        self._frame_bytes = limits.frame_bytes
        self._not_full = trio.lowlevel.ParkingLot()
        self._on_queued = on_queued
        self._queue_size = limits.queue_size
        self._run_start: int | None = None
        """While the queue holds only live events: the publish number of the first."""
        self.closed = trio.Event()
        self.reason: str | None = None
        self.filled_at: float | None = None
        """When (trio clock) the queue last became full; None while it has room."""
        self.closed_at: float | None = None
        self.taken = 0
        """Objects handed out in frames so far."""
        self.skip_upto = skip_upto
        """Live events with a cursor ≤ this were (or will be) read from the backlog."""
        self._held: list[FirehoseEvent] | None = [] if catching_up else None
        self._held_overflow = False

    @property
    def catching_up(self) -> bool:
        return self._held is not None

    def queued(self) -> int:
        return len(self._queue)

    def close(self, reason: str) -> None:
        """Stop feeding this viewer; the web app says goodbye with ``reason``."""
        if self.reason is None:
            self.reason = reason
            self.closed_at = trio.current_time()
            self.closed.set()

    def offer(self, event: FirehoseEvent, number: int = 0) -> bool:
        """Queue a live event without waiting (``number``: its place in the hub's
        publishing order); False if the viewer had to be dropped."""
        if event.cursor <= self.skip_upto or self.reason is not None:
            return True
        if self._held is not None:
            if len(self._held) >= self._queue_size:
                # The backlog has them all: re-read it rather than hold without bound.
                self._held_overflow = True
                self._held.clear()
            elif not self._held_overflow:
                self._held.append(event)
            return True
        if len(self._queue) >= self._capacity:
            self.close("slow_consumer")
            return False
        start = self._run_start if self._queue else (number or None)
        self._append(event.frame)
        self._run_start = start
        return True

    async def put(self, frame: str, stall_s: float) -> bool:
        """Queue a backfill frame, waiting up to ``stall_s`` for room."""
        await trio.lowlevel.checkpoint()
        with trio.move_on_after(stall_s):
            while len(self._queue) >= self._capacity:
                await self._not_full.park()
            self.put_nowait(frame)
            return True
        self.close("slow_consumer")
        return False

    def put_nowait(self, frame: str) -> None:
        """Queue ``frame`` even past the bound (the hello, which comes first)."""
        self._run_start = None
        self._append(frame)
        self._on_queued()

    def _append(self, frame: str) -> None:
        # Without telling the hub: a live event is told once for every viewer.
        self._queue.append(frame)
        if len(self._queue) >= self._capacity and self.filled_at is None:
            self.filled_at = trio.current_time()

    def share_key(self) -> tuple[Filters, int, int, int] | None:
        """Equal for viewers whose queues are equal by construction (see the class);
        None while this one holds anything of its own (hello, backfill)."""
        if self._run_start is None or self._held is not None:
            return None
        return (self.filters, self.skip_upto, self._run_start, len(self._queue))

    def take_frame(self) -> str:
        """One frame of what is queued (see :func:`firehose.events.take_frame`); the
        queue must not be empty."""
        before = len(self._queue)
        frame = take_frame(self._queue, self._frame_objects, self._frame_bytes)
        self._taken(before - len(self._queue))
        return frame

    def take_frames(self) -> list[str]:
        """Everything queued, as frames."""
        frames = []
        while self._queue:
            frames.append(self.take_frame())
        return frames

    def skip_queued(self) -> None:
        """Empty the queue as :meth:`take_frames` would, for a viewer that was handed
        the same frames already encoded (its :meth:`share_key` was another's)."""
        count = len(self._queue)
        self._queue.clear()
        self._taken(count)

    def _taken(self, count: int) -> None:
        self.taken += count
        self.filled_at = None
        # What is left after a partial take is no longer the run that started it.
        self._run_start = None
        self._not_full.unpark_all()

    def go_live(self) -> bool:
        """End the catch-up: queue the held events newer than the backlog read. False if
        the held events overflowed meanwhile (the caller reads the backlog again)."""
        held, self._held = self._held or [], None
        if self._held_overflow:
            self._held, self._held_overflow = [], False
            return False
        for event in held:
            if not self.offer(event):
                break
        self._on_queued()
        return True


@dataclass(frozen=True, slots=True)
class Departure:
    """How a viewer left the hub: what the load tests (and stats) look at."""

    reason: str
    filled_at: float | None
    """When its queue last became full (trio clock), if it was full."""
    closed_at: float
    taken: int


class Hub:
    """Publishes events to viewers; counts what happened to them."""

    def __init__(self, backlog: Backlog, limits: ViewerLimits, latest: int = 0) -> None:
        self.backlog = backlog
        self.limits = limits
        self.latest = latest
        """The newest cursor published (or found in the backlog at start)."""
        self._viewers: dict[Viewer, None] = {}
        self.published = 0
        self.out_of_order = 0
        """Events published with a cursor below one already published (see report)."""
        self.closed: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.departures: deque[Departure] = deque(maxlen=DEPARTURES_KEPT)
        """The latest viewers to leave, newest last."""
        self.generation = 0
        """Counts the times anything was queued for any viewer (see :meth:`wait_queued`)."""
        self._queued = trio.lowlevel.ParkingLot()

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def publish(self, event: FirehoseEvent) -> None:
        """Hand ``event`` to every matching viewer, now. Never waits."""
        if event.cursor > self.latest:
            self.latest = event.cursor
        else:
            self.out_of_order += 1
        self.published += 1
        number = self.published
        dropped = [
            viewer
            for viewer in self._viewers
            if viewer.filters.matches(event.kind, event.sender) and not viewer.offer(event, number)
        ]
        for viewer in dropped:
            self.detach(viewer)
        self._note_queued()

    async def attach(self, filters: Filters, cursor: int | None) -> Viewer:
        """A new viewer, its hello frame already queued. With a cursor, run
        :meth:`catch_up` next (in the viewer's own task)."""
        oldest, _ = await self.backlog.bounds()
        upto = self.latest
        skip = 0 if cursor is None else max(upto, cursor - 1)
        viewer = Viewer(filters, self.limits, skip, cursor is not None, self._note_queued)
        viewer.put_nowait(
            hello_frame(oldest, upto, sorted(filters.characters), sorted(filters.kinds))
        )
        self._viewers[viewer] = None
        return viewer

    def detach(self, viewer: Viewer) -> None:
        if self._viewers.pop(viewer, 0) is None:
            reason = viewer.reason or "disconnected"
            self.closed[reason] += 1
            closed_at = trio.current_time() if viewer.closed_at is None else viewer.closed_at
            self.departures.append(Departure(reason, viewer.filled_at, closed_at, viewer.taken))

    def viewers_now(self) -> list[Viewer]:
        """The attached viewers, oldest first (a copy: the fan-out yields mid-pass)."""
        return list(self._viewers)

    def _note_queued(self) -> None:
        self.generation += 1
        self._queued.unpark_all()

    async def wait_queued(self, seen: int) -> int:
        """Until something was queued since :attr:`generation` was ``seen``; the new
        generation."""
        while self.generation == seen:
            await self._queued.park()
        return self.generation

    def close_all(self, reason: str) -> None:
        for viewer in list(self._viewers):
            viewer.close(reason)
            self.detach(viewer)

    async def catch_up(self, viewer: Viewer, cursor: int) -> None:
        """Copy the backlog from ``cursor`` to the viewer, then switch it to live."""
        for _ in range(MAX_CATCH_UP_ROUNDS):
            cursor = await self._copy(viewer, cursor, viewer.skip_upto)
            if viewer.reason is not None:
                break
            if viewer.go_live():
                return
            # The held live events overflowed: they are all in the backlog by now.
            viewer.skip_upto = max(viewer.skip_upto, self.latest)
        else:
            viewer.close("slow_consumer")
        self.detach(viewer)

    async def _copy(self, viewer: Viewer, cursor: int, upto: int) -> int:
        """Queue backlog events in ``[cursor, upto]``; returns where to continue."""
        kinds = sorted(viewer.filters.kinds)
        stall = self.limits.backfill_stall_s
        while cursor <= upto and viewer.reason is None:
            page = await self.backlog.read(cursor, kinds, self.limits.backfill_page)
            # Bounds after the read: pruning removes the oldest rows only, so if the
            # oldest left is ≤ cursor, the read above missed nothing.
            oldest, _ = await self.backlog.bounds()
            if oldest > FIRST_CURSOR and cursor < oldest:
                if not await viewer.put(too_old_frame(cursor, oldest), stall):
                    break
                cursor = oldest
                continue
            if not page:
                break
            for event in page:
                if event.cursor > upto:
                    return upto + 1
                if viewer.filters.matches(event.kind, event.sender) and not await viewer.put(
                    event.frame, stall
                ):
                    return cursor
            cursor = page[-1].cursor + 1
        return max(cursor, upto + 1)

    def stats(self) -> dict[str, object]:
        return {
            "viewers": self.viewers,
            "events": self.published,
            "latest": self.latest,
            "dropped_viewers": self.closed["slow_consumer"],
            "closed": dict(self.closed),
            "refused": dict(self.refused),
            "out_of_order": self.out_of_order,
        }


class MemoryBacklog:
    """A :class:`Backlog` in a list, for tests and benchmarks: :meth:`add` stores an
    envelope under the next cursor, as the node's store does."""

    def __init__(self) -> None:
        self.events: list[FirehoseEvent] = []
        self._next = FIRST_CURSOR

    def add(self, envelope: Verified, name: str | None = None) -> FirehoseEvent:
        event = FirehoseEvent.from_verified(self._next, envelope, name)
        self._next += 1
        self.events.append(event)
        return event

    def prune(self, keep: int) -> int:
        gone = max(0, len(self.events) - keep)
        del self.events[:gone]
        return gone

    async def bounds(self) -> tuple[int, int]:
        await trio.lowlevel.checkpoint()
        if not self.events:
            return (0, 0)
        return (self.events[0].cursor, self.events[-1].cursor)

    async def read(self, cursor: int, kinds: Collection[str], limit: int) -> list[FirehoseEvent]:
        await trio.lowlevel.checkpoint()
        start = bisect.bisect_left(self.events, cursor, key=lambda e: e.cursor)
        out: list[FirehoseEvent] = []
        for event in self.events[start:]:
            if len(out) >= limit:
                break
            if event.kind in kinds:
                out.append(event)
        return out


__all__ = ["FIRST_CURSOR", "Backlog", "Departure", "Hub", "MemoryBacklog", "Viewer"]
