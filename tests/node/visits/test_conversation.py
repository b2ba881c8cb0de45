"""The visit's state machine, fed synchronously from both sides: the order of messages
(every message out of order is refused, with the reason the partner is told), the turns,
the budgets and the transcript hash."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys.errors import LocalError
from node.storage.memory_rows import Role
from node.visits.conversation import (
    Conversation,
    Phase,
    VisitProtocolError,
    VisitUsageError,
)
from node.visits.messages import (
    MAX_LINE,
    Decline,
    Farewell,
    Knock,
    Receipt,
    Say,
    VisitMessage,
    Welcome,
)
from tests.support.conversations import (
    GUEST,
    HOST,
    STARTED_MS,
    VISIT,
    conversation,
    feed,
    say,
    speaker,
    talking,
)

ROLES: tuple[Role, ...] = ("host", "guest")
OTHER_VISIT = "ab" * 16

Step = tuple[Role, VisitMessage]
VISIT_SCRIPT: list[Step] = [
    ("guest", Knock(VISIT, "Guest", bytes(32), "hello")),
    ("host", Welcome(VISIT, 4, 60_000, False)),
    ("host", Say(VISIT, 1, "come in")),
    ("guest", Say(VISIT, 2, "thanks")),
    ("host", Farewell(VISIT, 3, "goodbye")),
    ("host", Receipt(VISIT, bytes(32), 3, 0)),
    ("guest", Receipt(VISIT, bytes(32), 3, 0, b"the host's receipt")),
]
PHASES = [
    Phase.KNOCK,
    Phase.ANSWER,
    Phase.TALK,
    Phase.TALK,
    Phase.TALK,
    Phase.HOST_RECEIPT,
    Phase.GUEST_RECEIPT,
    Phase.DONE,
]
DECLINE_SCRIPT: list[Step] = [VISIT_SCRIPT[0], ("host", Decline(VISIT, "busy"))]


def replay(role: Role, steps: Sequence[Step]) -> Conversation:
    conv = conversation(role)
    for sender, message in steps:
        feed(conv, sender, message, STARTED_MS)
    return conv


def candidates(turn: int) -> list[VisitMessage]:
    """One of every message, and the near misses: another visit, another turn."""
    return [
        Knock(VISIT, "Guest", bytes(32), "hello"),
        Welcome(VISIT, 4, 60_000, False),
        Welcome(OTHER_VISIT, 4, 60_000, False),
        Decline(VISIT, "busy"),
        Decline(OTHER_VISIT, "busy"),
        Say(VISIT, turn, "hi"),
        Say(VISIT, turn + 1, "hi"),
        Say(OTHER_VISIT, turn, "hi"),
        Farewell(VISIT, turn, "goodbye"),
        Farewell(OTHER_VISIT, turn, "goodbye"),
        Receipt(VISIT, bytes(32), turn, 0),
    ]


def due(phase: Phase, turn: int, message: VisitMessage) -> bool:
    """The protocol, written out: what may come next in ``phase``."""
    if phase is Phase.KNOCK:
        return isinstance(message, Knock)
    if phase is Phase.ANSWER:
        return isinstance(message, Welcome | Decline) and message.visit == VISIT
    if phase is Phase.TALK:
        if isinstance(message, Say):
            return message.visit == VISIT and message.turn == turn
        return isinstance(message, Farewell) and message.visit == VISIT
    return phase in (Phase.HOST_RECEIPT, Phase.GUEST_RECEIPT) and isinstance(message, Receipt)


def due_from(phase: Phase, turn: int) -> Role | None:
    senders: dict[Phase, Role] = {
        Phase.KNOCK: "guest",
        Phase.ANSWER: "host",
        Phase.TALK: speaker(turn),
        Phase.HOST_RECEIPT: "host",
        Phase.GUEST_RECEIPT: "guest",
    }
    return senders.get(phase)


def state(conv: Conversation) -> tuple[object, ...]:
    return (conv.phase, list(conv.lines), conv.visit, conv.private, conv.ended_by)


def check_only_what_is_due(role: Role, steps: Sequence[Step]) -> None:
    for message in candidates(replay(role, steps).next_turn):
        for sending in (True, False):
            conv = replay(role, steps)
            before = state(conv)
            sender = due_from(conv.phase, conv.next_turn)
            ok = due(conv.phase, conv.next_turn, message) and (sender == role) == sending
            if ok:
                (conv.send if sending else conv.receive)(message, STARTED_MS)
                continue
            if sending:
                with pytest.raises(VisitUsageError):
                    conv.send(message, STARTED_MS)
            else:
                with pytest.raises(VisitProtocolError) as refused:
                    conv.receive(message, STARTED_MS)
                assert refused.value.reason == "visit_protocol"
            assert state(conv) == before, f"a refused {message} changed the conversation"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("step", range(len(VISIT_SCRIPT) + 1))
def test_every_message_out_of_order_is_refused(role: Role, step: int) -> None:
    assert replay(role, VISIT_SCRIPT[:step]).phase is PHASES[step]
    check_only_what_is_due(role, VISIT_SCRIPT[:step])


@pytest.mark.parametrize("role", ROLES)
def test_nothing_follows_a_decline(role: Role) -> None:
    assert replay(role, DECLINE_SCRIPT).phase is Phase.DECLINED
    check_only_what_is_due(role, DECLINE_SCRIPT)


@pytest.mark.parametrize(
    ("role", "step", "message", "detail"),
    [
        ("host", 0, Say(VISIT, 1, "no knock first"), "a visit starts with a knock, not a Say"),
        ("guest", 1, Welcome(OTHER_VISIT, 4, 60_000, False), "expected a welcome or decline"),
        ("guest", 1, Say(VISIT, 1, "hi"), "expected a welcome or decline for our visit"),
        (
            "guest",
            2,
            Knock(VISIT, "Host", bytes(32), "hi"),
            "expected a say or farewell, got Knock",
        ),
        ("guest", 2, Say(OTHER_VISIT, 1, "hi"), "expected a say or farewell, got Say"),
        ("guest", 2, Say(VISIT, 3, "skipping"), "turn 3 arrived when turn 1 was due"),
        ("host", 2, Say(VISIT, 1, "my turn?"), "turn 1 is not this side's to speak"),
        ("host", 2, Farewell(VISIT, 1, "goodbye"), "turn 1 is not this side's to speak"),
        ("guest", 3, Say(VISIT, 2, "x" * (MAX_LINE + 1)), "turn 2 is not this side's"),
        ("host", 3, Say(VISIT, 2, "x" * (MAX_LINE + 1)), "a line must be 1..500 characters"),
        ("guest", 5, Say(VISIT, 3, "one more"), "expected a receipt, got say"),
        ("host", 6, Farewell(VISIT, 3, "goodbye"), "expected a receipt, got farewell"),
        ("host", 7, Say(VISIT, 3, "still there?"), "the visit is over (done), yet a say"),
    ],
)
def test_the_partner_is_told_what_was_out_of_order(
    role: Role, step: int, message: VisitMessage, detail: str
) -> None:
    conv = replay(role, VISIT_SCRIPT[:step])
    with pytest.raises(VisitProtocolError, match=detail.replace("(", r"\(").replace(")", r"\)")):
        conv.receive(message, STARTED_MS)


def test_our_own_mistakes_are_local_errors() -> None:
    conv = talking("host")
    with pytest.raises(VisitUsageError) as mistake:
        conv.send(Say(VISIT, 2, "skipping a turn"), STARTED_MS)
    assert isinstance(mistake.value, LocalError)
    assert "host may not send that now: turn 2 arrived when turn 1 was due" in str(mistake.value)
    with pytest.raises(VisitUsageError):
        conversation("guest").send(Knock(VISIT, "Guest", bytes(32), ""), STARTED_MS)


def test_turns_alternate_guest_first_and_stop_at_the_budget() -> None:
    conv = talking("host", max_turns=3)
    assert [(line.turn, line.speaker, line.text) for line in conv.lines] == [
        (0, GUEST.peer_id, "hello")
    ]
    line = conv.send(Say(VISIT, 1, "welcome"), 1_002)
    assert (line.turn, line.speaker, line.ts_ms) == (1, HOST.peer_id, 1_002)
    assert conv.over(1_003) is None and not conv.our_turn
    conv.receive(Say(VISIT, 2, "thanks"), 1_004)
    assert conv.over(1_005) == "max_turns" and conv.our_turn
    with pytest.raises(VisitUsageError, match="past the budget of 3"):
        conv.send(Say(VISIT, 3, "one more"), 1_006)
    conv.send(Farewell(VISIT, 3, "max_turns"), 1_006)
    assert (conv.phase, conv.ended_by) == (Phase.HOST_RECEIPT, "me")


def test_a_line_past_the_partners_budget_is_refused() -> None:
    conv = talking("guest", max_turns=2)
    conv.receive(Say(VISIT, 1, "welcome"), 1_001)
    with pytest.raises(VisitProtocolError, match="turn 2 is past the budget of 2"):
        conv.receive(Say(VISIT, 2, "and more"), 1_002)


def test_time_budget_ends_the_visit() -> None:
    conv = talking("host", max_turns=10, max_ms=5_000)
    assert conv.over(STARTED_MS + 4_999) is None
    assert conv.over(STARTED_MS + 5_000) == "time_up"


def test_a_host_cannot_stretch_the_guests_own_limits() -> None:
    conv = talking("guest", max_turns=64, max_ms=3_600_000, turns=2, own_ms=60_000)
    assert (conv.max_turns, conv.stop_at, conv.deadline_ms) == (64, 2, STARTED_MS + 60_000)
    conv.receive(Say(VISIT, 1, "tell me more"), 1_001)
    assert conv.our_turn and conv.over(1_002) == "max_turns"
    # The host's lines are still taken up to its own budget.
    assert talking("host", max_turns=64).stop_at == 64


def test_privacy_asked_for_by_either_side_holds() -> None:
    for knock_private, welcome_private in [(True, False), (False, True)]:
        conv = conversation("guest")
        conv.send(Knock(VISIT, "Guest", bytes(32), "hi", private=knock_private), STARTED_MS)
        conv.receive(Welcome(VISIT, 4, 60_000, welcome_private), STARTED_MS)
        assert conv.private
    assert not talking("guest").private


@pytest.mark.parametrize(
    ("reason", "ended_by"), [("goodbye", "partner"), ("max_turns", "budget"), ("time_up", "budget")]
)
def test_a_farewell_says_who_ended_the_visit(reason: str, ended_by: str) -> None:
    conv = talking("guest")
    conv.receive(Farewell(VISIT, 1, reason), STARTED_MS)
    assert (conv.phase, conv.ended_by) == (Phase.HOST_RECEIPT, ended_by)


def test_a_farewell_keeps_its_reason() -> None:
    conv = talking("guest")
    conv.receive(Farewell(VISIT, 1, "owner"), STARTED_MS)
    assert (conv.ended_by, conv.end_reason) == ("partner", "owner")
    ours = talking("host")
    ours.send(Farewell(VISIT, 1, "goodbye"), STARTED_MS)
    assert (ours.ended_by, ours.end_reason) == ("me", "goodbye")


TALK = ["Come in!", "What a lovely shop.", "The bread is fresh today."]


@pytest.mark.parametrize("role", ROLES)
def test_an_answered_goodbye_ends_the_visit_on_the_next_turn(role: Role) -> None:
    conv = talking(role, max_turns=12)
    say(conv, TALK)
    # Turn 4 (the guest's) says goodbye; the host answers; the guest's turn ends it.
    say(conv, ["I should get going. Take care!"])
    assert conv.goodbye_turn == 4
    assert conv.over(STARTED_MS) is None  # the host still answers it
    say(conv, ["Goodbye, come back soon!"])
    assert conv.over(STARTED_MS) == "goodbye"
    assert conv.our_turn == (role == "guest")
    if role == "guest":
        conv.send(Farewell(VISIT, 6, "goodbye"), STARTED_MS)
    else:
        conv.receive(Farewell(VISIT, 6, "goodbye"), STARTED_MS)
    assert conv.phase is Phase.HOST_RECEIPT and conv.end_reason == "goodbye"
    assert conv.ended_by == ("me" if role == "guest" else "partner")


def test_a_partner_that_talks_on_after_its_goodbye_is_seen_off() -> None:
    conv = talking("host", max_turns=12)
    say(conv, [*TALK, "Well, goodbye!", "Bye, see you!"])
    # A peer that does not know the rule speaks again: the host ends it on its turn.
    say(conv, ["Oh, one more thing about the bread."])
    assert conv.our_turn and conv.over(STARTED_MS) == "goodbye"


def test_a_goodbye_before_the_fifth_line_is_a_greeting() -> None:
    conv = talking("guest", max_turns=12, first_line="Goodbye, rain! Hello, tea.")
    say(conv, ["Thanks for coming!", "Bye, rain!", "See you, rain!"])
    assert conv.goodbye_turn is None and conv.over(STARTED_MS) is None
    say(conv, ["See you, then!"])
    assert conv.goodbye_turn == 4


def test_a_goodbye_comes_before_the_budget() -> None:
    conv = talking("guest", max_turns=6)
    say(conv, [*TALK, "Goodbye!", "Goodbye, take care!"])
    assert conv.over(STARTED_MS + 10**9) == "goodbye"


@given(st.lists(st.text(min_size=1, max_size=50), min_size=1, max_size=7))
def test_both_sides_compute_the_same_hash_and_any_change_shows(texts: list[str]) -> None:
    host, guest = talking("host", max_turns=8), talking("guest", max_turns=8)
    say(host, texts, 2_000)
    say(guest, texts, 2_500)  # receive times differ; the hash must not
    assert host.transcript_hash() == guest.transcript_hash()
    changed = talking("host", max_turns=8)
    say(changed, [*texts[:-1], texts[-1] + "!"])
    assert changed.transcript_hash() != host.transcript_hash()


def test_the_protocol_is_pure_code() -> None:
    # A fresh interpreter: what the pure modules load, not what this test process holds.
    script = """
import sys
import node.visits.admission, node.visits.conversation, node.visits.messages
import node.visits.receipts
io = {"trio", "libp2p", "sqlite3", "asyncio", "socket", "httpx", "openai", "quart"}
loaded = sorted(name for name in sys.modules if name.split(".")[0] in io)
assert not loaded, loaded
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
