"""The firehose's network side, in memory: two signing characters and :class:`Net`,
which stores envelopes in a backlog and publishes them to a hub as the node does.

Here, not in ``node.testing``: it builds firehose events for the firehose's hub, and
``node`` (below the firehose) never imports ``firehose``.
"""

from __future__ import annotations

from typing import Any

from firehose.events import FirehoseEvent
from firehose.hub import Hub, MemoryBacklog
from keys import TOPIC_ACTIONS, TOPIC_CONTEXTS, Identity, seal, verify

NOW_MS = 1_700_000_000_000
ALICE, BOB = Identity.from_seed(b"a" * 32), Identity.from_seed(b"b" * 32)
BODIES = {"action": {"type": "gesture", "name": "wave"}, "context": {"type": "text", "text": "hi"}}


class Net:
    """Senders that store ("commit") envelopes in the backlog, then publish them to the
    hub, as the node does: stored first, listeners called after."""

    def __init__(self, hub: Hub, backlog: MemoryBacklog) -> None:
        self.hub = hub
        self.backlog = backlog
        self.seq = 0
        self.pending: list[FirehoseEvent] = []

    def commit(
        self, kind: str = "action", sender: Identity = ALICE, body: dict[str, Any] | None = None
    ) -> FirehoseEvent:
        self.seq += 1
        channel = TOPIC_ACTIONS if kind == "action" else TOPIC_CONTEXTS
        body = body or BODIES[kind]
        raw = seal(sender, kind=kind, channel=channel, seq=self.seq, ts_ms=NOW_MS, body=body)
        event = self.backlog.add(verify(raw, channel=channel, now_ms=NOW_MS), "Alice")
        self.pending.append(event)
        return event

    def publish(self, index: int = 0) -> None:
        self.hub.publish(self.pending.pop(index))

    def send(
        self, kind: str = "action", sender: Identity = ALICE, body: dict[str, Any] | None = None
    ) -> FirehoseEvent:
        event = self.commit(kind, sender, body)
        self.publish(len(self.pending) - 1)
        return event

    def flush(self) -> None:
        while self.pending:
            self.publish()


__all__ = ["ALICE", "BOB", "BODIES", "NOW_MS", "Net"]
