"""Our character's voice: prompts in, one engine call, clean speech out.

Every line leaving here was written by an engine (never made up), had any echoed
datamark removed, passed PII redaction and fits one turn (:data:`MAX_LINE`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Final

from node.agent.autonomy import Candidate
from node.agent.prompts import (
    CandidateView,
    PartnerView,
    PersonaView,
    RelationView,
    Turn,
    answering_machine_messages,
    choose_messages,
    parse_choice,
    summary_messages,
    visit_messages,
)
from node.agent.spotlight import strip_marks
from node.config import CharacterConfig
from node.engine import ChatMessage
from node.engine.engines import ANSWERING_MACHINE_MAX_TOKENS, Engines, Purpose
from node.engine.errors import EngineError
from node.privacy.redact import redact
from node.storage.memory import Relation
from node.visits.contracts import Partner
from node.visits.conversation import Line
from node.visits.messages import MAX_LINE

TURN_MAX_TOKENS: Final = 160
SUMMARY_MAX_TOKENS: Final = 200
CHOOSE_MAX_TOKENS: Final = 16


class EngineVoice:
    def __init__(
        self,
        config: CharacterConfig,
        me: bytes,
        engines: Callable[[], Engines],
        rng: random.Random | None = None,
    ) -> None:
        persona = config.persona
        self.me = me
        self.persona = PersonaView(
            config.name, persona.personality, persona.background, persona.greeting
        )
        self._engines = engines
        self._rng = rng

    async def opening(self, partner: Partner, relation: Relation | None) -> str:
        return await self.reply(partner, relation, [], "guest")

    async def reply(
        self, partner: Partner, relation: Relation | None, lines: list[Line], role: str
    ) -> str:
        messages = visit_messages(
            me=self.persona,
            partner=_partner(partner),
            relation=_relation(relation),
            role="host" if role == "host" else "guest",
            turns=self._turns(lines),
            rng=self._rng,
        )
        return await self._say(messages, Purpose.REPLY, TURN_MAX_TOKENS)

    async def answering_machine(self, partner: Partner, message: str, status: str) -> str:
        messages = answering_machine_messages(
            me=self.persona,
            partner=_partner(partner),
            status="asleep" if status == "asleep" else "away",
            message=message,
            rng=self._rng,
        )
        return await self._say(messages, Purpose.ANSWERING_MACHINE, ANSWERING_MACHINE_MAX_TOKENS)

    async def summary(
        self, partner: Partner, relation: Relation | None, lines: list[Line]
    ) -> str | None:
        messages = summary_messages(
            me=self.persona,
            partner=_partner(partner),
            relation=_relation(relation),
            turns=self._turns(lines),
            rng=self._rng,
        )
        completion = await self._engines().complete(
            messages, max_tokens=SUMMARY_MAX_TOKENS, purpose=Purpose.SUMMARY
        )
        return redact(strip_marks(completion.text)).strip() or None

    async def choose(self, candidates: Sequence[Candidate]) -> int | None:
        views = [CandidateView(c.name, c.affinity or 0, c.visits) for c in candidates]
        completion = await self._engines().complete(
            choose_messages(self.persona, views, self._rng),
            max_tokens=CHOOSE_MAX_TOKENS,
            purpose=Purpose.AUTONOMY,
        )
        return parse_choice(completion.text, len(candidates))

    async def _say(self, messages: list[ChatMessage], purpose: Purpose, max_tokens: int) -> str:
        completion = await self._engines().complete(
            messages, max_tokens=max_tokens, purpose=purpose
        )
        text = _one_turn(redact(strip_marks(completion.text)))
        if not text:
            raise EngineError(
                f"engine {completion.engine!r} gave nothing to say", reason="empty_reply"
            )
        return text

    def _turns(self, lines: list[Line]) -> list[Turn]:
        return [Turn("me" if line.speaker == self.me else "partner", line.text) for line in lines]


def _one_turn(text: str) -> str:
    """At most one turn's worth, cut at a sentence or word boundary when it is too long."""
    text = " ".join(text.split())
    if len(text) <= MAX_LINE:
        return text
    cut = text[:MAX_LINE]
    for stop in (". ", "! ", "? "):
        end = cut.rfind(stop)
        if end > MAX_LINE // 2:
            return cut[: end + 1]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


def _partner(partner: Partner) -> PartnerView:
    return PartnerView(partner.peer_id, partner.name, partner.description)


def _relation(relation: Relation | None) -> RelationView | None:
    if relation is None:
        return None
    return RelationView(
        relation.partner_id,
        relation.affinity,
        relation.visit_count,
        relation.summary,
        relation.notes,
    )
