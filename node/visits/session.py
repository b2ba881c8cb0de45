"""One visit, from either side: the trio loop that feeds :class:`Conversation`.

:class:`VisitRunner` holds what both sides need (our identity, the voice that speaks for
the character, memory, publishing); :meth:`VisitRunner.host` answers a knock and
:meth:`VisitRunner.guest` pays a visit. Who gets in is the business of
:class:`node.visits.door.Door`; this module runs the visit once the door is open. Every
line is stored (durably) before the next message goes out, so a line the other side has
seen answered is never lost, even if this process is killed right after. A partner that
goes silent or away ends the visit on our side with the outcome ``partner_vanished``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from keys import PROTO_VISIT, peer_id_from_str, peer_id_to_str
from keys.errors import RemoteError
from node.config import VisitSettings
from node.engine.errors import EngineError, EngineResting
from node.events import EventLog
from node.storage.memory import Memory, Relation
from node.visits.contracts import (
    OnLine,
    Partner,
    Reject,
    RelationKeeper,
    VisitResult,
    Voice,
)
from node.visits.door import Door, visit_start
from node.visits.protocol import (
    Conversation,
    Decline,
    Farewell,
    Knock,
    Line,
    Say,
    VisitProtocolError,
    Welcome,
    cap_line,
)
from node.visits.wire import VANISHED, VisitChannel
from registry_crdt import Status

logger = logging.getLogger(__name__)

RECEIPT_TIMEOUT_S: Final = 30.0


class VisitRunner:
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
    ) -> None:
        self.me = me
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
        self.private_visits: set[str] = set()
        """Visits whose speech is not published (either side asked for privacy)."""

    # -- host ---------------------------------------------------------------------------

    async def host(
        self, channel: VisitChannel, describe: Callable[[str, str], Partner]
    ) -> VisitResult | None:
        """Answer the knock on ``channel``; None if no acceptable knock came."""
        knock = await self.door.await_knock(channel)
        if knock is None:
            return None
        partner = describe(channel.partner_id, knock.name)
        now = self.clock_ms()
        relation = await self.memory.relation(partner.peer_id)
        decision = self.door.decide(channel, knock, relation, busy=bool(self.hosting), now=now)
        if not decision.welcome:
            return await self.door.decline(channel, knock, partner, decision, now)
        self.hosting.add(knock.visit)  # before any await: one guest at a time
        private = knock.private or self.settings.private
        try:
            if not await self.door.open(channel, knock, partner, private, now):
                return None
            conv = Conversation(
                knock.visit,
                host=self.me,
                guest=channel.partner,
                max_turns=decision.max_turns,
                started_ms=now,
                max_ms=decision.max_ms,
            )

            async def begin() -> None:
                line = conv.add(channel.partner, 0, knock.first_line, now)
                await self._record(conv.visit, partner, line)
                await channel.send(
                    Welcome(knock.visit, decision.max_turns, decision.max_ms, private)
                )

            result = await self._run(channel, conv, partner, relation, "host", private, begin)
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
    ) -> VisitResult:
        """Visit ``partner`` over ``channel``: knock, talk, say goodbye, countersign."""
        visit = secrets.token_hex(16)
        private = self.settings.private if private is None else private
        relation = await self.memory.relation(partner.peer_id)
        now = self.clock_ms()
        await self.memory.open_visit(visit_start(visit, partner, "guest", private, now, first_line))
        if on_start is not None:
            await on_start(visit)
        result = VisitResult(visit, partner, "guest", "partner_vanished")
        try:
            await channel.send(
                Knock(visit, self.name, self.card(), first_line, context, private, turns)
            )
            _, answer = await channel.receive(self.turn_timeout_s)
            if answer.visit != visit or not isinstance(answer, Decline | Welcome):
                raise VisitProtocolError("expected a welcome or decline for our visit")
        except RemoteError as exc:
            result = await self._abandon(result, exc)
        else:
            if isinstance(answer, Decline):
                return await self.door.declined(result, answer, first_line, now)
            result = await self._welcomed(
                channel, partner, relation, answer, first_line, now, turns, private
            )
        await self._remember(partner, relation, result)
        return result

    async def _welcomed(
        self,
        channel: VisitChannel,
        partner: Partner,
        relation: Relation | None,
        welcome: Welcome,
        first_line: str,
        now: int,
        turns: int,
        private: bool,
    ) -> VisitResult:
        # The host sets the budget, but never beyond what we came for: a host cannot make
        # us spend more turns or time than our own settings (or --turns) allow.
        conv = Conversation(
            welcome.visit,
            host=channel.partner,
            guest=self.me,
            max_turns=welcome.max_turns,
            started_ms=now,
            max_ms=min(welcome.max_ms, int(self.settings.max_minutes * 60_000)),
            stop_at=min(welcome.max_turns, turns or self.settings.max_turns),
        )

        async def begin() -> None:
            await self._record(conv.visit, partner, conv.add(self.me, 0, first_line, now), True)

        return await self._run(
            channel, conv, partner, relation, "guest", private or welcome.private, begin
        )

    # -- both ---------------------------------------------------------------------------

    async def _run(
        self,
        channel: VisitChannel,
        conv: Conversation,
        partner: Partner,
        relation: Relation | None,
        role: str,
        private: bool,
        begin: Callable[[], Awaitable[None]],
    ) -> VisitResult:
        """Talk, exchange receipts, record the end. A visit never stays ``open``: if
        anything but the partner stops it (a local error, cancellation), it is closed as
        ``failed:<error>`` before the error goes on."""
        result = VisitResult(conv.visit, partner, role, "partner_vanished", conv.lines)
        if private:
            self.private_visits.add(conv.visit)
        try:
            await begin()
            self.events.emit(
                "visit_started",
                visit=conv.visit,
                role=role,
                partner=partner.peer_id,
                partner_name=partner.name,
                private=private,
            )
            ended_by = await self._talk(channel, conv, partner, relation, role)
            result.outcome = "ended_by_partner" if ended_by == "partner" else "completed"
            result.receipt = await self._exchange_receipts(channel, conv, role)
            result.transcript = conv.transcript_hash()
        except RemoteError as exc:
            return await self._abandon(result, exc)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await self.memory.close_visit(
                    conv.visit,
                    f"failed:{type(exc).__name__}",
                    self.clock_ms(),
                    len(conv.lines),
                    None,
                    None,
                )
            raise
        finally:
            self.private_visits.discard(conv.visit)
        await self.memory.close_visit(
            conv.visit,
            result.outcome,
            self.clock_ms(),
            len(conv.lines),
            result.transcript,
            result.receipt,
        )
        self.events.emit(
            "visit_ended",
            visit=conv.visit,
            role=role,
            partner=partner.peer_id,
            outcome=result.outcome,
            turns=len(conv.lines),
            transcript=result.transcript.hex() if result.transcript else None,
        )
        return result

    async def _talk(
        self,
        channel: VisitChannel,
        conv: Conversation,
        partner: Partner,
        relation: Relation | None,
        role: str,
    ) -> str:
        """Alternate lines until someone says farewell: ``me``, ``partner`` (early), or
        ``budget`` (the partner, because the turns or time ran out)."""
        for _ in range(conv.max_turns + 1):
            if conv.speaker_of(conv.next_turn) == self.me:
                reason = conv.over(self.clock_ms())
                text = ""
                if reason is None:
                    try:
                        text = cap_line(await self.voice.reply(partner, relation, conv.lines, role))
                    except EngineResting:
                        reason = "resting"
                    except EngineError as exc:
                        logger.warning("visit %s: no engine answered: %s", conv.visit, exc)
                        reason = "engine_unavailable"
                if reason is not None or not text:
                    await channel.send(Farewell(conv.visit, len(conv.lines), reason or "goodbye"))
                    return "me"
                line = conv.add(self.me, conv.next_turn, text, self.clock_ms())
                await self._store(conv.visit, line)
                await channel.send(Say(conv.visit, line.turn, line.text))
                # Publishing and events after the send: the partner need not wait for them.
                await self.on_line(conv.visit, partner, line, True)
                continue
            _, message = await channel.receive(self.turn_timeout_s)
            if isinstance(message, Farewell) and message.visit == conv.visit:
                # A farewell because the budget ran out is the visit completing.
                return "budget" if message.reason in ("max_turns", "time_up") else "partner"
            if not isinstance(message, Say) or message.visit != conv.visit:
                raise VisitProtocolError(
                    f"expected a say or farewell, got {type(message).__name__}"
                )
            line = conv.add(channel.partner, message.turn, message.text, self.clock_ms())
            await self._record(conv.visit, partner, line)
        raise VisitProtocolError("the conversation ran past its turn budget")

    async def _exchange_receipts(
        self, channel: VisitChannel, conv: Conversation, role: str
    ) -> bytes:
        """Host signs first, the guest countersigns; both keep the guest's envelope."""
        if role == "host":
            host_raw = await channel.send(conv.receipt(self.clock_ms()))
            envelope, _ = await channel.receive(RECEIPT_TIMEOUT_S)
            conv.check_guest_receipt(envelope, host_raw)
            return envelope.raw
        envelope, _ = await channel.receive(RECEIPT_TIMEOUT_S)
        conv.check_host_receipt(envelope)
        return await channel.send(conv.receipt(self.clock_ms(), host_receipt=envelope.raw))

    async def _record(self, visit: str, partner: Partner, line: Line, mine: bool = False) -> None:
        await self._store(visit, line)
        await self.on_line(visit, partner, line, mine)

    async def _store(self, visit: str, line: Line) -> None:
        await self.memory.add_message(
            visit, line.turn, peer_id_to_str(line.speaker), line.text, line.ts_ms
        )

    async def _abandon(self, result: VisitResult, exc: Exception) -> VisitResult:
        why = exc.reason if isinstance(exc, RemoteError) else type(exc).__name__
        logger.info("visit %s with %s ended: %s", result.visit, result.partner.peer_id, exc)
        if isinstance(exc, RemoteError) and why not in VANISHED:
            self.reject(peer_id_from_str(result.partner.peer_id), PROTO_VISIT, exc)
        result.outcome = "partner_vanished" if why in VANISHED else f"failed:{why}"
        await self.memory.close_visit(
            result.visit, result.outcome, self.clock_ms(), len(result.lines), None, None
        )
        self.events.emit(
            "visit_ended",
            visit=result.visit,
            role=result.role,
            partner=result.partner.peer_id,
            outcome=result.outcome,
            turns=len(result.lines),
            reason=why,
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
        summary = None
        if result.outcome in ("completed", "ended_by_partner") and result.lines:
            try:
                summary = await self.voice.summary(partner, relation, result.lines)
            except EngineError as exc:
                logger.info("no memory summary of visit %s: %s", result.visit, exc)
        await self.relations.after_visit(
            partner, result.outcome, result.lines, self.clock_ms(), summary
        )


__all__ = ["VisitRunner"]
