"""How a visit changes our relation to the partner: affinity, counts, memory summary."""

from __future__ import annotations

from collections.abc import Callable

from node.agent.affinity import START, VisitOutcome, after_visit, tier_for
from node.events import EventLog
from node.storage.memory import Memory
from node.visits.contracts import Partner
from node.visits.conversation import Line


def relation_outcome(outcome: str) -> VisitOutcome:
    """Map a stored visit outcome onto what affinity cares about."""
    if outcome in ("completed", "ended_by_partner"):
        return VisitOutcome.COMPLETED
    if outcome == "left_message":
        return VisitOutcome.ANSWERED
    if outcome.startswith("declined:"):
        return VisitOutcome.DECLINED
    return VisitOutcome.ABORTED


class RelationKeeper:
    """Writes each partner's relation after a visit with them (and only with them)."""

    def __init__(self, memory: Memory, events: EventLog, clock_ms: Callable[[], int]) -> None:
        self.memory = memory
        self.events = events
        self.clock_ms = clock_ms

    async def after_visit(
        self, partner: Partner, outcome: str, lines: list[Line], ended_ms: int, summary: str | None
    ) -> None:
        kind = relation_outcome(outcome)
        if kind is VisitOutcome.DECLINED and not lines:
            return  # a refusal at the door is not a relation
        current = await self.memory.relation(partner.peer_id)
        # Friendly: the talk ran its course. A visit that broke off is not held against
        # anyone beyond the small abort cost; judging tone is left to the summary.
        affinity = after_visit(
            START if current is None else current.affinity,
            kind,
            len(lines),
            friendly=True,
            visits_before=0 if current is None else current.visit_count,
            now_ms=ended_ms,
            last_visit_ms=None if current is None else current.last_visit_ms,
        )
        relation = await self.memory.update_relation(
            partner.peer_id,
            partner.name,
            affinity=affinity,
            visit_count_delta=1,
            completed_delta=1 if kind is VisitOutcome.COMPLETED else 0,
            last_visit_ms=ended_ms,
            summary=summary,
            now_ms=self.clock_ms(),
        )
        self.events.emit(
            "relation_updated",
            partner=partner.peer_id,
            affinity=relation.affinity,
            tier=tier_for(relation.affinity).value,
            visits=relation.visit_count,
        )
