"""The door between two characters: the host waits for the knock, decides whether to
let the visitor in, and turns away (sometimes with an answering-machine reply) those it
does not; a guest turned away records what it was told.

:func:`node.visits.admission.decide_knock` makes the decision from facts; :class:`Door`
gathers them, keeps the rates, and stores the few lines of a visit that never happened.
The knock and the decline go through the host's
:class:`node.visits.conversation.Conversation` like every visit message. Once a guest is
welcome, :class:`node.visits.session.VisitSession` runs the visit itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from keys import PROTO_VISIT
from keys.errors import RemoteError
from node.config import VisitSettings
from node.engine.errors import EngineError
from node.events import EventLog
from node.storage.memory import Memory, Relation, Role, VisitIdTaken, VisitStart
from node.visits.admission import KnockDecision, KnockRateLimiter, decide_knock
from node.visits.contracts import Partner, Reject, VisitResult, Voice
from node.visits.conversation import Conversation, VisitProtocolError
from node.visits.messages import Decline, Knock, cap_line
from node.visits.tally import VisitTally
from node.visits.wire import VANISHED, VisitChannel
from registry_crdt import Status

logger = logging.getLogger(__name__)

KNOCK_TIMEOUT_S: Final = 30.0
"""How long a host waits for the knock after a stream opens."""
ANSWERING_MACHINE_PER_HOUR: Final = 30
RECORDED_DECLINES_PER_HOUR: Final = 200


class Door:
    """One character's door, for both :meth:`VisitSession.host` and :meth:`VisitSession.guest`."""

    def __init__(
        self,
        *,
        me_str: str,
        name: str,
        settings: VisitSettings,
        voice: Voice,
        memory: Memory,
        events: EventLog,
        clock_ms: Callable[[], int],
        status: Callable[[], Status],
        may_reply: Callable[[], bool],
        reject: Reject,
    ) -> None:
        self.me_str = me_str
        self.name = name
        self.settings = settings
        self.voice = voice
        self.memory = memory
        self.events = events
        self.clock_ms = clock_ms
        self.status = status
        self.may_reply = may_reply
        self.reject = reject
        self.tally = VisitTally()
        """How visits ended, by role and outcome (the metrics)."""
        self.rate = KnockRateLimiter(settings.per_visitor_per_hour)
        # PeerIDs are free, so the per-visitor rate alone does not bound what strangers
        # cost us: answering-machine replies and recorded declines have a ceiling too.
        self.machine_rate = KnockRateLimiter(ANSWERING_MACHINE_PER_HOUR)
        self.decline_rate = KnockRateLimiter(RECORDED_DECLINES_PER_HOUR)

    async def await_knock(self, channel: VisitChannel, conv: Conversation) -> Knock | None:
        """The knock that opens ``conv``; None (the partner reported) if none came."""
        try:
            _, first = await channel.receive(KNOCK_TIMEOUT_S)
            conv.receive(first, self.clock_ms())
        except RemoteError as exc:
            if exc.reason not in VANISHED:
                self.reject(channel.partner, PROTO_VISIT, exc)
            logger.info("no knock from %s: %s", channel.partner_id, exc)
            return None
        return conv.knock

    def decide(
        self,
        channel: VisitChannel,
        knock: Knock,
        relation: Relation | None,
        *,
        busy: bool,
        now: int,
    ) -> KnockDecision:
        """Our answer to ``knock`` (counted against the visitor's rate)."""
        return decide_knock(
            self.settings,
            status=self.status(),
            known_visitor=relation is not None and relation.completed_count > 0,
            # A bridge's visitors are each their own visitor, not the bridge.
            within_rate=self.rate.allow(knock.on_behalf_of or channel.partner, now / 1000),
            busy=busy,
            may_reply=self.may_reply(),
            requested_turns=knock.turns,
        )

    async def open(
        self,
        channel: VisitChannel,
        conv: Conversation,
        knock: Knock,
        partner: Partner,
        private: bool,
        now: int,
    ) -> bool:
        """Record the visit; a knock that reuses a known visit id is refused."""
        try:
            await self.memory.open_visit(
                visit_start(knock.visit, partner, "host", private, now, knock.first_line)
            )
        except VisitIdTaken:
            self.reject(channel.partner, PROTO_VISIT, VisitProtocolError("a reused visit id"))
            await self._send(channel, conv, Decline(knock.visit, "error"))
            return False
        return True

    async def decline(
        self,
        channel: VisitChannel,
        conv: Conversation,
        knock: Knock,
        partner: Partner,
        decision: KnockDecision,
        now: int,
    ) -> VisitResult | None:
        result = VisitResult(knock.visit, partner, "host", f"declined:{decision.reason}")
        if decision.reason == "rate_limited":
            # Not recorded: a visitor knocking too often must not fill the database.
            await self._send(channel, conv, Decline(knock.visit, decision.reason))
            self.events.emit(
                "visit_declined", visit=knock.visit, partner=partner.peer_id, reason=decision.reason
            )
            return result
        now_s = now / 1000
        if not self.decline_rate.allow(b"", now_s):
            await self._send(channel, conv, Decline(knock.visit, decision.reason))
            return result
        if decision.answering_machine and self.machine_rate.allow(b"", now_s):
            try:
                result.message = cap_line(
                    await self.voice.answering_machine(partner, knock.first_line, decision.reason)
                )
            except EngineError as exc:
                logger.info("answering machine could not reply: %s", exc)
            result.outcome = "left_message"
        elif decision.reason == "resting":
            # The budget is spent: a fixed notice, no engine call (and no made-up speech).
            result.message = (
                f"{self.name} is resting today and cannot chat. Please come back tomorrow."
            )
        if not await self.open(channel, conv, knock, partner, True, now):
            return None
        await self.memory.add_message(knock.visit, 0, partner.peer_id, knock.first_line, now)
        if result.message:
            await self.memory.add_message(knock.visit, 1, self.me_str, result.message, now)
        await self.close(result)
        await self._send(channel, conv, Decline(knock.visit, decision.reason, result.message))
        self.events.emit(
            "message_left" if result.outcome == "left_message" else "visit_declined",
            visit=knock.visit,
            partner=partner.peer_id,
            partner_name=partner.name,
            reason=decision.reason,
        )
        return result

    async def declined(
        self, result: VisitResult, decline: Decline, first_line: str, now: int
    ) -> VisitResult:
        """As the guest: record that the host turned us away."""
        result.outcome = f"declined:{decline.reason}"
        result.message = decline.message
        await self.memory.add_message(result.visit, 0, self.me_str, first_line, now)
        if decline.message:
            await self.memory.add_message(
                result.visit, 1, result.partner.peer_id, decline.message, self.clock_ms()
            )
        await self.close(result)
        self.events.emit(
            "visit_declined",
            visit=result.visit,
            partner=result.partner.peer_id,
            reason=decline.reason,
            role="guest",
        )
        return result

    async def turn_away(
        self, channel: VisitChannel, conv: Conversation, visit: str, reason: str
    ) -> None:
        """Decline a knock we will not even record (it is not who it says it is)."""
        await self._send(channel, conv, Decline(visit, reason))

    async def close(self, result: VisitResult) -> None:
        """Record how ``result``'s visit ended: its outcome, turns, transcript and receipt
        in memory, and its outcome in :attr:`tally`."""
        self.tally.record(result.role, result.outcome)
        await self.memory.close_visit(
            result.visit,
            result.outcome,
            self.clock_ms(),
            len(result.lines),
            result.transcript,
            result.receipt,
        )

    async def _send(self, channel: VisitChannel, conv: Conversation, decline: Decline) -> None:
        conv.send(decline, self.clock_ms())
        await channel.send(decline)


def visit_start(
    visit: str, partner: Partner, role: Role, private: bool, now: int, first_line: str
) -> VisitStart:
    return VisitStart(
        visit, partner.peer_id, partner.name, role, partner.addr, private, now, first_line
    )
