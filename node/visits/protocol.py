"""The ``/roomverse/visit/1.0.0`` messages and the conversation rules, as pure code.

One visit is one stream, opened by the guest. Every message is a signed ``visit``
envelope in one length-prefixed frame (:mod:`node.frames`)::

    guest ──knock────▶ host     visit id, name, card digest, first line (turn 0), context
    guest ◀─welcome─── host     the turn and time budget          (or decline(reason) + end)
    guest ◀──say 1──── host
    guest ───say 2───▶ host     ... turns alternate: even = guest, odd = host
    either ─farewell─▶          on its turn, instead of a say; the host also says farewell
                                when the turn or time budget is used up
    guest ◀─receipt─── host     transcript hash, turns, duration, signed by the host
    guest ──receipt──▶ host     the same fields plus the host's receipt, signed by the guest

The guest's receipt carries the host's receipt envelope inside it, so one envelope holds
both signatures. Nothing here does I/O or reads a clock: times are passed in as ``now_ms``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import msgpack

from keys import PROTO_VISIT, Verified, verify
from keys.bodies import register_body_validator
from keys.errors import EnvelopeError, RemoteError, SchemaError
from keys.kinds import KIND_VISIT

MAX_LINE: Final = 500
"""Code points in one turn of speech (the prompt caps untrusted text to the same)."""
MAX_CONTEXT: Final = 500
MAX_NAME: Final = 64
MAX_TURNS: Final = 64
MAX_VISIT_MS: Final = 4 * 3600 * 1000
VISIT_ID_HEX: Final = 32
DECLINE_REASONS: Final = frozenset(
    {"closed", "unknown_visitor", "away", "asleep", "busy", "rate_limited", "resting", "error"}
)
FAREWELL_REASONS: Final = frozenset(
    {"goodbye", "max_turns", "time_up", "engine_unavailable", "resting", "owner"}
)
_VISIT_ID = re.compile(r"[0-9a-f]{32}")
TRANSCRIPT_DOMAIN: Final = b"roomverse/visit-transcript/1\x00"


def cap_line(text: str) -> str:
    """Our speech, trimmed to what one line may hold."""
    return text.strip()[:MAX_LINE].strip()


class VisitProtocolError(RemoteError):
    """The other side broke the visit protocol (wrong message, turn or visit id)."""

    reason = "visit_protocol"


class BadReceipt(VisitProtocolError):
    """A receipt does not match our transcript or is not signed by both sides."""

    reason = "bad_receipt"


# -- messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Knock:
    visit: str
    name: str
    card: bytes
    first_line: str
    context: str = ""
    private: bool = False
    turns: int = 0
    """Turns the guest would like (0: the host decides)."""


@dataclass(frozen=True, slots=True)
class Welcome:
    visit: str
    max_turns: int
    max_ms: int
    private: bool


@dataclass(frozen=True, slots=True)
class Decline:
    visit: str
    reason: str
    message: str = ""
    """The answering machine's reply, when the host is away or asleep."""


@dataclass(frozen=True, slots=True)
class Say:
    visit: str
    turn: int
    text: str


@dataclass(frozen=True, slots=True)
class Farewell:
    visit: str
    turns: int
    reason: str


@dataclass(frozen=True, slots=True)
class Receipt:
    visit: str
    transcript: bytes
    turns: int
    duration_ms: int
    host_receipt: bytes = b""
    """In the guest's receipt only: the host's receipt envelope, countersigned."""


VisitMessage = Knock | Welcome | Decline | Say | Farewell | Receipt


def to_body(message: VisitMessage) -> dict[str, Any]:
    """The envelope body of ``message`` (validated by :func:`validate_visit_body`)."""
    if isinstance(message, Knock):
        body: dict[str, Any] = {
            "type": "knock",
            "visit": message.visit,
            "name": message.name,
            "card": message.card,
            "first_line": message.first_line,
            "private": message.private,
            "turns": message.turns,
        }
        if message.context:
            body["context"] = message.context
        return body
    if isinstance(message, Welcome):
        return {
            "type": "welcome",
            "visit": message.visit,
            "max_turns": message.max_turns,
            "max_ms": message.max_ms,
            "private": message.private,
        }
    if isinstance(message, Decline):
        body = {"type": "decline", "visit": message.visit, "reason": message.reason}
        if message.message:
            body["message"] = message.message
        return body
    if isinstance(message, Say):
        return {"type": "say", "visit": message.visit, "turn": message.turn, "text": message.text}
    if isinstance(message, Farewell):
        return {
            "type": "farewell",
            "visit": message.visit,
            "turns": message.turns,
            "reason": message.reason,
        }
    body = {
        "type": "receipt",
        "visit": message.visit,
        "transcript": message.transcript,
        "turns": message.turns,
        "duration_ms": message.duration_ms,
    }
    if message.host_receipt:
        body["host_receipt"] = message.host_receipt
    return body


def from_body(body: Mapping[str, Any]) -> VisitMessage:
    """The message in a verified ``visit`` body (the schema was checked by ``verify``)."""
    kind = body["type"]
    visit = body["visit"]
    if kind == "knock":
        return Knock(
            visit,
            body["name"],
            body["card"],
            body["first_line"],
            body.get("context", ""),
            body["private"],
            body["turns"],
        )
    if kind == "welcome":
        return Welcome(visit, body["max_turns"], body["max_ms"], body["private"])
    if kind == "decline":
        return Decline(visit, body["reason"], body.get("message", ""))
    if kind == "say":
        return Say(visit, body["turn"], body["text"])
    if kind == "farewell":
        return Farewell(visit, body["turns"], body["reason"])
    return Receipt(
        visit,
        body["transcript"],
        body["turns"],
        body["duration_ms"],
        body.get("host_receipt", b""),
    )


_SCHEMAS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    "knock": (
        frozenset({"type", "visit", "name", "card", "first_line", "private", "turns"}),
        frozenset({"context"}),
    ),
    "welcome": (frozenset({"type", "visit", "max_turns", "max_ms", "private"}), frozenset()),
    "decline": (frozenset({"type", "visit", "reason"}), frozenset({"message"})),
    "say": (frozenset({"type", "visit", "turn", "text"}), frozenset()),
    "farewell": (frozenset({"type", "visit", "turns", "reason"}), frozenset()),
    "receipt": (
        frozenset({"type", "visit", "transcript", "turns", "duration_ms"}),
        frozenset({"host_receipt"}),
    ),
}


def validate_visit_body(body: Mapping[str, Any]) -> None:
    """The ``visit`` body schema, registered with :mod:`keys.bodies` on import."""
    kind = body.get("type")
    if type(kind) is not str or kind not in _SCHEMAS:
        raise SchemaError(f"body.type: must be one of {', '.join(sorted(_SCHEMAS))}")
    required, optional = _SCHEMAS[kind]
    for name in required:
        if name not in body:
            raise SchemaError(f"body.{name}: required field is missing")
    for name in body:
        if name not in required and name not in optional:
            raise SchemaError(f"body.{name}: unknown field")
    visit = body["visit"]
    if type(visit) is not str or _VISIT_ID.fullmatch(visit) is None:
        raise SchemaError(f"body.visit: must be {VISIT_ID_HEX} lowercase hex digits")
    checks = {
        "name": lambda v: _text(v, 1, MAX_NAME),
        "first_line": lambda v: _text(v, 1, MAX_LINE),
        "context": lambda v: _text(v, 0, MAX_CONTEXT),
        "text": lambda v: _text(v, 1, MAX_LINE),
        "message": lambda v: _text(v, 0, MAX_LINE),
        "card": lambda v: type(v) is bytes and len(v) == 32,
        "transcript": lambda v: type(v) is bytes and len(v) == 32,
        "host_receipt": lambda v: type(v) is bytes and 0 < len(v) <= 4096,
        "private": lambda v: type(v) is bool,
        "turns": lambda v: _int(v, 0, MAX_TURNS),
        "max_turns": lambda v: _int(v, 1, MAX_TURNS),
        "turn": lambda v: _int(v, 1, MAX_TURNS - 1),
        "max_ms": lambda v: _int(v, 1, MAX_VISIT_MS),
        "duration_ms": lambda v: _int(v, 0, 2 * MAX_VISIT_MS),
        "reason": lambda v: v in (DECLINE_REASONS if kind == "decline" else FAREWELL_REASONS),
    }
    for name, value in body.items():
        check = checks.get(name)
        if check is not None and not check(value):
            raise SchemaError(f"body.{name}: not a valid {kind} {name}")


def _text(value: Any, low: int, high: int) -> bool:
    return type(value) is str and low <= len(value) <= high


def _int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


register_body_validator(KIND_VISIT, validate_visit_body)


# -- the conversation -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    turn: int
    speaker: bytes
    """PeerID bytes of who said it."""
    text: str
    ts_ms: int


class Conversation:
    """Who may speak next, when the visit is over, and what both sides sign at the end.

    Turn 0 is the guest's first line (sent in the knock); after that turns alternate,
    odd turns are the host's. ``max_turns`` counts every line, the first included.
    """

    def __init__(
        self,
        visit: str,
        *,
        host: bytes,
        guest: bytes,
        max_turns: int,
        started_ms: int,
        max_ms: int,
        stop_at: int | None = None,
    ) -> None:
        self.visit = visit
        self.host = host
        self.guest = guest
        self.max_turns = max_turns
        self.stop_at = max_turns if stop_at is None else min(stop_at, max_turns)
        """Where we end the visit on our turn (the guest may want fewer turns than the
        host allows); lines are still accepted up to ``max_turns``."""
        self.started_ms = started_ms
        self.deadline_ms = started_ms + max_ms
        self.lines: list[Line] = []

    @property
    def next_turn(self) -> int:
        return len(self.lines)

    def speaker_of(self, turn: int) -> bytes:
        return self.guest if turn % 2 == 0 else self.host

    def add(self, speaker: bytes, turn: int, text: str, ts_ms: int) -> Line:
        """Append one line; a line out of order, by the wrong side or past the budget
        raises :class:`VisitProtocolError`."""
        if turn != self.next_turn:
            raise VisitProtocolError(f"turn {turn} arrived when turn {self.next_turn} was due")
        if turn >= self.max_turns:
            raise VisitProtocolError(f"turn {turn} is past the budget of {self.max_turns}")
        if speaker != self.speaker_of(turn):
            raise VisitProtocolError(f"turn {turn} is not this side's to speak")
        if not 1 <= len(text) <= MAX_LINE:
            raise VisitProtocolError(f"a line must be 1..{MAX_LINE} characters")
        line = Line(turn, speaker, text, ts_ms)
        self.lines.append(line)
        return line

    def over(self, now_ms: int) -> str | None:
        """Why the visit must end now (``max_turns`` / ``time_up``), or None."""
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

    def receipt(self, ended_ms: int, host_receipt: bytes = b"") -> Receipt:
        return Receipt(
            self.visit,
            self.transcript_hash(),
            len(self.lines),
            max(0, ended_ms - self.started_ms),
            host_receipt,
        )

    def check_host_receipt(self, envelope: Verified) -> Receipt:
        """The guest's check of the host's receipt: it must match our own transcript."""
        receipt = _receipt_from(envelope, self.host, self.visit)
        if receipt.host_receipt:
            raise BadReceipt("the host's receipt must not carry another receipt")
        self._matches(receipt)
        return receipt

    def check_guest_receipt(self, envelope: Verified, host_receipt_raw: bytes) -> Receipt:
        """The host's check of the countersigned receipt that closes the visit."""
        receipt = _receipt_from(envelope, self.guest, self.visit)
        if receipt.host_receipt != host_receipt_raw:
            raise BadReceipt("the guest countersigned another receipt than ours")
        self._matches(receipt)
        return receipt

    def _matches(self, receipt: Receipt) -> None:
        if receipt.transcript != self.transcript_hash() or receipt.turns != len(self.lines):
            raise BadReceipt("the receipt's transcript differs from ours")


def _receipt_from(envelope: Verified, signer: bytes, visit: str) -> Receipt:
    message = from_body(envelope.body)
    if not isinstance(message, Receipt):
        raise VisitProtocolError(f"expected a receipt, got {envelope.body['type']}")
    if envelope.sender != signer:
        raise BadReceipt("the receipt is signed by the wrong side")
    if message.visit != visit:
        raise BadReceipt("the receipt is for another visit")
    return message


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    visit: str
    host: bytes
    guest: bytes
    transcript: bytes
    turns: int
    duration_ms: int


def verify_receipt(raw: bytes) -> VerifiedReceipt:
    """Check a stored, countersigned receipt on its own: both signatures, same fields.

    Receipts are kept for good, so the timestamp window is the envelope's own time.
    Raises :class:`BadReceipt` (or an :class:`EnvelopeError`) if anything is off.
    """
    outer = _verify_stored(raw)
    receipt = from_body(outer.body)
    if not isinstance(receipt, Receipt) or not receipt.host_receipt:
        raise BadReceipt("not a countersigned receipt")
    inner = _verify_stored(receipt.host_receipt)
    host_receipt = from_body(inner.body)
    if not isinstance(host_receipt, Receipt):
        raise BadReceipt("the countersigned part is not a receipt")
    same = (host_receipt.visit, host_receipt.transcript, host_receipt.turns) == (
        receipt.visit,
        receipt.transcript,
        receipt.turns,
    )
    if not same or inner.sender == outer.sender:
        raise BadReceipt("the two signatures are not over the same visit by both sides")
    return VerifiedReceipt(
        receipt.visit,
        inner.sender,
        outer.sender,
        receipt.transcript,
        receipt.turns,
        host_receipt.duration_ms,
    )


def _verify_stored(raw: bytes) -> Verified:
    try:
        ts = msgpack.unpackb(raw, raw=False).get("ts", 0)
    except (ValueError, TypeError, AttributeError, msgpack.UnpackException) as exc:
        raise BadReceipt("receipt is not an envelope") from exc
    try:
        return verify(raw, channel=PROTO_VISIT, now_ms=int(ts) if type(ts) is int else 0)
    except EnvelopeError as exc:
        raise BadReceipt(f"receipt does not verify: {exc}") from exc
