"""One visit, from either side: the trio loop that feeds :class:`Conversation`.

:class:`VisitSession` holds what both sides need (our identity, the voice that speaks for
the character, memory, publishing); :meth:`VisitSession.host` answers a knock and
:meth:`VisitSession.guest` pays a visit. Who gets in is the business of
:class:`node.visits.door.Door`; this module runs the visit once the door is open. What
may come when is the conversation's (:mod:`node.visits.conversation`): every message we
send or receive goes through it first, and what it refuses ends the visit. Every line is
stored (durably) before the next message goes out, so a line the other side has seen
answered is never lost, even if this process is killed right after. A partner that goes
silent or away ends the visit on our side with the outcome ``partner_vanished``.

A visit ends with a farewell from the side whose turn it is: when the budget is spent,
when a goodbye was said and answered (the talk ran dry; the conversation's rule), when
our engine has nothing fit to say, or when the owner asks (:meth:`VisitSession.end`, on
our next turn). ``visit_ended`` says why (``reason``) and who said farewell (``ended_by``).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import trio

from keys import PROTO_VISIT, Verified, peer_id_from_str, peer_id_to_str
from keys.errors import RemoteError
from node.config import VisitSettings
from node.engine.errors import EngineError, EngineResting
from node.events import EventLog
from node.storage.memory import INTERRUPTED, Memory, Relation
from node.visits.contracts import (
    OnLine,
    Partner,
    Reject,
    RelationKeeper,
    SouvenirDesk,
    VisitResult,
    VisitTools,
    Voice,
)
from node.visits.conversation import Conversation, Line, Phase, VisitProtocolError
from node.visits.door import Door, visit_start
from node.visits.messages import Decline, Farewell, Knock, Say, VisitMessage, Welcome, cap_line
from node.visits.ongoing import OngoingVisit, OngoingVisits
from node.visits.receipts import check_guest_receipt, check_host_receipt, receipt
from node.visits.wire import VANISHED, VisitChannel
from registry_crdt import Status

logger = logging.getLogger(__name__)

RECEIPT_TIMEOUT_S: Final = 30.0


class VisitSession:
    def __init__(
        self,
        *,
        me: bytes,
        name: str,
        card: Callable[[], bytes],
        settings: VisitSettings,
        voice: Voice,
        memory: Memory,
        relations: RelationKeeper,
        events: EventLog,
        clock_ms: Callable[[], int],
        status: Callable[[], Status],
        may_reply: Callable[[], bool],
        on_line: OnLine,
        reject: Reject,
        turn_timeout_s: float = 120.0,
        souvenirs: SouvenirDesk | None = None,
    ) -> None:
        self.me = me
        self.souvenirs = souvenirs
        """Lends and borrows souvenirs during each visit (None: no souvenirs at all)."""
        self.me_str = peer_id_to_str(me)
        self.name = name
        self.card = card
        self.settings = settings
        self.voice = voice
        self.memory = memory
        self.relations = relations
        self.events = events
        self.clock_ms = clock_ms
        self.on_line = on_line
        self.reject = reject
        self.turn_timeout_s = turn_timeout_s
        self.door = Door(
            me_str=self.me_str,
            name=name,
            settings=settings,
            voice=voice,
            memory=memory,
            events=events,
            clock_ms=clock_ms,
            status=status,
            may_reply=may_reply,
            reject=reject,
        )
        self.hosting: set[str] = set()
        self.ongoing = OngoingVisits()
        """The visits in progress (the owner may end them)."""
        self.private_visits: set[str] = set()
        """Visits whose speech is not published (either side asked for privacy)."""

    # -- host ---------------------------------------------------------------------------

    async def host(
        self, channel: VisitChannel, describe: Callable[[str, Knock], Partner]
    ) -> VisitResult | None:
        """Answer the knock on ``channel``; None if no acceptable knock came.

        ``describe(peer_id, knock)`` says who is at the door (for a bridge's knock, the
        legacy participant it vouches for); it raises :class:`VisitProtocolError` when the
        knock speaks for someone it may not."""
        conv = Conversation("host", me=self.me, partner=channel.partner)
        knock = await self.door.await_knock(channel, conv)
        if knock is None:
            return None
        try:
            partner = describe(channel.partner_id, knock)
        except VisitProtocolError as exc:
            self.reject(channel.partner, PROTO_VISIT, exc)
            await self.door.turn_away(channel, conv, knock.visit, "unknown_visitor")
            return None
        now = self.clock_ms()
        relation = await self.memory.relation(partner.peer_id)
        decision = self.door.decide(channel, knock, relation, busy=bool(self.hosting), now=now)
        if not decision.welcome:
            return await self.door.decline(channel, conv, knock, partner, decision, now)
        self.hosting.add(knock.visit)  # before any await: one guest at a time
        private = knock.private or self.settings.private
        try:
            if not await self.door.open(channel, conv, knock, partner, private, now):
                return None
            welcome = Welcome(knock.visit, decision.max_turns, decision.max_ms, private)
            result = await self._run(channel, conv, partner, relation, private, welcome)
        finally:
            self.hosting.discard(knock.visit)
        result.relation = relation
        result.needs_remembering = True
        return result

    # -- guest --------------------------------------------------------------------------

    async def opening(self, partner: Partner) -> str:
        """Our first line to ``partner`` (written before the door is knocked on: a slow
        engine must not keep a host waiting for the knock)."""
        relation = await self.memory.relation(partner.peer_id)
        return cap_line(await self.voice.opening(partner, relation))

    async def guest(
        self,
        channel: VisitChannel,
        partner: Partner,
        first_line: str,
        *,
        turns: int = 0,
        private: bool | None = None,
        context: str = "",
        on_start: Callable[[str], Awaitable[None]] | None = None,
        on_behalf_of: bytes = b"",
        to: bytes = b"",
    ) -> VisitResult:
        """Visit ``partner`` over ``channel``: knock, talk, say goodbye, countersign.
        ``on_behalf_of``: a bridge knocking for the legacy participant with that PeerID;
        ``to``: the legacy participant visited at the bridge ``channel`` goes to."""
        visit = secrets.token_hex(16)
        private = self.settings.private if private is None else private
        relation = await self.memory.relation(partner.peer_id)
        now = self.clock_ms()
        await self.memory.open_visit(visit_start(visit, partner, "guest", private, now, first_line))
        if on_start is not None:
            await on_start(visit)
        # The host sets the budget, but never beyond what we came for: a host cannot make
        # us spend more turns or time than our own settings (or --turns) allow.
        conv = Conversation(
            "guest",
            me=self.me,
            partner=channel.partner,
            turns=turns or self.settings.max_turns,
            max_ms=int(self.settings.max_minutes * 60_000),
        )
        knock = Knock(
            visit, self.name, self.card(), first_line, context, private, turns, on_behalf_of, to
        )
        result = VisitResult(visit, partner, "guest", "partner_vanished")
        try:
            await self._send(channel, conv, partner, knock)
            _, answer = await self._receive(channel, conv, partner, self.turn_timeout_s)
        except RemoteError as exc:
            result = await self._abandon(result, exc)
        else:
            if isinstance(answer, Decline):
                return await self.door.declined(result, answer, first_line, now)
            result = await self._run(channel, conv, partner, relation, conv.private)
        await self._remember(partner, relation, result)
        return result

    # -- the owner ----------------------------------------------------------------------

    def end(self, visit: str | None = None) -> list[OngoingVisit]:
        """Ask ``visit`` (None: every visit in progress) to end politely: farewell
        (``owner``) on our next turn. Raises :class:`node.visits.ongoing.NotVisiting`
        when it is not in progress. Wait on each one's ``ended`` to see it over."""
        ending = self.ongoing.end(visit)
        for ongoing in ending:
            self.events.emit(
                "visit_ending",
                visit=ongoing.visit,
                role=ongoing.role,
                partner=ongoing.partner.peer_id,
                reason="owner",
            )
        return ending

    # -- both ---------------------------------------------------------------------------

    async def _run(
        self,
        channel: VisitChannel,
        conv: Conversation,
        partner: Partner,
        relation: Relation | None,
        private: bool,
        welcome: Welcome | None = None,
    ) -> VisitResult:
        """:meth:`_visit`, held as in progress while it runs."""
        with self.ongoing.track(conv.visit, conv.role, partner, conv.started_ms) as ongoing:
            async with self._souvenirs(conv.visit, partner, private) as tools:
                ongoing.tools = tools
                result = await self._visit(
                    channel, conv, partner, relation, private, welcome, ongoing
                )
            ongoing.result = result
            return result

    def _souvenirs(
        self, visit: str, partner: Partner, private: bool
    ) -> AbstractAsyncContextManager[VisitTools | None]:
        """Lending both ways for the visit's length (nothing when no desk is set)."""
        if self.souvenirs is None:
            return contextlib.nullcontext(None)
        return self.souvenirs.visit(visit, partner.peer_id, partner.name, private)

    async def _visit(
        self,
        channel: VisitChannel,
        conv: Conversation,
        partner: Partner,
        relation: Relation | None,
        private: bool,
        welcome: Welcome | None,
        ongoing: OngoingVisit,
    ) -> VisitResult:
        """Record the first line (the host then sends its ``welcome``), talk, exchange
        receipts, record the end. A visit never stays ``open``: if anything but the
        partner stops it, it is closed before the error goes on: ``interrupted`` when the
        node is stopping (cancelled), ``failed:<error>`` on a local error."""
        result = VisitResult(conv.visit, partner, conv.role, "partner_vanished", conv.lines)
        if private:
            self.private_visits.add(conv.visit)
        try:
            await self._record(conv.visit, partner, conv.lines[0])
            if welcome is not None:
                await self._send(channel, conv, partner, welcome)
            self.events.emit(
                "visit_started",
                visit=conv.visit,
                role=conv.role,
                partner=partner.peer_id,
                partner_name=partner.name,
                private=private,
            )
            await self._talk(channel, conv, partner, relation, ongoing)
            result.outcome = "ended_by_partner" if conv.ended_by == "partner" else "completed"
            result.reason = conv.end_reason or ""
            result.receipt = await self._exchange_receipts(channel, conv, partner)
            result.transcript = conv.transcript_hash()
        except RemoteError as exc:
            return await self._abandon(result, exc)
        except BaseException as exc:
            cancelled = isinstance(exc, trio.Cancelled)
            result.outcome = INTERRUPTED if cancelled else f"failed:{type(exc).__name__}"
            with trio.CancelScope(shield=True):
                await self.door.close(result)
            raise
        finally:
            self.private_visits.discard(conv.visit)
        transcript = result.transcript.hex() if result.transcript else None
        ended_by = "me" if conv.ended_by == "me" else "partner"
        return await self._end(result, ended_by=ended_by, transcript=transcript)

    async def _talk(
        self,
        channel: VisitChannel,
        conv: Conversation,
        partner: Partner,
        relation: Relation | None,
        ongoing: OngoingVisit,
    ) -> None:
        """Alternate lines until one side says farewell (``conv.ended_by`` says who)."""
        while conv.phase is Phase.TALK:
            if not conv.our_turn:
                await self._receive(channel, conv, partner, self.turn_timeout_s)
                continue
            reason = "owner" if ongoing.end_asked else conv.over(self.clock_ms())
            text = ""
            if reason is None:
                with trio.CancelScope() as ongoing.speaking:
                    text, reason = await self._line(conv, partner, relation, ongoing.tools)
                ongoing.speaking = None
                if ongoing.end_asked:  # asked while our engine was writing: not said
                    text, reason = "", "owner"
            message: VisitMessage
            if reason is not None or not text:
                message = Farewell(conv.visit, len(conv.lines), reason or "goodbye")
            else:
                message = Say(conv.visit, conv.next_turn, text)
            await self._send(channel, conv, partner, message)

    async def _line(
        self,
        conv: Conversation,
        partner: Partner,
        relation: Relation | None,
        tools: VisitTools | None,
    ) -> tuple[str, str | None]:
        """Our next line, or "" and why we cannot speak (the engine is resting or gone)."""
        try:
            line = await self.voice.reply(partner, relation, conv.lines, conv.role, tools)
            return cap_line(line), None
        except EngineResting:
            return "", "resting"
        except EngineError as exc:
            logger.warning("visit %s: no engine answered: %s", conv.visit, exc)
            return "", "engine_unavailable"

    async def _exchange_receipts(
        self, channel: VisitChannel, conv: Conversation, partner: Partner
    ) -> bytes:
        """Host signs first, the guest countersigns; both keep the guest's envelope."""
        if conv.role == "host":
            host_raw = await self._send(channel, conv, partner, receipt(conv, self.clock_ms()))
            envelope, _ = await self._receive(channel, conv, partner, RECEIPT_TIMEOUT_S)
            check_guest_receipt(conv, envelope, host_raw)
            return envelope.raw
        envelope, _ = await self._receive(channel, conv, partner, RECEIPT_TIMEOUT_S)
        check_host_receipt(conv, envelope)
        countersigned = receipt(conv, self.clock_ms(), host_receipt=envelope.raw)
        return await self._send(channel, conv, partner, countersigned)

    async def _send(
        self, channel: VisitChannel, conv: Conversation, partner: Partner, message: VisitMessage
    ) -> bytes:
        """Send ``message`` once ``conv`` takes it as ours to send now; returns its envelope.

        A line it adds is stored before it goes out and reported (published, an event)
        after: the partner need not wait for those."""
        line = conv.send(message, self.clock_ms())
        if line is not None:
            await self._store(conv.visit, line)
        raw = await channel.send(message)
        if line is not None:
            await self.on_line(conv.visit, partner, line, True)
        return raw

    async def _receive(
        self, channel: VisitChannel, conv: Conversation, partner: Partner, timeout_s: float
    ) -> tuple[Verified, VisitMessage]:
        """The partner's next message, once ``conv`` takes it as one that may come now (it
        raises a :class:`RemoteError` if not); a line it adds is recorded."""
        envelope, message = await channel.receive(timeout_s)
        line = conv.receive(message, self.clock_ms())
        if line is not None:
            await self._record(conv.visit, partner, line)
        return envelope, message

    async def _record(self, visit: str, partner: Partner, line: Line) -> None:
        await self._store(visit, line)
        await self.on_line(visit, partner, line, line.speaker == self.me)

    async def _store(self, visit: str, line: Line) -> None:
        await self.memory.add_message(
            visit, line.turn, peer_id_to_str(line.speaker), line.text, line.ts_ms
        )

    async def _abandon(self, result: VisitResult, exc: RemoteError) -> VisitResult:
        """The partner stopped the visit (went away, or sent what we refuse)."""
        why = exc.reason
        logger.info("visit %s with %s ended: %s", result.visit, result.partner.peer_id, exc)
        if why not in VANISHED:
            self.reject(peer_id_from_str(result.partner.peer_id), PROTO_VISIT, exc)
        result.outcome = "partner_vanished" if why in VANISHED else f"failed:{why}"
        result.reason = why
        return await self._end(result)

    async def _end(self, result: VisitResult, **detail: Any) -> VisitResult:
        """Close the visit in memory and say how it ended (``visit_ended``)."""
        await self.door.close(result)
        self.events.emit(
            "visit_ended",
            visit=result.visit,
            role=result.role,
            partner=result.partner.peer_id,
            outcome=result.outcome,
            reason=result.reason,
            turns=len(result.lines),
            **detail,
        )
        return result

    async def remember(self, result: VisitResult) -> None:
        """Update the relation after a hosted visit (summarising may call an engine, so
        the host does it after letting the guest go and freeing its door)."""
        if result.needs_remembering:
            result.needs_remembering = False
            await self._remember(result.partner, result.relation, result)

    async def _remember(
        self, partner: Partner, relation: Relation | None, result: VisitResult
    ) -> None:
        recollection = None
        if result.outcome in ("completed", "ended_by_partner") and result.lines:
            try:
                recollection = await self.voice.summary(partner, relation, result.lines)
            except EngineError as exc:
                logger.info("no memory summary of visit %s: %s", result.visit, exc)
        await self.relations.after_visit(
            partner, result.outcome, result.lines, self.clock_ms(), recollection
        )


__all__ = ["VisitSession"]
