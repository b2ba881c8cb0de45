"""The visits a character is in right now, and the owner's way to end them.

Ending is polite, never a cut: :meth:`OngoingVisits.end` marks the visit, and the session
says farewell (reason ``owner``) on its next turn — at once when the turn is ours (an
engine call still writing our line is cancelled), else right after the partner's line,
since the protocol lets only the side whose turn it is say farewell. Receipts are then
exchanged and the visit is remembered as any other; :attr:`OngoingVisit.ended` is set
once it is over.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from keys.errors import LocalError
from node.visits.contracts import Partner, VisitResult, VisitTools


class NotVisiting(LocalError):
    """The owner asked to end a visit that is not in progress."""


@dataclass(eq=False)
class OngoingVisit:
    visit: str
    role: str
    partner: Partner
    started_ms: int
    end_asked: bool = False
    """The owner asked to end it: our next turn is a farewell."""
    ended: trio.Event = field(default_factory=trio.Event)
    result: VisitResult | None = None
    """How it ended, once :attr:`ended` is set (None if a local error stopped it)."""
    speaking: trio.CancelScope | None = None
    """Our engine call writing the next line, while one runs."""
    tools: VisitTools | None = None
    """The partner's souvenirs in this visit (None when souvenirs are off)."""

    def ask_to_end(self) -> None:
        self.end_asked = True
        if self.speaking is not None:
            self.speaking.cancel()

    def to_json(self) -> dict[str, Any]:
        json: dict[str, Any] = {
            "visit": self.visit,
            "role": self.role,
            "partner": self.partner.peer_id,
            "partner_name": self.partner.name,
            "started_ms": self.started_ms,
            "ending": self.end_asked,
            "ended": self.ended.is_set(),
        }
        if self.result is not None:
            json["outcome"] = self.result.outcome
            json["reason"] = self.result.reason
            json["turns"] = len(self.result.lines)
        return json


PARTNERS_KEPT: Final = 256


class OngoingVisits:
    def __init__(self) -> None:
        self._visits: dict[str, OngoingVisit] = {}
        self._last_started: OrderedDict[str, int] = OrderedDict()
        """Partner's PeerID → when our latest visit with it started (the newest few)."""

    def in_visit(self) -> bool:
        return bool(self._visits)

    def visited_since(self, partner: str, since_ms: int) -> bool:
        """Whether a visit with ``partner`` started at ``since_ms`` or later."""
        return self._last_started.get(partner, since_ms - 1) >= since_ms

    @contextmanager
    def track(
        self, visit: str, role: str, partner: Partner, started_ms: int
    ) -> Iterator[OngoingVisit]:
        """Hold ``visit`` as in progress for the block; it is over when the block ends."""
        ongoing = OngoingVisit(visit, role, partner, started_ms)
        self._visits[visit] = ongoing
        self._last_started[partner.peer_id] = started_ms
        self._last_started.move_to_end(partner.peer_id)
        while len(self._last_started) > PARTNERS_KEPT:
            self._last_started.popitem(last=False)
        try:
            yield ongoing
        finally:
            del self._visits[visit]
            ongoing.ended.set()

    def end(self, visit: str | None = None) -> list[OngoingVisit]:
        """Ask ``visit`` (None: every visit in progress) to end; raises
        :class:`NotVisiting` if it is not in progress, or if none is."""
        if visit is None:
            chosen = list(self._visits.values())
            if not chosen:
                raise NotVisiting("no visit is in progress")
        elif visit in self._visits:
            chosen = [self._visits[visit]]
        else:
            raise NotVisiting(f"visit {visit} is not in progress")
        for ongoing in chosen:
            ongoing.ask_to_end()
        return chosen

    def listing(self) -> list[dict[str, Any]]:
        """The visits in progress, oldest first, as JSON."""
        return [v.to_json() for v in sorted(self._visits.values(), key=lambda v: v.started_ms)]


__all__ = ["NotVisiting", "OngoingVisit", "OngoingVisits"]
