"""The visit protocol as pure code: body schema, turn rules, transcript hash, receipts,
the host's decision and the per-visitor rate limit."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys import PROTO_VISIT, Identity, seal, verify
from keys.errors import SchemaError
from node.config import VisitSettings
from node.visits.admission import KnockRateLimiter, decide_knock
from node.visits.protocol import (
    MAX_LINE,
    BadReceipt,
    Conversation,
    Decline,
    Farewell,
    Knock,
    Receipt,
    Say,
    VisitProtocolError,
    Welcome,
    from_body,
    to_body,
    validate_visit_body,
    verify_receipt,
)
from registry_crdt import Status

VISIT = "0123456789abcdef0123456789abcdef"
HOST, GUEST = Identity.generate(), Identity.generate()
_seq = itertools.count(1)


def now_ms() -> int:
    return int(time.time() * 1000)


def sealed(identity: Identity, message: object) -> bytes:
    return seal(
        identity,
        kind="visit",
        channel=PROTO_VISIT,
        seq=next(_seq),
        ts_ms=now_ms(),
        body=to_body(message),  # type: ignore[arg-type]
    )


MESSAGES = [
    Knock(VISIT, "Mina", bytes(32), "Hello there!", "by the sea", False, 6),
    Knock(VISIT, "Kai", b"\x01" * 32, "Hi", "", True, 0),
    Welcome(VISIT, 8, 600_000, False),
    Decline(VISIT, "away", "Mina is out, I'll pass it on."),
    Decline(VISIT, "busy"),
    Say(VISIT, 3, "Tea?"),
    Farewell(VISIT, 4, "max_turns"),
    Receipt(VISIT, b"\x02" * 32, 4, 1234),
    Receipt(VISIT, b"\x02" * 32, 4, 1234, b"\x03" * 200),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_sealing_and_verifying(message: object) -> None:
    envelope = verify(sealed(GUEST, message), channel=PROTO_VISIT, now_ms=now_ms())
    assert from_body(envelope.body) == message


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "wave", "visit": VISIT}, "body.type"),
        ({"type": "say", "visit": "XYZ", "turn": 1, "text": "a"}, "body.visit"),
        ({"type": "say", "visit": VISIT, "turn": 1}, "body.text"),
        ({"type": "say", "visit": VISIT, "turn": 1, "text": ""}, "body.text"),
        ({"type": "say", "visit": VISIT, "turn": 1, "text": "x" * (MAX_LINE + 1)}, "body.text"),
        ({"type": "say", "visit": VISIT, "turn": 0, "text": "a"}, "body.turn"),
        ({"type": "say", "visit": VISIT, "turn": 1, "text": "a", "extra": 1}, "body.extra"),
        ({"type": "decline", "visit": VISIT, "reason": "because"}, "body.reason"),
        ({"type": "farewell", "visit": VISIT, "turns": 2, "reason": "busy"}, "body.reason"),
        (
            {"type": "receipt", "visit": VISIT, "transcript": b"x", "turns": 1, "duration_ms": 1},
            "body.transcript",
        ),
    ],
)
def test_schema_refuses_bad_bodies_naming_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(SchemaError) as info:
        validate_visit_body(body)
    assert str(info.value).startswith(field)


def conversation(max_turns: int = 4, max_ms: int = 60_000) -> Conversation:
    return Conversation(
        VISIT,
        host=HOST.peer_id,
        guest=GUEST.peer_id,
        max_turns=max_turns,
        started_ms=1_000,
        max_ms=max_ms,
    )


def test_turns_alternate_guest_first_and_stop_at_the_budget() -> None:
    conv = conversation(max_turns=3)
    conv.add(GUEST.peer_id, 0, "hello", 1_000)
    with pytest.raises(VisitProtocolError):
        conv.add(GUEST.peer_id, 1, "me again", 1_001)  # the host's turn
    with pytest.raises(VisitProtocolError):
        conv.add(HOST.peer_id, 2, "skipping", 1_001)  # out of order
    conv.add(HOST.peer_id, 1, "welcome", 1_002)
    assert conv.over(1_003) is None
    conv.add(GUEST.peer_id, 2, "thanks", 1_004)
    assert conv.over(1_005) == "max_turns"
    with pytest.raises(VisitProtocolError):
        conv.add(HOST.peer_id, 3, "one more", 1_006)


def test_time_budget_ends_the_visit() -> None:
    conv = conversation(max_turns=10, max_ms=5_000)
    conv.add(GUEST.peer_id, 0, "hello", 1_000)
    assert conv.over(5_999) is None
    assert conv.over(6_000) == "time_up"


@given(st.lists(st.text(min_size=1, max_size=50), min_size=1, max_size=8))
def test_both_sides_compute_the_same_hash_and_any_change_shows(texts: list[str]) -> None:
    a, b = conversation(max_turns=8), conversation(max_turns=8)
    for turn, text in enumerate(texts):
        speaker = a.speaker_of(turn)
        a.add(speaker, turn, text, turn)
        b.add(speaker, turn, text, turn + 500)  # receive times differ; the hash must not
    assert a.transcript_hash() == b.transcript_hash()
    c = conversation(max_turns=8)
    for turn, text in enumerate(texts):
        c.add(c.speaker_of(turn), turn, text + ("!" if turn == len(texts) - 1 else ""), turn)
    assert c.transcript_hash() != a.transcript_hash()


def finished() -> Conversation:
    conv = conversation()
    for turn, text in enumerate(["hi", "welcome", "nice tea"]):
        conv.add(conv.speaker_of(turn), turn, text, 1_000 + turn)
    return conv


def test_receipt_is_countersigned_and_verifies_on_its_own() -> None:
    host_side, guest_side = finished(), finished()
    host_raw = sealed(HOST, host_side.receipt(9_000))
    host_env = verify(host_raw, channel=PROTO_VISIT, now_ms=now_ms())
    guest_side.check_host_receipt(host_env)
    guest_raw = sealed(GUEST, guest_side.receipt(9_100, host_receipt=host_raw))
    guest_env = verify(guest_raw, channel=PROTO_VISIT, now_ms=now_ms())
    receipt = host_side.check_guest_receipt(guest_env, host_raw)
    assert receipt.transcript == host_side.transcript_hash()
    checked = verify_receipt(guest_raw)
    assert (checked.host, checked.guest, checked.turns) == (HOST.peer_id, GUEST.peer_id, 3)
    assert checked.transcript == host_side.transcript_hash()


def test_receipts_that_do_not_match_are_refused() -> None:
    host_side, guest_side = finished(), conversation()
    guest_side.add(GUEST.peer_id, 0, "a different hello", 1)
    host_raw = sealed(HOST, host_side.receipt(9_000))
    host_env = verify(host_raw, channel=PROTO_VISIT, now_ms=now_ms())
    with pytest.raises(BadReceipt):
        guest_side.check_host_receipt(host_env)
    # Signed by the wrong side.
    forged = verify(sealed(GUEST, host_side.receipt(9_000)), channel=PROTO_VISIT, now_ms=now_ms())
    with pytest.raises(BadReceipt):
        finished().check_host_receipt(forged)
    # A countersignature over another receipt.
    other = sealed(HOST, host_side.receipt(9_999))
    guest_raw = sealed(GUEST, host_side.receipt(9_100, host_receipt=other))
    with pytest.raises(BadReceipt):
        host_side.check_guest_receipt(
            verify(guest_raw, channel=PROTO_VISIT, now_ms=now_ms()), host_raw
        )
    # One signer twice is not "signed by both".
    with pytest.raises(BadReceipt):
        verify_receipt(sealed(HOST, host_side.receipt(9_100, host_receipt=host_raw)))
    with pytest.raises(BadReceipt):
        verify_receipt(b"\x00not an envelope")


def decide(settings: VisitSettings, **facts: object) -> tuple[bool, str, bool]:
    base: dict[str, object] = {
        "status": Status.ONLINE,
        "known_visitor": False,
        "within_rate": True,
        "busy": False,
        "may_reply": True,
        "requested_turns": 0,
    }
    base.update(facts)
    decision = decide_knock(settings, **base)  # type: ignore[arg-type]
    return decision.welcome, decision.reason, decision.answering_machine


def test_host_decision_follows_policy_status_rate_and_budget() -> None:
    open_ = VisitSettings()
    assert decide(open_) == (True, "", False)
    assert decide(VisitSettings(policy="ask-owner")) == (False, "closed", False)
    assert decide(VisitSettings(policy="friends")) == (False, "unknown_visitor", False)
    assert decide(VisitSettings(policy="friends"), known_visitor=True)[0]
    assert decide(open_, within_rate=False) == (False, "rate_limited", False)
    assert decide(open_, status=Status.AWAY) == (False, "away", True)
    assert decide(open_, status=Status.ASLEEP, may_reply=False) == (False, "asleep", False)
    assert decide(open_, busy=True) == (False, "busy", False)
    assert decide(open_, may_reply=False) == (False, "resting", False)
    turns = decide_knock(
        VisitSettings(max_turns=8),
        status=Status.ONLINE,
        known_visitor=False,
        within_rate=True,
        busy=False,
        may_reply=True,
        requested_turns=3,
    )
    assert turns.max_turns == 3


def test_rate_limit_is_per_visitor_and_slides() -> None:
    limiter = KnockRateLimiter(per_hour=2)
    a, b = b"a", b"b"
    assert limiter.allow(a, 0) and limiter.allow(a, 10)
    assert not limiter.allow(a, 20)
    assert limiter.allow(b, 20)
    assert limiter.allow(a, 3600.5)
