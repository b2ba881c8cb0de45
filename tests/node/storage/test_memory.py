"""The character's memory on real SQLite files: visits, conversations, messages,
relations; redaction before storage; restarts; the terminal view."""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from pathlib import Path

import pytest
import trio

from keys import Identity, InvalidPeerId
from node.cli.memory_view import (
    conversation_text,
    relations_table,
    render_reply,
    visits_table,
)
from node.storage.memory import (
    COMPLETED,
    INTERRUPTED,
    LEFT_MESSAGE,
    OPEN,
    Conversation,
    Memory,
    MemoryUsageError,
    MessageRow,
    Relation,
    RelationStats,
    UnknownVisit,
    VisitIdTaken,
    VisitRow,
    VisitStart,
    declined,
)
from node.storage.store import MIGRATIONS, Store
from tests.support.procs import REPO

MARKER = "SECRET-PII"
REDACTED = "[redacted]"
ALICE, BOB, ME = Identity.generate(), Identity.generate(), Identity.generate()


class FakeRedactor:
    """Stands in for node.agent.redact.redact: replaces one known marker, counts calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str) -> str:
        self.calls += 1
        return text.replace(MARKER, REDACTED)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "c.db")
    yield store
    store.close()


@pytest.fixture
def memory(store: Store) -> Memory:
    return Memory(store.db, FakeRedactor())


def _start(
    visit_id: str, partner: Identity = ALICE, *, started_ms: int = 1_000, **over: object
) -> VisitStart:
    fields: dict[str, object] = {
        "visit_id": visit_id,
        "partner_id": partner.peer_id_str,
        "partner_name": "Alice",
        "role": "host",
        "remote_addr": "/ip4/127.0.0.1/tcp/4001",
        "private": False,
        "started_ms": started_ms,
        "first_line": "Hello there!",
    }
    fields.update(over)
    return VisitStart(**fields)  # type: ignore[arg-type]


def _vid(n: int) -> str:
    return f"{n:032x}"


async def test_visit_and_conversation_roundtrip(memory: Memory) -> None:
    opened = await memory.open_visit(_start(_vid(1), private=True))
    assert opened.outcome == OPEN and opened.partner_id == ALICE.peer_id_str
    assert await memory.visits() == [opened]
    assert await memory.add_message(_vid(1), 0, ALICE.peer_id_str, "Hello there!", 1_100)
    assert await memory.add_message(_vid(1), 1, ME.peer_id_str, "Welcome, Alice.", 1_200)
    assert await memory.close_visit(
        _vid(1), COMPLETED, 2_000, 2, b"\x01" * 32, b"receipt", summary="We said hello."
    )

    conversation = await memory.conversation(_vid(1))
    assert conversation is not None
    visit = conversation.visit
    assert (visit.outcome, visit.ended_ms, visit.turns) == (COMPLETED, 2_000, 2)
    assert (visit.transcript_hash, visit.receipt, visit.private) == (b"\x01" * 32, b"receipt", True)
    assert conversation.summary == "We said hello."
    assert [(m.idx, m.speaker, m.text, m.ts_ms) for m in conversation.messages] == [
        (0, ALICE.peer_id_str, "Hello there!", 1_100),
        (1, ME.peer_id_str, "Welcome, Alice.", 1_200),
    ]
    assert await memory.conversation(_vid(2)) is None

    wire = json.loads(json.dumps(conversation.to_json()))
    assert wire["visit"]["partner"] == ALICE.peer_id.hex()
    assert wire["visit"]["transcript_hash"] == "01" * 32
    assert Conversation.from_json(wire) == conversation
    assert VisitRow.from_json(opened.to_json()) == opened


async def test_visits_newest_first_and_by_partner(memory: Memory) -> None:
    for n, partner in enumerate([ALICE, BOB, ALICE]):
        await memory.open_visit(_start(_vid(n), partner, started_ms=1_000 * (n + 1)))
    assert [v.visit_id for v in await memory.visits()] == [_vid(2), _vid(1), _vid(0)]
    assert [v.visit_id for v in await memory.visits(limit=1)] == [_vid(2)]
    by_alice = await memory.visits(partner_id=ALICE.peer_id_str)
    assert [v.visit_id for v in by_alice] == [_vid(2), _vid(0)]
    with pytest.raises(MemoryUsageError):
        await memory.visits(limit=0)


async def test_add_message_is_idempotent_and_ordered(memory: Memory) -> None:
    await memory.open_visit(_start(_vid(1)))
    assert await memory.add_message(_vid(1), 0, ALICE.peer_id_str, "first", 1)
    assert not await memory.add_message(_vid(1), 0, ALICE.peer_id_str, "first again", 2)
    with pytest.raises(MemoryUsageError, match="turn 2 before 1"):
        await memory.add_message(_vid(1), 2, ALICE.peer_id_str, "a gap", 3)
    with pytest.raises(UnknownVisit):
        await memory.add_message(_vid(9), 0, ALICE.peer_id_str, "nobody", 3)
    assert await memory.close_visit(_vid(1), LEFT_MESSAGE, 5, 1, None, None)
    assert not await memory.add_message(_vid(1), 0, ALICE.peer_id_str, "a late retry", 6)
    with pytest.raises(MemoryUsageError, match="closed"):
        await memory.add_message(_vid(1), 1, ME.peer_id_str, "too late", 6)
    conversation = await memory.conversation(_vid(1))
    assert conversation is not None
    assert [m.text for m in conversation.messages] == ["first"]


async def test_visit_arguments_are_checked(memory: Memory) -> None:
    await memory.open_visit(_start(_vid(1)))
    with pytest.raises(VisitIdTaken):
        await memory.open_visit(_start(_vid(1), BOB, partner_name="Mallory"))
    assert [v.partner_name for v in await memory.visits()] == ["Alice"]
    for bad in [_start("XYZ"), _start("AB" * 16), _start(_vid(2), role="admin")]:
        with pytest.raises(MemoryUsageError):
            await memory.open_visit(bad)
    with pytest.raises(InvalidPeerId):
        await memory.open_visit(replace(_start(_vid(2)), partner_id="12D3KooWnot"))
    for outcome in [OPEN, "whatever"]:
        with pytest.raises(MemoryUsageError):
            await memory.close_visit(_vid(1), outcome, 2, 0, None, None)
    with pytest.raises(UnknownVisit):
        await memory.close_visit(_vid(3), COMPLETED, 2, 0, None, None)
    assert await memory.close_visit(_vid(1), declined("busy"), 2, 0, None, None)
    assert not await memory.close_visit(_vid(1), COMPLETED, 3, 0, None, None)
    assert (await memory.visits())[0].outcome == "declined:busy"
    await memory.open_visit(_start(_vid(4)))
    assert await memory.close_visit(_vid(4), "failed:bad_message", 2, 0, None, None)
    outcomes = {v.visit_id: v.outcome for v in await memory.visits()}
    assert outcomes[_vid(4)] == "failed:bad_message"


async def test_relation_roundtrip(memory: Memory) -> None:
    first = await memory.update_relation(
        ALICE.peer_id_str,
        "Alice",
        affinity=10,
        visit_count_delta=1,
        completed_delta=1,
        last_visit_ms=5_000,
        summary="Likes tea.",
        now_ms=5_001,
    )
    assert first == Relation(ALICE.peer_id_str, "Alice", 10, 1, 1, 5_000, 5_001, "Likes tea.", "")
    second = await memory.update_relation(
        ALICE.peer_id_str,
        "Alice B.",
        affinity=14,
        visit_count_delta=1,
        completed_delta=0,
        last_visit_ms=4_000,  # a late close of an older visit never moves the time back
        summary=None,
        now_ms=6_000,
    )
    assert (second.partner_name, second.affinity, second.visit_count) == ("Alice B.", 14, 2)
    assert (second.completed_count, second.last_visit_ms) == (1, 5_000)
    assert second.summary == "Likes tea."
    assert await memory.set_notes(ALICE.peer_id_str, "Owner: be kind.", now_ms=7_000)
    assert await memory.set_summary(ALICE.peer_id_str, "Loves tea.", now_ms=7_001)
    assert await memory.relation(ALICE.peer_id_str) == Relation(
        ALICE.peer_id_str, "Alice B.", 14, 2, 1, 5_000, 7_001, "Loves tea.", "Owner: be kind."
    )
    assert not await memory.set_notes(BOB.peer_id_str, "no relation yet", now_ms=1)
    assert await memory.relation(BOB.peer_id_str) is None
    assert Relation.from_json(second.to_json()) == second


async def test_relation_arguments_are_checked(memory: Memory) -> None:
    # affinity out of range; more completed visits than visits (the table's CHECK refuses)
    for affinity, completed in [(101, 0), (-1, 0), (1, 2)]:
        with pytest.raises(MemoryUsageError):
            await memory.update_relation(
                ALICE.peer_id_str,
                "A",
                affinity=affinity,
                visit_count_delta=1,
                completed_delta=completed,
                last_visit_ms=1,
                summary=None,
                now_ms=1,
            )
    assert await memory.relation(ALICE.peer_id_str) is None


async def _befriend(memory: Memory, who: Identity, name: str, affinity: int) -> None:
    await memory.update_relation(
        who.peer_id_str,
        name,
        affinity=affinity,
        visit_count_delta=1,
        completed_delta=1,
        last_visit_ms=1_000,
        summary=f"{name}'s secret hobby",
        now_ms=1_000,
    )
    await memory.set_notes(who.peer_id_str, f"notes on {name}", now_ms=1_001)


async def test_relations_listing_is_sorted_and_isolated(memory: Memory) -> None:
    await _befriend(memory, ALICE, "Alice", 30)
    await _befriend(memory, BOB, "Bob", 70)
    listing = await memory.relations()
    assert [r.partner_name for r in listing] == ["Bob", "Alice"]
    # The listing is for choosing whom to visit: no partner's memories travel with it.
    assert all(type(r) is RelationStats for r in listing)
    assert "hobby" not in json.dumps([r.to_json() for r in listing])
    assert "notes on" not in json.dumps([r.to_json() for r in listing])
    alice = await memory.relation(ALICE.peer_id_str)
    assert alice is not None
    assert "Bob" not in json.dumps(alice.to_json())

    assert await memory.forget_relation(BOB.peer_id_str)
    assert not await memory.forget_relation(BOB.peer_id_str)
    assert [r.partner_name for r in await memory.relations()] == ["Alice"]


async def test_forget_with_visits(memory: Memory) -> None:
    await memory.open_visit(_start(_vid(1), ALICE))
    await memory.open_visit(_start(_vid(2), BOB))
    await _befriend(memory, ALICE, "Alice", 30)
    assert await memory.forget_relation(ALICE.peer_id_str, with_visits=True)
    assert [v.visit_id for v in await memory.visits()] == [_vid(2)]


async def test_delete_visit_cascades(memory: Memory, tmp_path: Path) -> None:
    for n in (1, 2):
        await memory.open_visit(_start(_vid(n)))
        for idx in range(3):
            await memory.add_message(_vid(n), idx, ALICE.peer_id_str, f"turn {idx}", idx)
    assert await memory.delete_visit(_vid(1))
    assert not await memory.delete_visit(_vid(1))
    with sqlite3.connect(tmp_path / "c.db") as conn:
        counts = {
            table: conn.execute(
                f"SELECT visit_id, COUNT(*) FROM {table} GROUP BY visit_id"
            ).fetchall()
            for table in ("conversations", "messages")
        }
    assert counts == {"conversations": [(_vid(2), 1)], "messages": [(_vid(2), 3)]}


# Columns that hold ids, roles, addresses: structured, stored as given. Every other text
# column must have been through the redactor; a new text column fails this test until
# it is listed here or redacted.
STRUCTURED = {
    ("visits", "id"),
    ("visits", "partner_id"),
    ("visits", "role"),
    ("visits", "remote_addr"),
    ("conversations", "visit_id"),
    ("messages", "visit_id"),
    ("messages", "speaker"),
    ("relations", "partner_id"),
}


async def test_redactor_is_applied_to_every_text_column(store: Store, tmp_path: Path) -> None:
    redactor = FakeRedactor()
    memory = Memory(store.db, redactor)
    secret = f"call me at {MARKER}"
    await memory.open_visit(_start(_vid(1), partner_name=secret, first_line=secret))
    await memory.add_message(_vid(1), 0, ALICE.peer_id_str, secret, 1)
    await memory.close_visit(_vid(1), COMPLETED, 2, 1, None, None, summary=secret)
    await memory.open_visit(_start(_vid(2), partner_name=secret, first_line=secret))
    await memory.close_visit(_vid(2), declined(secret), 2, 0, None, None)
    await memory.update_relation(
        ALICE.peer_id_str,
        secret,
        affinity=1,
        visit_count_delta=1,
        completed_delta=0,
        last_visit_ms=1,
        summary=secret,
        now_ms=2,
    )
    await memory.set_notes(ALICE.peer_id_str, secret, now_ms=3)
    assert redactor.calls >= 10

    db = tmp_path / "c.db"
    with sqlite3.connect(db) as conn:
        tables = ("visits", "conversations", "messages", "relations")
        for table in tables:
            for _, column, kind, *_ in conn.execute(f"PRAGMA table_info({table})"):
                if kind != "TEXT" or (table, column) in STRUCTURED:
                    continue
                values = [v for (v,) in conn.execute(f"SELECT {column} FROM {table}")]
                assert any(REDACTED in v for v in values), (table, column, values)
                assert not any(MARKER in v for v in values), (table, column)
    # Redacted before it was handed to SQLite: not in the file, not in the WAL either.
    assert _files_containing(tmp_path, MARKER.encode()) == []


def _files_containing(folder: Path, needle: bytes) -> list[str]:
    return [path.name for path in folder.iterdir() if needle in path.read_bytes()]


async def test_restart_keeps_messages_and_marks_open_visits_interrupted(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    memory = Memory(store.db, FakeRedactor())
    await memory.open_visit(_start(_vid(1), started_ms=1_000))
    await memory.open_visit(_start(_vid(2), BOB, started_ms=2_000))
    await memory.open_visit(_start(_vid(3), started_ms=3_000))
    await memory.close_visit(_vid(3), COMPLETED, 3_500, 0, None, None)
    for idx in range(2):
        await memory.add_message(_vid(1), idx, ALICE.peer_id_str, f"turn {idx}", idx)
    store.close()

    store = Store(tmp_path / "c.db")
    try:
        memory = Memory(store.db, FakeRedactor())
        assert await memory.mark_interrupted(9_000) == [_vid(1), _vid(2)]
        assert await memory.mark_interrupted(9_500) == []
        conversation = await memory.conversation(_vid(1))
        assert conversation is not None
        assert [m.text for m in conversation.messages] == ["turn 0", "turn 1"]
        visit = conversation.visit
        assert (visit.outcome, visit.ended_ms, visit.turns) == (INTERRUPTED, 9_000, 2)
        assert [v.outcome for v in await memory.visits()] == [COMPLETED, INTERRUPTED, INTERRUPTED]
        assert not await memory.close_visit(_vid(1), COMPLETED, 9_900, 2, None, None)
    finally:
        store.close()


WRITER = textwrap.dedent(
    """
    import sys, trio
    from pathlib import Path
    from keys import Identity, InvalidPeerId
    from node.storage.memory import Memory, VisitStart
    from node.storage.store import Store

    async def main() -> None:
        store = Store(Path(sys.argv[1]))
        memory = Memory(store.db, lambda text: text)
        partner = Identity.generate()
        await memory.open_visit(VisitStart(
            "ab" * 16, partner.peer_id_str, "P", "host", None, False, 0, "hi"))
        for idx in range(100_000):
            await memory.add_message("ab" * 16, idx, partner.peer_id_str, f"turn {idx}", idx)
            print(f"acked {idx}", flush=True)
        await trio.sleep_forever()

    trio.run(main)
    """
)


async def test_acknowledged_messages_survive_kill_9(tmp_path: Path) -> None:
    """A writer process is killed mid-stream: every turn it acknowledged is on disk."""
    db = tmp_path / "c.db"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", WRITER, str(db)], stdout=-1, cwd=REPO
    )
    assert process.stdout is not None
    received = b""
    try:
        with trio.fail_after(60):
            while received.count(b"\n") < 50:
                chunk = await process.stdout.receive_some()
                assert chunk, "the writer exited early"
                received += chunk
    finally:
        process.send_signal(signal.SIGKILL)
        with trio.fail_after(10):
            await process.wait()
        await process.stdout.aclose()
    acked = [int(line.split()[1]) for line in received.splitlines() if line.startswith(b"acked")]

    store = Store(db)
    try:
        memory = Memory(store.db, FakeRedactor())
        assert await memory.mark_interrupted(1) == ["ab" * 16]
        conversation = await memory.conversation("ab" * 16)
        assert conversation is not None
        stored = [m.idx for m in conversation.messages]
        assert stored[: len(acked)] == acked == list(range(len(acked)))
        assert await store.integrity_check() == "ok"
    finally:
        store.close()


async def test_a_v2_database_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with sqlite3.connect(db) as conn:
        for number, script in enumerate(MIGRATIONS[:2], start=1):
            conn.executescript(script)
            conn.execute(f"PRAGMA user_version = {number}")
        conn.execute("INSERT INTO meta (key, value) VALUES ('seq_ceiling', 2048)")
        conn.execute("INSERT INTO directory_snapshot (id, data, saved_ms) VALUES (1, x'c0', 5)")
    conn.close()

    store = Store(db)
    try:
        assert store.schema_version == len(MIGRATIONS) == 4
        assert await store.load_directory() == b"\xc0"
        assert await store.next_seq() == 2048
        memory = Memory(store.db, FakeRedactor())
        await memory.open_visit(_start(_vid(1)))
        assert await memory.add_message(_vid(1), 0, ALICE.peer_id_str, "hello", 1)
        assert await store.integrity_check() == "ok"
    finally:
        store.close()


# -- the terminal view ----------------------------------------------------------------

HOSTILE = "Ev\x1b[2Jil\u202e\u200bname\nforged line"


def _visit_row(**over: object) -> VisitRow:
    fields: dict[str, object] = {
        "visit_id": _vid(7),
        "partner": ALICE.peer_id,
        "partner_id": ALICE.peer_id_str,
        "partner_name": "Alice",
        "role": "guest",
        "remote_addr": None,
        "private": False,
        "started_ms": 1_000,
        "ended_ms": 126_000,
        "outcome": COMPLETED,
        "turns": 2,
        "transcript_hash": None,
        "receipt": None,
        "first_line": "Hi!",
    }
    fields.update(over)
    return VisitRow(**fields)  # type: ignore[arg-type]


def _assert_terminal_safe(text: str) -> None:
    assert not any(ch in text for ch in "\x1b\u202e\u200b\r")


def test_visits_table() -> None:
    rows = [_visit_row(), _visit_row(visit_id=_vid(8), partner_name=HOSTILE, first_line=HOSTILE)]
    text = visits_table(rows, tz=UTC)
    lines = text.splitlines()
    assert lines[1].startswith("1970-01-01 00:00:01+00:00 Alice ")
    assert "2m05s" in lines[1] and _vid(7) in lines[1]
    assert len(lines) == 5  # header + (visit line + first line) per visit
    _assert_terminal_safe(text)
    assert visits_table([], tz=UTC).endswith("(no visits yet)")


def test_relations_table() -> None:
    rows = [
        RelationStats(BOB.peer_id_str, HOSTILE, 70, 3, 2, 60_000, 60_000),
        RelationStats(ALICE.peer_id_str, "Alice", 20, 1, 0, None, 1),
    ]
    text = relations_table(rows, tz=UTC)
    lines = text.splitlines()
    assert len(lines) == 3
    assert "1970-01-01 00:01:00+00:00" in lines[1] and lines[1].endswith(BOB.peer_id_str)
    assert lines[2].startswith("Alice ") and " - " in lines[2]
    _assert_terminal_safe(text)
    assert relations_table([]).endswith("(no relations yet)")


def test_conversation_text() -> None:
    conversation = Conversation(
        visit=_visit_row(partner_name="Alice", remote_addr="/ip4/10.0.0.2/tcp/4001"),
        summary="Tea talk.",
        messages=(
            _message(0, ME.peer_id_str, "Hello Alice!"),
            _message(1, ALICE.peer_id_str, "Hi!\nMina: I am Mina now\x1b[0m"),
        ),
    )
    text = conversation_text(conversation, self_name="Mina", tz=UTC)
    _assert_terminal_safe(text)
    lines = text.splitlines()
    assert lines[0].startswith(f"visit {_vid(7)} · guest · with Alice")
    assert "summary: Tea talk." in lines
    said = lines[lines.index("") + 1 :]
    assert said[0].endswith("Mina: Hello Alice!")
    assert said[1].endswith("Alice: Hi!")
    # The partner's second line cannot pass for a line of ours: it stays indented.
    assert said[2].startswith(" " * 10) and "Mina: I am Mina now" in said[2]
    # Local time by default: renders without a tz argument.
    assert "Hello Alice!" in conversation_text(conversation)


def _message(idx: int, speaker: str, text: str) -> MessageRow:
    return MessageRow(idx, speaker, text, 1_000 + idx)


def test_render_reply_reads_what_the_control_socket_sends() -> None:
    """The CLI renders the JSON the node sent: rows come back through from_json."""
    visit = _visit_row(partner_name=HOSTILE)
    stats = RelationStats(ALICE.peer_id_str, "Alice", 20, 1, 0, None, 1)
    conversation = Conversation(visit, "", (_message(0, ALICE.peer_id_str, "Hi!"),))
    replies = {
        "visits": ({"visits": [visit.to_json()]}, visits_table([visit], tz=UTC)),
        "relations": ({"relations": [stats.to_json()]}, relations_table([stats], tz=UTC)),
        "conversation": (
            {"conversation": conversation.to_json(), "self_name": "Mina"},
            conversation_text(conversation, self_name="Mina", tz=UTC),
        ),
    }
    for what, (reply, expected) in replies.items():
        assert render_reply(what, json.loads(json.dumps(reply)), tz=UTC) == expected
    with pytest.raises(MemoryUsageError):
        render_reply("secrets", {})
