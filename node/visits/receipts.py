"""The receipt that closes a visit, signed by both sides, as pure code.

The host signs a receipt of the transcript (its hash, the turns, the duration); the guest
checks it against its own transcript and countersigns: the guest's receipt carries the
host's receipt envelope inside it, so one envelope holds both signatures and can be
checked on its own for good (:func:`verify_receipt`). Which receipt may come when is
:class:`node.visits.conversation.Conversation`'s business; this module checks what a
receipt says.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from keys import PROTO_VISIT, Verified, verify
from keys.errors import EnvelopeError
from node.visits.conversation import Conversation, VisitProtocolError
from node.visits.messages import VISIT_BODIES, Receipt, from_body


class BadReceipt(VisitProtocolError):
    """A receipt does not match our transcript or is not signed by both sides."""

    reason = "bad_receipt"


def receipt(conv: Conversation, ended_ms: int, host_receipt: bytes = b"") -> Receipt:
    """Our receipt of ``conv``; the guest's countersigns ``host_receipt`` (its envelope)."""
    return Receipt(
        conv.visit,
        conv.transcript_hash(),
        len(conv.lines),
        max(0, ended_ms - conv.started_ms),
        host_receipt,
    )


def check_host_receipt(conv: Conversation, envelope: Verified) -> Receipt:
    """The guest's check of the host's receipt: it must match our own transcript."""
    message = _receipt_from(conv, envelope, conv.host)
    if message.host_receipt:
        raise BadReceipt("the host's receipt must not carry another receipt")
    _matches(conv, message)
    return message


def check_guest_receipt(conv: Conversation, envelope: Verified, host_receipt_raw: bytes) -> Receipt:
    """The host's check of the countersigned receipt that closes the visit."""
    message = _receipt_from(conv, envelope, conv.guest)
    if message.host_receipt != host_receipt_raw:
        raise BadReceipt("the guest countersigned another receipt than ours")
    _matches(conv, message)
    return message


def _receipt_from(conv: Conversation, envelope: Verified, signer: bytes) -> Receipt:
    message = from_body(envelope.body)
    if not isinstance(message, Receipt):  # the conversation let no other message through
        raise VisitProtocolError(f"expected a receipt, got {message.TYPE}")
    if envelope.sender != signer:
        raise BadReceipt("the receipt is signed by the wrong side")
    if message.visit != conv.visit:
        raise BadReceipt("the receipt is for another visit")
    return message


def _matches(conv: Conversation, message: Receipt) -> None:
    if message.transcript != conv.transcript_hash() or message.turns != len(conv.lines):
        raise BadReceipt("the receipt's transcript differs from ours")


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
    countersigned = from_body(outer.body)
    if not isinstance(countersigned, Receipt) or not countersigned.host_receipt:
        raise BadReceipt("not a countersigned receipt")
    inner = _verify_stored(countersigned.host_receipt)
    host_receipt = from_body(inner.body)
    if not isinstance(host_receipt, Receipt):
        raise BadReceipt("the countersigned part is not a receipt")
    same = (host_receipt.visit, host_receipt.transcript, host_receipt.turns) == (
        countersigned.visit,
        countersigned.transcript,
        countersigned.turns,
    )
    if not same or inner.sender == outer.sender:
        raise BadReceipt("the two signatures are not over the same visit by both sides")
    return VerifiedReceipt(
        countersigned.visit,
        inner.sender,
        outer.sender,
        countersigned.transcript,
        countersigned.turns,
        host_receipt.duration_ms,
    )


def _verify_stored(raw: bytes) -> Verified:
    try:
        ts = msgpack.unpackb(raw, raw=False).get("ts", 0)
    except (ValueError, TypeError, AttributeError, msgpack.UnpackException) as exc:
        raise BadReceipt("receipt is not an envelope") from exc
    try:
        return verify(
            raw,
            channel=PROTO_VISIT,
            now_ms=int(ts) if type(ts) is int else 0,
            bodies=VISIT_BODIES,
        )
    except EnvelopeError as exc:
        raise BadReceipt(f"receipt does not verify: {exc}") from exc
