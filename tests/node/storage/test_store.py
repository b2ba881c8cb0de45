"""The character database: schema version, sequence counter, batched receipts, and the
write transaction every write runs in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from keys import TOPIC_ACTIONS, Identity, seal, verify
from node.storage.sqlite_thread import SqliteThread, immediate
from node.storage.store import MIGRATIONS, SEQ_BLOCK, ReplayMark, Store


async def test_a_failed_write_is_rolled_back_and_the_next_write_works(tmp_path: Path) -> None:
    db = SqliteThread(tmp_path / "t.db")
    try:
        await db.call(lambda conn: conn.execute("CREATE TABLE t (x INTEGER UNIQUE)"))

        def insert(conn: sqlite3.Connection, *values: int) -> list[int]:
            with immediate(conn):
                for value in values:
                    conn.execute("INSERT INTO t VALUES (?)", (value,))
            return [row[0] for row in conn.execute("SELECT x FROM t ORDER BY x")]

        with pytest.raises(sqlite3.IntegrityError):
            await db.call(lambda conn: insert(conn, 1, 1))
        # Nothing of the failed write is kept, and the connection is not left inside it.
        assert await db.call(lambda conn: conn.in_transaction) is False
        assert await db.call(lambda conn: insert(conn, 2)) == [2]
    finally:
        db.close()


async def test_schema_is_versioned_and_wal(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    try:
        assert store.schema_version == len(MIGRATIONS)
        assert await store.integrity_check() == "ok"
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sequence_never_goes_backwards_across_reopen(tmp_path: Path) -> None:
    seen: list[int] = []
    for _ in range(3):
        store = Store(tmp_path / "c.db")
        try:
            seen += [await store.next_seq() for _ in range(5)]
        finally:
            store.close()  # like a crash: the rest of the reserved block is skipped
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert seen[5] == SEQ_BLOCK and seen[10] == 2 * SEQ_BLOCK


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "c.db") as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    try:
        Store(tmp_path / "c.db")
    except sqlite3.DatabaseError as exc:
        assert "newer" in str(exc)
    else:
        raise AssertionError("a newer schema must not be opened")


async def test_received_batch_is_stored_once_with_replay_marks(tmp_path: Path) -> None:
    sender = Identity.generate()
    envelopes = [
        verify(
            seal(
                sender,
                kind="action",
                channel=TOPIC_ACTIONS,
                seq=seq,
                ts_ms=1_000,
                body={"type": "speak", "text": f"t{seq}"},
            ),
            channel=TOPIC_ACTIONS,
            now_ms=1_000,
        )
        for seq in range(3)
    ]
    store = Store(tmp_path / "c.db")
    try:
        mark = ReplayMark(sender.peer_id, 2, 0b111)
        ids = await store.record_received(envelopes, [mark], 2_000)
        known = [i for i in ids if i is not None]
        assert known == ids and known == sorted(known) and len(set(known)) == 3
        assert await store.record_received(envelopes[:1], [mark], 2_000) == [None]
        stored = await store.envelopes(direction="in")
        assert sorted(e.seq for e in stored) == [0, 1, 2]
        assert stored[0].body["type"] == "speak"
        assert await store.load_replay_marks() == [mark]
    finally:
        store.close()
