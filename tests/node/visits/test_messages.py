"""The visit messages: every one survives sealing and verifying; the schema names the
field it refuses."""

from __future__ import annotations

import pytest

from keys import PROTO_VISIT, verify
from keys.errors import SchemaError
from node.clock import now_ms
from node.visits.messages import (
    MAX_LINE,
    VISIT_BODIES,
    Decline,
    Farewell,
    Knock,
    Receipt,
    Say,
    VisitMessage,
    Welcome,
    from_body,
    validate_visit_body,
)
from tests.support.conversations import GUEST, VISIT, sealed

MESSAGES = [
    Knock(VISIT, "Mina", bytes(32), "Hello there!", "by the sea", False, 6),
    Knock(VISIT, "Kai", b"\x01" * 32, "Hi", "", True, 0),
    Knock(VISIT, "Zundamon", b"\x02" * 32, "Hi", "", False, 0, b"\x00\x24" + b"z" * 36),
    Knock(VISIT, "Mina", b"\x03" * 32, "Hi", "", False, 0, to=b"\x00\x24" + b"z" * 36),
    Welcome(VISIT, 8, 600_000, False),
    Decline(VISIT, "away", "Mina is out, I'll pass it on."),
    Decline(VISIT, "busy"),
    Say(VISIT, 3, "Tea?"),
    Farewell(VISIT, 4, "max_turns"),
    Receipt(VISIT, b"\x02" * 32, 4, 1234),
    Receipt(VISIT, b"\x02" * 32, 4, 1234, b"\x03" * 200),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_sealing_and_verifying(message: VisitMessage) -> None:
    now = now_ms()
    envelope = verify(
        sealed(GUEST, message, now), channel=PROTO_VISIT, now_ms=now, bodies=VISIT_BODIES
    )
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
