"""How a visit changes our relation to the partner: affinity, counts, memory summary."""

from __future__ import annotations

from collections.abc import Callable

from node.agent.affinity import START, Tone, VisitOutcome, after_visit, tier_for
from node.events import EventLog
from node.storage.memory import Memory
from node.visits.contracts import Partner, Recollection
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

    def __init__(
        self,
        memory: Memory,
        events: EventLog,
        clock_ms: Callable[[], int],
    ) -> None:
        self.memory = memory
        self.events = events
        self.clock_ms = clock_ms

    async def after_visit(
        self,
        partner: Partner,
        outcome: str,
        lines: list[Line],
        ended_ms: int,
        recollection: Recollection | None,
    ) -> None:
        kind = relation_outcome(outcome)
        judged = _tone(recollection)
        if kind is VisitOutcome.DECLINED and not lines:
            return  # a refusal at the door is not a relation
        current = await self.memory.relation(partner.peer_id)
        # A visit nobody judged (no summary: it broke off, or no engine answered) counts
        # as neutral: it can make a friend, never a close friend.
        tone = Tone.NEUTRAL if judged is None else judged
        affinity = after_visit(
            START if current is None else current.affinity,
            kind,
            len(lines),
            tone,
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
            summary=None if recollection is None else recollection.memory,
            now_ms=self.clock_ms(),
        )
        if judged is not None:
            self.events.emit("visit_tone", partner=partner.peer_id, tone=judged.value)
        self.events.emit(
            "relation_updated",
            partner=partner.peer_id,
            affinity=relation.affinity,
            tier=tier_for(relation.affinity).value,
            visits=relation.visit_count,
        )


def _tone(recollection: Recollection | None) -> Tone | None:
    """The verdict of the summary call, if it gave one we know."""
    if recollection is None or recollection.tone is None:
        return None
    try:
        return Tone(recollection.tone)
    except ValueError:
        return None
