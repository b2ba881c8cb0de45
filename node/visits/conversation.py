"""One side of one visit as a pure state machine: which message may come next, the turns and
budgets, and the transcript both sides sign.

One visit is one stream, opened by the guest (:mod:`node.visits.messages` says what each
message holds)::

    phase          sent by            may send                       then
    KNOCK          the guest          knock                          ANSWER
    ANSWER         the host           welcome | decline              TALK | DECLINED
    TALK           whose turn it is   say (that turn) | farewell     TALK | HOST_RECEIPT
    HOST_RECEIPT   the host           receipt (signs the transcript) GUEST_RECEIPT
    GUEST_RECEIPT  the guest          receipt (countersigns it)      DONE

Turn 0 is the guest's first line, sent in the knock (the transcript's first line if the
host lets the guest in). After it turns alternate: even turns are the guest's, odd turns
the host's, and ``max_turns`` counts every line, the first included. Whoever's turn it
is may say farewell instead of a say; the side whose turn comes with the budget spent
must. A visit also ends when the talk runs dry: once a line from turn
:data:`~node.visits.goodbye.FIRST_GOODBYE_TURN` on says goodbye
(:mod:`node.visits.goodbye`) and the other side has answered it, the side whose turn comes
next says farewell (``goodbye``) — the one who said goodbye first, after hearing the
answer. Both sides read the same transcript, so they agree on it without a message of
its own; a peer that does not know the rule still gets a farewell it accepts.

The trio session feeds it, as h11's ``Connection`` is fed: :meth:`Conversation.receive`
takes each message from the partner and raises :class:`VisitProtocolError` (a
``RemoteError``) for one that may not come now; :meth:`Conversation.send` takes each of
ours before it goes out and raises :class:`VisitUsageError` (a ``LocalError``: our own
code is wrong) for one that may not go now. Both return the line a say adds to the
transcript. Nothing here does I/O or reads a clock: times are passed in as ``now_ms``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal, overload

import msgpack

from keys.errors import LocalError, RemoteError
from node.storage.memory_rows import Role
from node.visits.goodbye import counts_as_goodbye
from node.visits.messages import (
    MAX_LINE,
    MAX_TURNS,
    MAX_VISIT_MS,
    Decline,
    Farewell,
    Knock,
    Receipt,
    Say,
    VisitMessage,
    Welcome,
)

TRANSCRIPT_DOMAIN: Final = b"roomverse/visit-transcript/1\x00"
BUDGET_REASONS: Final = frozenset({"max_turns", "time_up"})
"""Farewell reasons that mean the budget ran out: the visit completed."""

EndedBy = Literal["me", "partner", "budget"]


class VisitProtocolError(RemoteError):
    """The other side broke the visit protocol (wrong message, turn or visit id)."""

    reason = "visit_protocol"


class VisitUsageError(LocalError):
    """Our side tried to send a message the visit protocol does not allow now."""


class Phase(Enum):
    KNOCK = "knock"
    ANSWER = "answer"
    TALK = "talk"
    HOST_RECEIPT = "host_receipt"
    GUEST_RECEIPT = "guest_receipt"
    DECLINED = "declined"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Line:
    turn: int
    speaker: bytes
    """PeerID bytes of who said it."""
    text: str
    ts_ms: int


class Conversation:
    """One side (``role``) of one visit between ``me`` and ``partner``.

    ``turns`` and ``max_ms`` are the most this side will spend: a guest's own limits (a
    host cannot make it talk longer); a host states its budget in its welcome.
    """

    def __init__(
        self,
        role: Role,
        *,
        me: bytes,
        partner: bytes,
        turns: int = MAX_TURNS,
        max_ms: int = MAX_VISIT_MS,
    ) -> None:
        self.role: Role = role
        self.me = me
        self.partner = partner
        self.host, self.guest = (me, partner) if role == "host" else (partner, me)
        self.phase = Phase.KNOCK
        self.visit = ""
        """The visit id, from the knock on."""
        self.private = False
        """Either side asked for privacy (in the knock or the welcome)."""
        self.started_ms = 0
        """When the knock went out or came in."""
        self.max_turns = 0
        self.stop_at = 0
        """Where we end the visit on our turn (a guest may want fewer turns than the host
        allows); lines are still accepted up to ``max_turns``."""
        self.deadline_ms = 0
        self.knock: Knock | None = None
        self.lines: list[Line] = []
        self.ended_by: EndedBy | None = None
        """Who said farewell: ``me``, the ``partner`` early, or the partner because the
        ``budget`` ran out."""
        self.end_reason: str | None = None
        """The farewell's reason (``goodbye``, ``max_turns``, ``owner``...), once said."""
        self.goodbye_turn: int | None = None
        """The first line (from either side) that said goodbye, if one has."""
        self._own_turns = turns
        self._own_ms = max_ms

    # -- feeding it -----------------------------------------------------------------------

    @overload
    def receive(self, message: Say, now_ms: int) -> Line: ...
    @overload
    def receive(self, message: VisitMessage, now_ms: int) -> Line | None: ...
    def receive(self, message: VisitMessage, now_ms: int) -> Line | None:
        """Take ``message`` from the partner; raises :class:`VisitProtocolError` if it may
        not come now. Returns the line a say added to the transcript."""
        self._check(self.partner, message)
        return self._apply(self.partner, message, now_ms)

    @overload
    def send(self, message: Say, now_ms: int) -> Line: ...
    @overload
    def send(self, message: VisitMessage, now_ms: int) -> Line | None: ...
    def send(self, message: VisitMessage, now_ms: int) -> Line | None:
        """Take our ``message`` before it goes out; raises :class:`VisitUsageError` if it
        may not go now. Returns the line a say added to the transcript."""
        try:
            self._check(self.me, message)
        except VisitProtocolError as exc:
            raise VisitUsageError(f"the {self.role} may not send that now: {exc}") from exc
        return self._apply(self.me, message, now_ms)

    def _check(self, sender: bytes, message: VisitMessage) -> None:
        """Raise :class:`VisitProtocolError` unless ``message`` is ``sender``'s to send now."""
        phase = self.phase
        if phase is Phase.KNOCK:
            if not isinstance(message, Knock):
                raise VisitProtocolError(
                    f"a visit starts with a knock, not a {type(message).__name__}"
                )
            if sender != self.guest:
                raise VisitProtocolError("only the guest knocks")
            _check_line(message.first_line)
        elif phase is Phase.ANSWER:
            if not isinstance(message, Welcome | Decline) or message.visit != self.visit:
                raise VisitProtocolError("expected a welcome or decline for our visit")
            if sender != self.host:
                raise VisitProtocolError("only the host answers a knock")
        elif phase is Phase.TALK:
            if not isinstance(message, Say | Farewell) or message.visit != self.visit:
                raise VisitProtocolError(
                    f"expected a say or farewell, got {type(message).__name__}"
                )
            turn = message.turn if isinstance(message, Say) else self.next_turn
            if turn != self.next_turn:
                raise VisitProtocolError(f"turn {turn} arrived when turn {self.next_turn} was due")
            if isinstance(message, Say) and turn >= self.max_turns:
                raise VisitProtocolError(f"turn {turn} is past the budget of {self.max_turns}")
            if sender != self.speaker_of(turn):
                raise VisitProtocolError(f"turn {turn} is not this side's to speak")
            if isinstance(message, Say):
                _check_line(message.text)
        elif phase is Phase.HOST_RECEIPT or phase is Phase.GUEST_RECEIPT:
            if not isinstance(message, Receipt):
                raise VisitProtocolError(f"expected a receipt, got {message.TYPE}")
            signer = self.host if phase is Phase.HOST_RECEIPT else self.guest
            if sender != signer:
                raise VisitProtocolError("the receipt is the other side's to send")
        else:
            raise VisitProtocolError(f"the visit is over ({phase.value}), yet a {message.TYPE}")

    def _apply(self, sender: bytes, message: VisitMessage, now_ms: int) -> Line | None:
        if isinstance(message, Knock):
            self.knock = message
            self.visit = message.visit
            self.private = message.private
            self.started_ms = now_ms
            self.lines.append(Line(0, self.guest, message.first_line, now_ms))
            self.phase = Phase.ANSWER
        elif isinstance(message, Welcome):
            # The host sets the budget, but never beyond what we came for.
            self.max_turns = message.max_turns
            self.stop_at = min(message.max_turns, self._own_turns)
            self.deadline_ms = self.started_ms + min(message.max_ms, self._own_ms)
            self.private = self.private or message.private
            self.phase = Phase.TALK
        elif isinstance(message, Decline):
            self.phase = Phase.DECLINED
        elif isinstance(message, Say):
            line = Line(message.turn, sender, message.text, now_ms)
            self.lines.append(line)
            if self.goodbye_turn is None and counts_as_goodbye(line.turn, line.text):
                self.goodbye_turn = line.turn
            return line
        elif isinstance(message, Farewell):
            self.end_reason = message.reason
            if sender == self.me:
                self.ended_by = "me"
            else:
                self.ended_by = "budget" if message.reason in BUDGET_REASONS else "partner"
            self.phase = Phase.HOST_RECEIPT
        elif self.phase is Phase.HOST_RECEIPT:
            self.phase = Phase.GUEST_RECEIPT
        else:
            self.phase = Phase.DONE
        return None

    # -- reading it -----------------------------------------------------------------------

    @property
    def next_turn(self) -> int:
        return len(self.lines)

    def speaker_of(self, turn: int) -> bytes:
        return self.guest if turn % 2 == 0 else self.host

    @property
    def our_turn(self) -> bool:
        """We are talking and the next line (or the farewell) is ours."""
        return self.phase is Phase.TALK and self.speaker_of(self.next_turn) == self.me

    def over(self, now_ms: int) -> str | None:
        """Why the visit must end on this turn (``goodbye`` / ``max_turns`` / ``time_up``),
        or None. A goodbye that was answered comes first: the talk ended on its own."""
        if self.goodbye_turn is not None and self.next_turn >= self.goodbye_turn + 2:
            return "goodbye"
        if self.next_turn >= self.stop_at:
            return "max_turns"
        if now_ms >= self.deadline_ms:
            return "time_up"
        return None

    def transcript_hash(self) -> bytes:
        """SHA-256 over the visit id, both sides and every line: what both sides sign."""
        lines = [[line.turn, line.speaker, line.text] for line in self.lines]
        packed = msgpack.packb([self.visit, self.host, self.guest, lines], use_bin_type=True)
        return hashlib.sha256(TRANSCRIPT_DOMAIN + packed).digest()


def _check_line(text: str) -> None:
    if not 1 <= len(text) <= MAX_LINE:
        raise VisitProtocolError(f"a line must be 1..{MAX_LINE} characters")
