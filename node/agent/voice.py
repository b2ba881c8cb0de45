"""Our character's voice: prompts in, engine calls, clean and guarded speech out.

Every line leaving here had any echoed datamark removed, passed PII redaction, fits one
turn (:data:`MAX_LINE`) and passed the output guard (:mod:`node.agent.guard`). A line the
guard refuses is regenerated once; if the new one fails too, the two are trimmed to the
sentences that pass (the new one first); if nothing is left, a short in-character line
is said instead (the greeting, for an opening), or nothing when the last line was
already one — the visit then ends with a goodbye. Each case is counted as a
``line_guarded`` event (``check``: what the first line failed; ``action``: regenerated,
trimmed, replaced or skipped; never the text), so the guard cannot hide a bad model.

Visits end when the talk runs dry, and the voice plays its part in that: from
:data:`WIND_DOWN_FROM` lines on the prompt lets our character say goodbye when it has
nothing new to say, and when the partner has just said goodbye
(:func:`node.visits.goodbye.counts_as_goodbye`) it asks for a goodbye back (a short
farewell line replaces one the guard refuses). The conversation then ends the visit.
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Final, Literal

from node.agent.autonomy import Candidate
from node.agent.borrowing import CALLS_PER_VISIT, offer, result_text, tool_hint
from node.agent.guard import Check, LineContext, copies, fallback, judge, tidy, trim
from node.agent.languages import allowed_in_visit, languages_for_visit
from node.agent.prompts.answering_machine import AwayStatus, answering_machine_messages
from node.agent.prompts.choosing import CandidateView, choose_messages, parse_choice
from node.agent.prompts.reaction import (
    REACTION_SAMPLING,
    Heard,
    Reaction,
    parse_reaction,
    reaction_messages,
    reaction_rules,
    said_in,
    source_label,
)
from node.agent.prompts.recollection import SUMMARY, parse_summary, summary_messages
from node.agent.prompts.views import (
    PartnerView,
    PersonaView,
    RelationView,
    Turn,
    speaks_japanese_first,
)
from node.agent.prompts.visit_turn import (
    ROLEPLAY,
    VisitRole,
    instructions,
    partner_label,
    roleplay_sampling,
    visit_messages,
)
from node.agent.spotlight import strip_marks
from node.agent.topics import Topic, pick_topic
from node.clock import now_ms
from node.config import CharacterConfig
from node.engine import ChatMessage
from node.engine.engines import ANSWERING_MACHINE_MAX_TOKENS, Engines, Purpose
from node.engine.errors import EngineError
from node.engine.messages import Sampling
from node.events import EventLog
from node.privacy.redact import redact
from node.souvenirs.wire import ToolAnswer
from node.storage.memory import Relation
from node.visits.contracts import Partner, Recollection, VisitTools
from node.visits.conversation import Line
from node.visits.goodbye import counts_as_goodbye
from node.visits.messages import MAX_LINE

TURN_MAX_TOKENS: Final = 160
SUMMARY_MAX_TOKENS: Final = 200
CHOOSE_MAX_TOKENS: Final = 16
REACTION_MAX_TOKENS: Final = 80
TARGET_REFUSED: Final = frozenset(
    {Check.SPEAKS_AS_PARTNER, Check.OBEYS_PARTNER, Check.BREAKS_CHARACTER}
)
"""What a look's or a move's few words may not do (too short to judge language or copying)."""
TOPICS_KEPT: Final = 64
NEWS_KEPT: Final = 3
NEWS_FRESH_MS: Final = 6 * 3_600_000
"""What our owner told our character stays a possible visit topic this long."""
WIND_DOWN_FROM: Final = 6
"""From this many lines on, our character may say goodbye when the talk has run dry."""
GOODBYES: Final[dict[str, tuple[str, ...]]] = {
    "en": ("Take care, see you soon!", "Goodbye for now, and thank you!", "See you next time!"),
    "ja": ("またね！気をつけてね。", "ありがとう、またね。", "それじゃあ、またね！"),
}
"""Short goodbyes said instead of one the guard refuses, when the partner said goodbye."""

Kind = Literal["opening", "reply", "answering_machine", "reaction"]


class EngineVoice:
    def __init__(
        self,
        config: CharacterConfig,
        me: bytes,
        engines: Callable[[], Engines],
        rng: random.Random | None = None,
        *,
        events: EventLog | None = None,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        persona = config.persona
        self.me = me
        self.persona = PersonaView(
            config.name,
            persona.personality,
            persona.background,
            persona.greeting,
            persona.languages,
            config.tags,
        )
        self.events = events
        self._engines = engines
        # ``rng`` None: datamarks come from the OS; topics and fallbacks need no secrecy.
        self._rng = rng
        self._choices = rng if rng is not None else random.Random()
        self._clock_ms = clock_ms
        self._topics: OrderedDict[tuple[str, str], Topic] = OrderedDict()
        self._news: deque[tuple[int, str]] = deque(maxlen=NEWS_KEPT)

    def told(self, text: str) -> None:
        """Our owner told our character ``text`` (a context): it may become the topic of
        a visit soon (:class:`node.agent.topics.TopicKind` ``NEWS``), redacted."""
        self._news.append((self._clock_ms(), redact(text)))

    async def opening(self, partner: Partner, relation: Relation | None) -> str:
        return await self.reply(partner, relation, [], "guest")

    async def reply(
        self,
        partner: Partner,
        relation: Relation | None,
        lines: list[Line],
        role: str,
        tools: VisitTools | None = None,
    ) -> str:
        """Our next line; "" when nothing fit to say came (the session says goodbye).

        With ``tools`` (the partner's souvenirs), our engine may first call one of them;
        the line is then written knowing its result (see :meth:`_borrow`)."""
        visit_role: VisitRole = "host" if role == "host" else "guest"
        view = _partner(partner)
        me = replace(
            self.persona,
            languages=languages_for_visit(self.persona.languages, partner.languages, visit_role),
        )
        turns = self._turns(lines)
        closing = self._heard_goodbye(lines)
        winding_down = len(lines) >= WIND_DOWN_FROM
        messages = visit_messages(
            me=me,
            partner=view,
            relation=_relation(relation),
            role=visit_role,
            turns=turns,
            topic=self._topic(partner.peer_id, visit_role, relation, len(lines)),
            closing=closing,
            winding_down=winding_down,
        )
        label = partner_label(view, visit_role, me)
        context = LineContext(
            me=me.name,
            partner=label,
            languages=allowed_in_visit(self.persona.languages, partner.languages, visit_role),
            heard=tuple(t.text for t in turns if t.speaker == "partner"),
            said=tuple(t.text for t in turns if t.speaker == "me"),
            secret=instructions(
                me,
                _relation(relation),
                visit_role,
                closing=closing,
                winding_down=winding_down,
            ),
        )
        kind: Kind = "opening" if not lines else "reply"

        def instead() -> str | None:
            if kind == "opening":
                return self._opening_instead(me)
            if closing:
                return self._goodbye_instead(context, me)
            return fallback(context, self._choices)

        sampling = roleplay_sampling(label, me.name)
        first = None
        if tools is not None:
            messages, first = await self._borrow(messages, tools, me, sampling)
        return await self._guarded(
            messages,
            context,
            kind=kind,
            partner_id=partner.peer_id,
            purpose=Purpose.REPLY,
            max_tokens=TURN_MAX_TOKENS,
            sampling=sampling,
            instead=instead,
            first=first,
        )

    async def _borrow(
        self,
        messages: list[ChatMessage],
        tools: VisitTools,
        me: PersonaView,
        sampling: Sampling,
    ) -> tuple[list[ChatMessage], str | None]:
        """Offer the partner's souvenirs to our engine for this turn.

        Returns the messages to write our line from, and the line already written when
        the engine answered in words instead of calling a tool (None otherwise). After a
        call, the messages carry the engine's call and the result as data, so the line
        is written knowing it. Nothing is offered once :data:`CALLS_PER_VISIT` calls were
        made, when the partner lends nothing, or when our engine takes no tools."""
        engines = self._engines()
        if tools.calls >= CALLS_PER_VISIT or not engines.takes_tools():
            return messages, None
        offered = offer(await tools.listing(), tools.partner_name)
        if not offered.specs:
            return messages, None
        hint = tool_hint(tools.partner_name, offered.specs, japanese=speaks_japanese_first(me))
        hinted = [ChatMessage("system", f"{messages[0].content}\n{hint}"), *messages[1:]]
        completion = await engines.complete(
            hinted,
            max_tokens=TURN_MAX_TOKENS,
            purpose=Purpose.REPLY,
            sampling=sampling,
            tools=offered.specs,
        )
        call = next((c for c in completion.tool_calls if c.name in offered.routes), None)
        if self.events is not None:
            self.events.emit(
                "souvenirs_offered",
                lender=tools.partner_name,
                tools=len(offered.specs),
                called=None if call is None else offered.routes[call.name],
            )
        if call is None:
            return messages, self._tidy(completion.text) or None
        souvenir = offered.routes[call.name]
        arguments = call.parsed_arguments()
        if arguments is None:
            answer = ToolAnswer("Not called: the arguments were not a JSON object.", True)
        else:
            answer = await tools.call(souvenir, arguments)
        return [
            *hinted,
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage(
                "tool", result_text(answer, tools.partner_name, souvenir), tool_call_id=call.id
            ),
        ], None

    async def answering_machine(self, partner: Partner, message: str, status: str) -> str:
        away: AwayStatus = "asleep" if status == "asleep" else "away"
        messages = answering_machine_messages(
            me=self.persona,
            partner=_partner(partner),
            status=away,
            message=message,
            rng=self._rng,
        )
        context = LineContext(
            me=self.persona.name,
            partner=partner.name,
            languages=self.persona.languages,
            heard=(message,),
        )
        return await self._guarded(
            messages,
            context,
            kind="answering_machine",
            partner_id=partner.peer_id,
            purpose=Purpose.ANSWERING_MACHINE,
            max_tokens=ANSWERING_MACHINE_MAX_TOKENS,
            sampling=replace(ROLEPLAY, stop=("\n\n",)),
            instead=lambda: self._away_instead(away),
        )

    async def summary(
        self, partner: Partner, relation: Relation | None, lines: list[Line]
    ) -> Recollection:
        """Our memory of the visit, and the tone the same call judged."""
        messages = summary_messages(
            me=self.persona,
            partner=_partner(partner),
            relation=_relation(relation),
            turns=self._turns(lines),
            rng=self._rng,
        )
        completion = await self._engines().complete(
            messages, max_tokens=SUMMARY_MAX_TOKENS, purpose=Purpose.SUMMARY, sampling=SUMMARY
        )
        memory, tone = parse_summary(strip_marks(completion.text))
        return Recollection(redact(memory).strip() or None, None if tone is None else tone.value)

    async def choose(self, candidates: Sequence[Candidate]) -> int | None:
        views = [CandidateView(c.name, c.affinity or 0, c.visits) for c in candidates]
        completion = await self._engines().complete(
            choose_messages(self.persona, views, self._rng),
            max_tokens=CHOOSE_MAX_TOKENS,
            purpose=Purpose.AUTONOMY,
        )
        return parse_choice(completion.text, len(candidates))

    async def react(
        self, heard: Heard, source: PartnerView | None, said: Sequence[str] = ()
    ) -> Reaction | None:
        """One reaction to ``heard`` from ``source`` (None: our owner), or None when the
        engine wrote none of the forms. Speech passes the guard as a visit line does
        (``said``: what we said to ``source`` lately); a look's or a move's words must not
        obey, break character or speak as the other; anything that fails is ``nothing``."""
        messages = reaction_messages(me=self.persona, source=source, heard=heard)
        completion = await self._engines().complete(
            messages,
            max_tokens=REACTION_MAX_TOKENS,
            purpose=Purpose.REACTION,
            sampling=REACTION_SAMPLING,
        )
        reaction = parse_reaction(strip_marks(completion.text))
        if reaction is None or reaction.kind in ("nothing", "gesture"):
            return reaction
        context = LineContext(
            me=self.persona.name,
            partner=source_label(self.persona, source),
            languages=self.persona.languages,
            heard=(heard.text,) if heard.kind in ("speak", "context") and heard.text else (),
            said=tuple(said),
            secret=reaction_rules(self.persona),
        )
        if reaction.kind != "say":
            if TARGET_REFUSED.intersection(judge(reaction.text, context)):
                return Reaction("nothing")
            return Reaction(reaction.kind, redact(reaction.text))
        line = await self._guarded(
            messages,
            context,
            kind="reaction",
            partner_id="" if source is None else source.peer_id,
            purpose=Purpose.REACTION,
            max_tokens=REACTION_MAX_TOKENS,
            sampling=REACTION_SAMPLING,
            instead=lambda: None,
            first=self._tidy(reaction.text),
            speech_of=said_in,
        )
        return Reaction("say", line) if line else Reaction("nothing")

    # -- the guard --------------------------------------------------------------------

    async def _guarded(
        self,
        messages: list[ChatMessage],
        context: LineContext,
        *,
        kind: Kind,
        partner_id: str,
        purpose: Purpose,
        max_tokens: int,
        sampling: Sampling,
        instead: Callable[[], str | None],
        first: str | None = None,
        speech_of: Callable[[str], str] | None = None,
    ) -> str:
        """A line that passes the guard: the engine's (``first``, when it is written
        already), its second try, one of them trimmed, what ``instead`` gives, or "" (in
        that order), redacted. ``speech_of`` takes the words to speak out of what the
        engine writes, when it writes more than a line (a reaction's ``say: ...``).

        Lines are judged as the engine wrote them and redacted after: the measures of
        copying must see the words the model chose, not the placeholders redaction puts
        in (two lines that name different addresses are not the same line).
        """
        if first is None:
            first = await self._line(messages, purpose, max_tokens, sampling, speech_of)
        failed = judge(first, context)
        if not failed:
            return _spoken(first)
        tries = [first]
        try:
            second = await self._line(messages, purpose, max_tokens, sampling, speech_of)
        except EngineError:
            pass  # the first try is still there to trim
        else:
            if not judge(second, context):
                self._count(kind, partner_id, failed, "regenerated")
                return _spoken(second)
            tries.insert(0, second)
        for line in tries:
            trimmed = trim(line, context)
            if trimmed is not None:
                self._count(kind, partner_id, failed, "trimmed")
                return _spoken(trimmed)
        replacement = instead()
        if replacement:
            self._count(kind, partner_id, failed, "replaced")
            return _spoken(replacement)
        self._count(kind, partner_id, failed, "skipped")
        return ""

    async def _line(
        self,
        messages: list[ChatMessage],
        purpose: Purpose,
        max_tokens: int,
        sampling: Sampling,
        speech_of: Callable[[str], str] | None = None,
    ) -> str:
        """The engine's line as written, without marks, labels or line breaks."""
        completion = await self._engines().complete(
            messages, max_tokens=max_tokens, purpose=purpose, sampling=sampling
        )
        text = strip_marks(completion.text)
        return self._tidy(text if speech_of is None else speech_of(text))

    def _tidy(self, text: str) -> str:
        """An engine's text as a line: without marks, labels or line breaks."""
        return tidy(" ".join(strip_marks(text).split()), self.persona.name)

    def _count(self, kind: Kind, partner_id: str, failed: Sequence[str], action: str) -> None:
        if self.events is not None:
            self.events.emit(
                "line_guarded",
                partner=partner_id,
                kind=kind,
                check=str(failed[0]),
                checks=[str(check) for check in failed],
                action=action,
            )

    def _opening_instead(self, me: PersonaView) -> str:
        """The character's own greeting, when it is in the language of this visit."""
        if self.persona.greeting.strip() and me.languages[:1] == self.persona.languages[:1]:
            return _one_turn(self.persona.greeting)
        return "こんにちは！" if speaks_japanese_first(me) else "Hello!"

    def _heard_goodbye(self, lines: list[Line]) -> bool:
        """The partner's last line was a goodbye: ours should be one too."""
        last = lines[-1] if lines else None
        return (
            last is not None and last.speaker != self.me and counts_as_goodbye(last.turn, last.text)
        )

    def _goodbye_instead(self, context: LineContext, me: PersonaView) -> str:
        """A short goodbye in the visit's language that copies neither side's lines."""
        options = GOODBYES["ja" if speaks_japanese_first(me) else "en"]
        spoken = (*context.heard[-1:], *context.said)
        fresh = [line for line in options if not any(copies(line, said) for said in spoken)]
        return self._choices.choice(fresh or list(options))

    def _away_instead(self, status: AwayStatus) -> str:
        if speaks_japanese_first(self.persona):
            if status == "asleep":
                return "今は眠っています。起きたらメッセージを読みますね。"
            return "今は留守にしています。戻ったらメッセージを読みますね。"
        state = "asleep" if status == "asleep" else "away from home"
        return f"I'm {state} right now; I'll get your message when I'm back."

    # -- helpers ----------------------------------------------------------------------

    def _topic(
        self, partner_id: str, role: VisitRole, relation: Relation | None, lines: int
    ) -> Topic:
        """The visit's topic: drawn at its first line (ours, or the guest's as we host it)
        and kept for the rest of it."""
        key = (partner_id, role)
        topic = self._topics.get(key)
        if topic is None or lines <= 1:
            hour = datetime.fromtimestamp(self._clock_ms() / 1000).hour
            has_memory = relation is not None and bool(relation.summary.strip())
            now = self._clock_ms()
            news = [text for at, text in self._news if now - at < NEWS_FRESH_MS]
            topic = pick_topic(
                self.persona.tags, has_memory=has_memory, hour=hour, rng=self._choices, news=news
            )
            self._topics[key] = topic
        self._topics.move_to_end(key)
        while len(self._topics) > TOPICS_KEPT:
            self._topics.popitem(last=False)
        return topic

    def _turns(self, lines: list[Line]) -> list[Turn]:
        return [Turn("me" if line.speaker == self.me else "partner", line.text) for line in lines]


def _spoken(text: str) -> str:
    """What leaves the voice: redacted, at most one turn long."""
    return _one_turn(redact(text))


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
