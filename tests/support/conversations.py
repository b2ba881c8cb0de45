"""Pure visit conversations for tests: a host, a guest, a visit id, and conversations
brought to a phase by feeding them a visit's messages (no streams, no clock)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from keys import PROTO_VISIT, Identity, seal
from node.storage.memory_rows import Role
from node.visits.conversation import Conversation, Line
from node.visits.messages import (
    MAX_TURNS,
    MAX_VISIT_MS,
    VISIT_BODIES,
    Knock,
    Say,
    VisitMessage,
    Welcome,
    to_body,
)

HOST = Identity.from_seed(bytes(range(32)))
GUEST = Identity.from_seed(bytes(range(1, 33)))
VISIT = "0123456789abcdef0123456789abcdef"
STARTED_MS = 1_000
_seq = itertools.count(1)


def conversation(role: Role, *, turns: int = MAX_TURNS, max_ms: int = MAX_VISIT_MS) -> Conversation:
    """``role``'s side of a visit between :data:`HOST` and :data:`GUEST`."""
    me, partner = (HOST, GUEST) if role == "host" else (GUEST, HOST)
    return Conversation(role, me=me.peer_id, partner=partner.peer_id, turns=turns, max_ms=max_ms)


def feed(conv: Conversation, sender: Role, message: VisitMessage, now_ms: int) -> Line | None:
    """``message`` from ``sender``: sent by ``conv`` if it is that side, else received."""
    if sender == conv.role:
        return conv.send(message, now_ms)
    return conv.receive(message, now_ms)


def talking(
    role: Role,
    *,
    max_turns: int = 4,
    max_ms: int = 60_000,
    first_line: str = "hello",
    turns: int = MAX_TURNS,
    own_ms: int = MAX_VISIT_MS,
) -> Conversation:
    """``role``'s side once the host has welcomed the guest (turn 1 is due)."""
    conv = conversation(role, turns=turns, max_ms=own_ms)
    feed(conv, "guest", Knock(VISIT, "Guest", bytes(32), first_line), STARTED_MS)
    feed(conv, "host", Welcome(VISIT, max_turns, max_ms, False), STARTED_MS)
    return conv


def speaker(turn: int) -> Role:
    return "guest" if turn % 2 == 0 else "host"


def say(conv: Conversation, texts: Iterable[str], now_ms: int = STARTED_MS) -> None:
    """The next lines, each by the side whose turn it is."""
    for text in texts:
        turn = conv.next_turn
        feed(conv, speaker(turn), Say(VISIT, turn, text), now_ms)


def sealed(identity: Identity, message: VisitMessage, ts_ms: int) -> bytes:
    """``message`` as ``identity``'s ``visit`` envelope."""
    return seal(
        identity,
        kind="visit",
        channel=PROTO_VISIT,
        seq=next(_seq),
        ts_ms=ts_ms,
        body=to_body(message),
        bodies=VISIT_BODIES,
    )
