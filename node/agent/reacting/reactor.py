"""The trio loop of reactions: hear, pause, ask the engine for one reaction, publish it.

:meth:`Reactor.heard` is called (synchronously) with every public envelope the node
stored, and with each context our owner published. What concerns our character
(:func:`~node.agent.reacting.stimuli.stimulus_of`) is queued — at most once per envelope,
into a short queue (what does not fit is dropped: a character does not answer a crowd) —
and :meth:`Reactor.run` takes them one at a time: a random pause, then the checks, then
one engine call (:meth:`~node.agent.voice.EngineVoice.react`) and at most one action.

Never reacted to: our own actions; what happened over a minute ago (catch-up relays old
envelopes: ``stale``); anyone that is not a character in our directory
(the firehose spectator, a bridge); anything while our character is in a visit (the visit
has its attention: a stimulus that arrives then, or whose pause ends then, is dropped), or
from a character whose visit with us began since (a guest's ``move`` on arrival: a move
waits :data:`MOVE_SETTLE_S` for the knock that follows it);
anything while no engine is ready, or while the budget tier stops autonomy
(:data:`~node.engine.engines.Purpose.REACTION` gives way with it); anything the
:class:`~node.agent.reacting.restraint.Restraint` refuses. Each stimulus ends in one
``reaction`` event (what was done) or one ``reaction_skipped`` event (why not).

Our owner's text contexts are also news for the voice, reactions on or off: one may be
the topic of the next visit (:meth:`~node.agent.voice.EngineVoice.told`).
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import trio

from keys import Verified
from keys.errors import RoomverseError
from node.agent.prompts.reaction import Reaction
from node.agent.prompts.views import PartnerView
from node.agent.reacting.restraint import Restraint
from node.agent.reacting.stimuli import Stimulus, stimulus_of
from node.agent.voice import EngineVoice
from node.config import ReactionSettings
from node.engine.engines import Engines
from node.engine.errors import EngineError
from node.events import EventLog

MOVE_SETTLE_S: Final = 3.0
"""A reaction to a ``move`` waits at least this long: a guest's arrival is followed by its
knock, and then the visit is what answers it."""
ARRIVAL_GRACE_MS: Final = 10_000
"""A visit that started this soon before a stimulus from its partner arrived may still be
the one it belongs to (gossip and the visit stream race)."""
STALE_MS: Final = 60_000
"""What happened longer ago than this (catch-up brings old envelopes) is not reacted to."""
QUEUED: Final = 4
"""Stimuli waiting for their turn; more are dropped (``busy``)."""
SEEN_KEPT: Final = 1024
SAID_KEPT: Final = 3
"""Our last lines to each character, which a new one must not repeat (the guard)."""
LOOKING_AT_THEM: Final = frozenset({"them", "him", "her", "you", "it"})

Publish = Callable[[str, Mapping[str, Any]], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Queued:
    stimulus: Stimulus
    source: PartnerView | None
    """The character that acted (None: our owner)."""
    heard_at_ms: int


class Reactor:
    def __init__(
        self,
        *,
        me: str,
        settings: ReactionSettings,
        voice: EngineVoice,
        publish: Publish,
        events: EventLog,
        engines: Callable[[], Engines | None],
        in_visit: Callable[[str | None, int], bool],
        character: Callable[[str], PartnerView | None],
        clock_ms: Callable[[], int],
        rng: random.Random | None = None,
    ) -> None:
        self.me = me
        self.settings = settings
        self.voice = voice
        self.events = events
        self.restraint = Restraint(settings)
        self._publish = publish
        self._engines = engines
        self._in_visit = in_visit
        self._character = character
        self._clock_ms = clock_ms
        self._rng = rng or random.Random()
        self._send, self._receive = trio.open_memory_channel[Queued](QUEUED)
        self._seen: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._said: dict[str, deque[str]] = {}

    def heard(self, envelope: Verified) -> None:
        """An envelope our node stored or published: queue it if it concerns us."""
        stimulus = stimulus_of(envelope, self.me)
        if stimulus is None:
            return
        told = stimulus.heard
        if told.from_owner and not told.image and told.text:
            self.voice.told(told.text)  # something to talk about on the next visit
        if not self.settings.enabled:
            return
        key = (stimulus.sender, stimulus.seq)
        if key in self._seen:
            return
        self._seen[key] = None
        while len(self._seen) > SEEN_KEPT:
            self._seen.popitem(last=False)
        source = None
        if not stimulus.heard.from_owner:
            source = self._character(stimulus.sender)
            if source is None:
                self._skipped(stimulus, "not_a_character")
                return
        queued = Queued(stimulus, source, self._clock_ms())
        reason = "stale" if queued.heard_at_ms - stimulus.ts_ms > STALE_MS else None
        reason = reason or self._not_now(queued)
        if reason is not None:
            self._skipped(stimulus, reason)
            return
        try:
            self._send.send_nowait(queued)
        except trio.WouldBlock:
            self._skipped(stimulus, "busy")

    async def run(self) -> None:
        async with self._receive:
            async for queued in self._receive:
                pause = self._rng.uniform(self.settings.pause_min_s, self.settings.pause_max_s)
                if queued.stimulus.heard.kind == "move":
                    pause = max(pause, MOVE_SETTLE_S)
                await trio.sleep(pause)
                await self._react(queued)

    def _not_now(self, queued: Queued) -> str | None:
        partner = None if queued.source is None else queued.source.peer_id
        if self._in_visit(partner, queued.heard_at_ms - ARRIVAL_GRACE_MS):
            return "in_visit"
        engines = self._engines()
        if engines is None:
            return "engine_not_ready"
        if not engines.policy().autonomous_visits:
            return "budget"
        return None

    async def _react(self, queued: Queued) -> None:
        stimulus, source = queued.stimulus, queued.source
        reason = self._not_now(queued)
        partner = None if source is None else source.peer_id
        now = self._clock_ms()
        if reason is None:
            reason = self.restraint.refusal(partner, now)
        if reason is not None:
            self._skipped(stimulus, reason)
            return
        self.restraint.tried(now)
        said = self._said.setdefault(partner or "", deque(maxlen=SAID_KEPT))
        try:
            reaction = await self.voice.react(stimulus.heard, source, tuple(said))
        except EngineError as exc:
            self._skipped(stimulus, "engine", error=str(exc))
            return
        if reaction is None:
            self._skipped(stimulus, "unparsed")
            return
        body = action_body(reaction, partner, source)
        if body is not None:
            if reaction.kind == "say":
                said.append(reaction.text)
            try:
                await self._publish("action", body)
            except RoomverseError as exc:
                self._skipped(stimulus, "publish", error=str(exc))
                return
            if partner is not None and "to" in body:
                self.restraint.answered(partner, self._clock_ms())
        self.events.emit(
            "reaction",
            stimulus=_shown(stimulus),
            action=reaction.kind,
            to=None if body is None else body.get("to"),
        )

    def _skipped(self, stimulus: Stimulus, reason: str, **fields: Any) -> None:
        self.events.emit("reaction_skipped", stimulus=_shown(stimulus), reason=reason, **fields)


def action_body(
    reaction: Reaction, partner: str | None, source: PartnerView | None
) -> dict[str, Any] | None:
    """The action that publishes ``reaction`` (None: ``nothing``). Speech and gestures go
    ``to`` the one who acted (to nobody in particular for our owner); a look at "them" is
    a look at it; a move is to a place, never to a character (that reads as a visit)."""
    to = {} if partner is None else {"to": partner}
    if reaction.kind == "say":
        return {"type": "speak", "text": reaction.text, **to}
    if reaction.kind == "gesture":
        return {"type": "gesture", "name": reaction.text, **to}
    if reaction.kind == "look":
        them = partner is not None and (
            reaction.text.casefold() in LOOKING_AT_THEM
            or (source is not None and reaction.text.casefold() == source.name.casefold())
        )
        return {"type": "look", "at": partner if them else reaction.text}
    if reaction.kind == "move":
        return {"type": "move", "to": reaction.text}
    return None


def _shown(stimulus: Stimulus) -> dict[str, Any]:
    heard = stimulus.heard
    return {
        "from": stimulus.sender,
        "seq": stimulus.seq,
        "kind": heard.kind,
        "image": heard.image,
        "owner": heard.from_owner,
    }


__all__ = ["Reactor", "action_body"]
