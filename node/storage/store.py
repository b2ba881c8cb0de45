"""The character's SQLite database: sequence counter, replay marks, received actions,
the last directory snapshot; the agent's memory tables live here too (migration 3) and
are read and written by :mod:`node.storage.memory` through :attr:`Store.db`, as are the
souvenir footprints (migration 4, :mod:`node.storage.footprints`).

Schema changes go through :data:`MIGRATIONS` (``PRAGMA user_version`` is the version).
Only :class:`keys.Verified` envelopes are ever stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from keys import Verified
from node.storage.sqlite_thread import SqliteThread, immediate

SEQ_BLOCK = 1024
"""Sequence numbers are reserved on disk a block at a time: a restart skips the unused
rest of the block, so the counter never goes backwards and costs one write per block."""

MIGRATIONS: tuple[str, ...] = (
    # 1: the node network
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    CREATE TABLE replay_marks (
        sender BLOB PRIMARY KEY,
        hwm INTEGER NOT NULL,
        mask BLOB NOT NULL
    );
    CREATE TABLE envelopes (
        id INTEGER PRIMARY KEY,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        sender BLOB NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        body BLOB NOT NULL,
        raw BLOB NOT NULL,
        stored_ms INTEGER NOT NULL,
        UNIQUE (sender, seq)
    );
    CREATE INDEX envelopes_by_kind ON envelopes (kind, id);
    """,
    # 2: the directory (registry_crdt snapshot, replaced whole on every save)
    """
    CREATE TABLE directory_snapshot (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        data BLOB NOT NULL,
        saved_ms INTEGER NOT NULL
    );
    """,
    # 3: the agent's memory (node/storage/memory.py explains every table and column)
    """
    CREATE TABLE visits (
        id TEXT PRIMARY KEY CHECK (length(id) = 32),
        partner BLOB NOT NULL,
        partner_id TEXT NOT NULL,
        partner_name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('host', 'guest')),
        remote_addr TEXT,
        private INTEGER NOT NULL CHECK (private IN (0, 1)),
        started_ms INTEGER NOT NULL,
        ended_ms INTEGER,
        outcome TEXT NOT NULL DEFAULT 'open',
        turns INTEGER NOT NULL DEFAULT 0 CHECK (turns >= 0),
        transcript_hash BLOB,
        receipt BLOB,
        first_line TEXT NOT NULL
    );
    CREATE INDEX visits_by_partner ON visits (partner_id, started_ms);
    CREATE INDEX visits_by_start ON visits (started_ms);
    CREATE TABLE conversations (
        visit_id TEXT PRIMARY KEY REFERENCES visits (id) ON DELETE CASCADE,
        started_ms INTEGER NOT NULL,
        summary TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE messages (
        visit_id TEXT NOT NULL REFERENCES conversations (visit_id) ON DELETE CASCADE,
        idx INTEGER NOT NULL CHECK (idx >= 0),
        speaker TEXT NOT NULL,
        text TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        PRIMARY KEY (visit_id, idx)
    ) WITHOUT ROWID;
    CREATE TABLE relations (
        partner_id TEXT PRIMARY KEY,
        partner_name TEXT NOT NULL,
        affinity INTEGER NOT NULL CHECK (affinity BETWEEN 0 AND 100),
        visit_count INTEGER NOT NULL CHECK (visit_count >= 0),
        completed_count INTEGER NOT NULL
            CHECK (completed_count >= 0 AND completed_count <= visit_count),
        last_visit_ms INTEGER,
        summary TEXT NOT NULL DEFAULT '',
        notes TEXT NOT NULL DEFAULT '',
        updated_ms INTEGER NOT NULL
    );
    """,
    # 4: souvenir footprints (node/storage/footprints.py explains the columns)
    """
    CREATE TABLE souvenir_calls (
        id INTEGER PRIMARY KEY,
        visit_id TEXT NOT NULL,
        caller_id TEXT NOT NULL,
        lender_id TEXT NOT NULL,
        partner_name TEXT NOT NULL,
        tool TEXT NOT NULL,
        arguments_digest TEXT NOT NULL,
        result_bytes INTEGER NOT NULL CHECK (result_bytes >= 0),
        duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
        outcome TEXT NOT NULL,
        ts_ms INTEGER NOT NULL
    );
    CREATE INDEX souvenir_calls_by_visit ON souvenir_calls (visit_id, id);
    """,
)


@dataclass(frozen=True, slots=True)
class ReplayMark:
    sender: bytes
    hwm: int
    mask: int


@dataclass(frozen=True, slots=True)
class HeldEnvelope:
    """One public envelope we hold (sent or received), as catch-up offers it."""

    sender: bytes
    seq: int
    channel: str
    raw: bytes
    stored_ms: int


@dataclass(frozen=True, slots=True)
class StoredEnvelope:
    id: int
    direction: str
    sender: bytes
    seq: int
    kind: str
    channel: str
    ts_ms: int
    body: dict[str, Any]


def _migrate(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise sqlite3.DatabaseError(
            f"database schema v{version} is newer than this RoomVerse (v{len(MIGRATIONS)})"
        )
    for number in range(version, len(MIGRATIONS)):
        with immediate(conn):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
    return len(MIGRATIONS)


def _mask_bytes(mask: int) -> bytes:
    return mask.to_bytes((mask.bit_length() + 7) // 8 or 1, "big")


class Store:
    """Async facade over the database thread; one instance per running node."""

    def __init__(self, path: Path) -> None:
        self._db = SqliteThread(path)
        try:
            self.schema_version = self._db.call_blocking(_migrate)
        except BaseException:
            self._db.close()
            raise
        self._next_seq = 0
        self._seq_ceiling = 0

    @property
    def db(self) -> SqliteThread:
        """The database thread, for modules that own their own tables (the agent's memory)."""
        return self._db

    def close(self) -> None:
        self._db.close()

    # -- sequence counter ---------------------------------------------------------

    async def next_seq(self) -> int:
        """The next outgoing sequence number; strictly increasing across restarts."""
        if self._next_seq >= self._seq_ceiling:
            start, ceiling = await self._db.call(_reserve_seq_block)
            self._next_seq = max(self._next_seq, start)
            self._seq_ceiling = ceiling
        seq = self._next_seq
        self._next_seq += 1
        return seq

    # -- replay marks -------------------------------------------------------------

    async def load_replay_marks(self) -> list[ReplayMark]:
        def load(conn: sqlite3.Connection) -> list[ReplayMark]:
            rows = conn.execute("SELECT sender, hwm, mask FROM replay_marks").fetchall()
            return [ReplayMark(bytes(s), h, int.from_bytes(m, "big")) for s, h, m in rows]

        return await self._db.call(load)

    # -- envelopes ----------------------------------------------------------------

    async def record_received(
        self, envelopes: Sequence[Verified], marks: Sequence[ReplayMark], now_ms: int
    ) -> list[int | None]:
        """Store a batch of received envelopes and the replay marks that cover them, in
        one transaction. Returns, per envelope, its row id (a cursor that only grows),
        or None for a duplicate."""

        def write(conn: sqlite3.Connection) -> list[int | None]:
            with immediate(conn):
                fresh = [_insert(conn, "in", env, now_ms) for env in envelopes]
                conn.executemany(
                    "INSERT INTO replay_marks (sender, hwm, mask) VALUES (?, ?, ?) "
                    "ON CONFLICT (sender) DO UPDATE SET hwm = excluded.hwm, mask = excluded.mask",
                    [(m.sender, m.hwm, _mask_bytes(m.mask)) for m in marks],
                )
            return fresh

        return await self._db.call(write)

    async def record_sent(self, envelope: Verified, now_ms: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            _insert(conn, "out", envelope, now_ms)

        await self._db.call(write)

    async def envelopes(
        self, *, direction: str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[StoredEnvelope]:
        def read(conn: sqlite3.Connection) -> list[StoredEnvelope]:
            where, args = [], []
            if direction is not None:
                where.append("direction = ?")
                args.append(direction)
            if kind is not None:
                where.append("kind = ?")
                args.append(kind)
            clause = f"WHERE {' AND '.join(where)}" if where else ""
            rows = conn.execute(
                "SELECT id, direction, sender, seq, kind, channel, ts_ms, body FROM envelopes "
                f"{clause} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
            return [
                StoredEnvelope(i, d, bytes(s), q, k, c, t, msgpack.unpackb(b, raw=False))
                for i, d, s, q, k, c, t, b in rows
            ]

        return await self._db.call(read)

    async def received_since(
        self, cursor: int, *, kinds: Sequence[str], limit: int
    ) -> list[tuple[int, bytes, str]]:
        """Received envelopes of ``kinds`` with row id ≥ ``cursor``, oldest first:
        ``(id, raw, channel)`` — the firehose's backfill when a viewer resumes."""
        marks = ",".join("?" * len(kinds))

        def read(conn: sqlite3.Connection) -> list[tuple[int, bytes, str]]:
            rows = conn.execute(
                f"SELECT id, raw, channel FROM envelopes WHERE id >= ? AND direction = 'in' "
                f"AND kind IN ({marks}) ORDER BY id LIMIT ?",
                (cursor, *kinds, limit),
            ).fetchall()
            return [(int(i), bytes(raw), str(channel)) for i, raw, channel in rows]

        return await self._db.call(read)

    async def newest_held(self, *, kinds: Sequence[str], limit: int) -> list[HeldEnvelope]:
        """The newest ``limit`` envelopes of ``kinds`` we hold, sent or received, newest
        first (catch-up's candidates: :mod:`node.catch_up`)."""

        def read(conn: sqlite3.Connection) -> list[HeldEnvelope]:
            rows = [
                row
                for kind in kinds  # one index walk per kind, newest first, never a sort
                for row in conn.execute(
                    "SELECT id, sender, seq, channel, raw, stored_ms FROM envelopes "
                    "WHERE kind = ? ORDER BY id DESC LIMIT ?",
                    (kind, limit),
                )
            ]
            rows.sort(key=lambda row: -int(row[0]))
            return [
                HeldEnvelope(bytes(s), int(q), str(c), bytes(r), int(t))
                for _, s, q, c, r, t in rows[:limit]
            ]

        return await self._db.call(read)

    async def envelope_id_range(self) -> tuple[int, int]:
        """The lowest and highest envelope row ids held ((0, 0) when empty)."""

        def read(conn: sqlite3.Connection) -> tuple[int, int]:
            low, high = conn.execute("SELECT MIN(id), MAX(id) FROM envelopes").fetchone()
            return (int(low or 0), int(high or 0))

        return await self._db.call(read)

    async def prune_envelopes(self, keep: int) -> int:
        """Delete all but the newest ``keep`` envelopes; return how many went. Row ids
        are never reused (the newest row always stays), so cursors stay monotonic."""

        def write(conn: sqlite3.Connection) -> int:
            (high,) = conn.execute("SELECT MAX(id) FROM envelopes").fetchone()
            if high is None:
                return 0
            return conn.execute("DELETE FROM envelopes WHERE id <= ?", (high - keep,)).rowcount

        return await self._db.call(write)

    # -- small settings (meta) ------------------------------------------------------

    async def get_meta(self, key: str) -> int | None:
        def read(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else int(row[0])

        return await self._db.call(read)

    async def set_meta(self, key: str, value: int, **more: int) -> None:
        """Set ``key`` (and any ``more`` keys) in one transaction."""
        rows = [(key, value), *more.items()]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                rows,
            )

        await self._db.call(write)

    # -- directory ----------------------------------------------------------------

    async def save_directory(self, snapshot: bytes, now_ms: int) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO directory_snapshot (id, data, saved_ms) VALUES (1, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data, saved_ms = excluded.saved_ms",
                (snapshot, now_ms),
            )

        await self._db.call(write)

    async def load_directory(self) -> bytes | None:
        def read(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT data FROM directory_snapshot WHERE id = 1").fetchone()
            return None if row is None else bytes(row[0])

        return await self._db.call(read)

    async def directory_saved_ms(self) -> int | None:
        """When the snapshot was last saved (ms on this node's clock); None if never."""

        def read(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT saved_ms FROM directory_snapshot WHERE id = 1").fetchone()
            return None if row is None else int(row[0])

        return await self._db.call(read)

    async def integrity_check(self) -> str:
        def check(conn: sqlite3.Connection) -> str:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

        return await self._db.call(check)


def _insert(conn: sqlite3.Connection, direction: str, env: Verified, now_ms: int) -> int | None:
    cursor = conn.execute(
        "INSERT OR IGNORE INTO envelopes "
        "(direction, sender, seq, kind, channel, ts_ms, body, raw, stored_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            direction,
            env.sender,
            env.seq,
            env.kind,
            env.channel,
            env.ts_ms,
            msgpack.packb(dict(env.body), use_bin_type=True),
            env.raw,
            now_ms,
        ),
    )
    return cursor.lastrowid if cursor.rowcount == 1 else None


def _reserve_seq_block(conn: sqlite3.Connection) -> tuple[int, int]:
    with immediate(conn):
        row = conn.execute("SELECT value FROM meta WHERE key = 'seq_ceiling'").fetchone()
        start = int(row[0]) if row else 0
        ceiling = start + SEQ_BLOCK
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('seq_ceiling', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (ceiling,),
        )
    return start, ceiling
