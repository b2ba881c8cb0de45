"""The dashboard's live log: the node's events, scrubbed of PII, fanned out to viewers.

The node calls event listeners synchronously, so :meth:`LiveLog.listen` only queues
(O(1), never blocks, never fails the node); one task scrubs each event once and offers it
to every viewer's bounded queue. A viewer whose queue is full is dropped (its socket is
closed with ``slow_consumer``) instead of slowing the node or the other viewers. Recent
records are kept, so a page that opens, or reconnects with ``since``, sees what just
happened.

Records, one JSON object each, with ``id`` growing by one per record:

- ``{"type": "event", "id", "ts" (ms), "event", "group", "fields"}``; ``group`` is
  ``visit``, ``action`` or ``node``; every text in ``fields`` passed
  :func:`~node.agent.log_scrub.scrub_log_text` (names and speech come from other people);
- ``{"type": "gap", "id", "missed"}`` when events arrived faster than they could be
  scrubbed and ``missed`` of them were lost: never a silent hole.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    # As in node.process: trio-typing's stubs shadow trio's own annotations.
    from trio_typing import TaskStatus

    from node.events import EventLog

from node.clock import now_ms
from node.privacy.log_scrub import scrub_log_text

Record = dict[str, Any]

BACKLOG = 200
VIEWER_QUEUE = 256
INBOX = 1024
MAX_TEXT = 2000
"""Characters kept of any one text: the backlog's memory stays bounded."""
MAX_DEPTH = 6

VISIT_EVENTS = frozenset(
    {
        "visit_started",
        "visit_line",
        "visit_ended",
        "visit_ending",
        "visit_declined",
        "visit_interrupted",
        "message_left",
        "relation_updated",
        "autonomy_visit",
        "autonomy_failed",
        "autonomy_idle",
        "autonomy_paused",
        # souvenirs lent and borrowed in visits, and the owner's approvals of them
        "souvenir_call",
        "souvenirs_offered",
        "souvenir_approval_asked",
        "souvenir_approval",
    }
)
ACTION_EVENTS = frozenset({"action_sent", "action_received"})
NOT_SHOWN = frozenset({"dashboard_ready"})
"""Its URL carries the token: a screenshot of the live log must not."""


def group_of(event: str) -> str:
    if event in VISIT_EVENTS:
        return "visit"
    if event in ACTION_EVENTS:
        return "action"
    return "node"


def scrubbed(value: object, depth: int = 0) -> object:
    """``value`` as JSON with PII scrubbed from every text (bytes summarised)."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        text = str(value)
        clean = scrub_log_text(text)
        return value if clean == text else clean
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return scrub_log_text(value[:MAX_TEXT])
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {scrub_log_text(str(k)): scrubbed(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrubbed(v, depth + 1) for v in value]
    return scrub_log_text(str(value)[:MAX_TEXT])


def event_record(event: str, fields: Mapping[str, Any], ts_ms: int) -> Record:
    """A live-log record (its ``id`` is set by :meth:`LiveLog.publish`)."""
    return {
        "type": "event",
        "ts": ts_ms,
        "event": event,
        "group": group_of(event),
        "fields": scrubbed(fields),
    }


@dataclass(eq=False)
class Viewer:
    """One connected page: what it missed (``backlog``), then its live queue."""

    backlog: list[Record]
    receive: trio.MemoryReceiveChannel[Record]
    send: trio.MemorySendChannel[Record]
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    """Cancelled when the viewer is dropped, so a send stuck on a client that stopped
    reading is interrupted too."""
    dropped: bool = False


class LiveLog:
    def __init__(
        self, *, backlog: int = BACKLOG, viewer_queue: int = VIEWER_QUEUE, inbox: int = INBOX
    ) -> None:
        self._inbox_send, self._inbox = trio.open_memory_channel[tuple[str, Any, int]](inbox)
        self._backlog: deque[Record] = deque(maxlen=backlog)
        self._viewer_queue = viewer_queue
        self._viewers: set[Viewer] = set()
        self._next_id = 1
        self._missed = 0
        self.dropped_viewers = 0

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def listen(self, event: str, fields: dict[str, Any]) -> None:
        """The :class:`~node.events.EventLog` listener: queue and return at once."""
        if event in NOT_SHOWN:
            return
        try:
            self._inbox_send.send_nowait((event, fields, now_ms()))
        except trio.WouldBlock:
            self._missed += 1

    async def run(
        self, events: EventLog, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Follow ``events`` until cancelled; then every viewer's queue is closed."""
        unsubscribe = events.subscribe(self.listen)
        try:
            task_status.started()
            async for event, fields, ts_ms in self._inbox:
                if self._missed:
                    self.publish({"type": "gap", "missed": self._missed})
                    self._missed = 0
                self.publish(event_record(event, fields, ts_ms))
        finally:
            unsubscribe()
            for viewer in list(self._viewers):
                viewer.send.close()

    def publish(self, record: Record) -> None:
        """Number ``record``, keep it, and offer it to every viewer without waiting."""
        record["id"] = self._next_id
        self._next_id += 1
        self._backlog.append(record)
        for viewer in list(self._viewers):
            try:
                viewer.send.send_nowait(record)
            except trio.WouldBlock:
                self._drop(viewer)
            except trio.BrokenResourceError:
                self._viewers.discard(viewer)

    def _drop(self, viewer: Viewer) -> None:
        viewer.dropped = True
        self.dropped_viewers += 1
        self._viewers.discard(viewer)
        viewer.send.close()
        viewer.cancel.cancel()

    @contextlib.contextmanager
    def viewer(self, since: int = 0) -> Iterator[Viewer]:
        """A new viewer for the block: the kept records after ``since``, then live ones."""
        send, receive = trio.open_memory_channel[Record](self._viewer_queue)
        viewer = Viewer([r for r in self._backlog if r["id"] > since], receive, send)
        self._viewers.add(viewer)
        try:
            yield viewer
        finally:
            self._viewers.discard(viewer)
            send.close()
            receive.close()
