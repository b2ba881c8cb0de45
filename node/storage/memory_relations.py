"""The relations half of the character's memory: one row per partner in ``relations``
(columns in :mod:`node.storage.memory`), written after each visit and edited by the owner.

:class:`node.storage.memory.Memory` builds on :class:`RelationMemory`, so the memory is
still one object; this module exists so the relation keeping reads apart from the visit
log. As for the whole memory, every free text (partner names, summaries, owner notes)
passes through the injected ``redact`` function before it is written, and only
:meth:`RelationMemory.relation` returns one partner's summary and notes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from keys import peer_id_from_str
from node.storage.memory_rows import MemoryUsageError, Relation, RelationStats
from node.storage.sqlite_thread import SqliteThread, immediate

_STATS_COLUMNS = (
    "partner_id, partner_name, affinity, visit_count, completed_count, last_visit_ms, updated_ms"
)


class RelationMemory:
    """Async access to the relations table through the node's one database thread."""

    def __init__(self, db: SqliteThread, redact: Callable[[str], str]) -> None:
        self._db = db
        self._redact = redact

    async def relation(self, partner_id: str) -> Relation | None:
        """Everything remembered about one partner, and about no one else."""

        def read(conn: sqlite3.Connection) -> Relation | None:
            row = conn.execute(
                f"SELECT {_STATS_COLUMNS}, summary, notes FROM relations WHERE partner_id = ?",
                (partner_id,),
            ).fetchone()
            return None if row is None else Relation(*row)

        return await self._db.call(read)

    async def relations(self) -> list[RelationStats]:
        """Every partner's standing, highest affinity first (no summaries, no notes)."""

        def read(conn: sqlite3.Connection) -> list[RelationStats]:
            rows = conn.execute(
                f"SELECT {_STATS_COLUMNS} FROM relations "
                "ORDER BY affinity DESC, last_visit_ms DESC, partner_id"
            ).fetchall()
            return [RelationStats(*r) for r in rows]

        return await self._db.call(read)

    async def update_relation(
        self,
        partner_id: str,
        partner_name: str,
        *,
        affinity: int,
        visit_count_delta: int,
        completed_delta: int,
        last_visit_ms: int,
        summary: str | None,
        now_ms: int,
    ) -> Relation:
        """After a visit: set the affinity, count the visit, keep the latest visit time
        and, unless ``summary`` is None, replace the summary. Creates the relation on the
        first visit. Returns the relation as stored."""
        peer_id_from_str(partner_id)
        if not 0 <= affinity <= 100:
            raise MemoryUsageError(f"affinity must be within 0..100, not {affinity}")
        if visit_count_delta < 0 or completed_delta < 0:
            raise MemoryUsageError("visit counts only grow")
        name = self._redact(partner_name)
        clean_summary = None if summary is None else self._redact(summary)

        def write(conn: sqlite3.Connection) -> Relation:
            with immediate(conn):
                try:
                    conn.execute(
                        "INSERT INTO relations (partner_id, partner_name, affinity, visit_count,"
                        " completed_count, last_visit_ms, summary, updated_ms) "
                        "VALUES (:id, :name, :affinity, :visits, :completed, :last,"
                        " COALESCE(:summary, ''), :now) "
                        "ON CONFLICT (partner_id) DO UPDATE SET "
                        "partner_name = :name, affinity = :affinity,"
                        " visit_count = visit_count + :visits,"
                        " completed_count = completed_count + :completed,"
                        " last_visit_ms = MAX(COALESCE(last_visit_ms, :last), :last),"
                        " summary = COALESCE(:summary, summary), updated_ms = :now",
                        {
                            "id": partner_id,
                            "name": name,
                            "affinity": affinity,
                            "visits": visit_count_delta,
                            "completed": completed_delta,
                            "last": last_visit_ms,
                            "summary": clean_summary,
                            "now": now_ms,
                        },
                    )
                except sqlite3.IntegrityError as exc:
                    raise MemoryUsageError(f"relation with {partner_id}: {exc}") from exc
                row = conn.execute(
                    f"SELECT {_STATS_COLUMNS}, summary, notes FROM relations WHERE partner_id = ?",
                    (partner_id,),
                ).fetchone()
                return Relation(*row)

        return await self._db.call(write)

    async def set_notes(self, partner_id: str, notes: str, *, now_ms: int) -> bool:
        """The owner's notes on a partner; False if there is no relation with them yet."""
        return await self._set_text(partner_id, "notes", notes, now_ms)

    async def set_summary(self, partner_id: str, summary: str, *, now_ms: int) -> bool:
        """Replace a partner's memory summary; False if there is no relation with them."""
        return await self._set_text(partner_id, "summary", summary, now_ms)

    async def forget_relation(self, partner_id: str, *, with_visits: bool = False) -> bool:
        """Forget a partner's relation (and, if asked, every visit with them); False if
        there was no relation."""

        def write(conn: sqlite3.Connection) -> bool:
            with immediate(conn):
                if with_visits:
                    conn.execute("DELETE FROM visits WHERE partner_id = ?", (partner_id,))
                return (
                    conn.execute(
                        "DELETE FROM relations WHERE partner_id = ?", (partner_id,)
                    ).rowcount
                    == 1
                )

        return await self._db.call(write)

    # -- helpers ------------------------------------------------------------------

    async def _set_text(self, partner_id: str, column: str, text: str, now_ms: int) -> bool:
        clean = self._redact(text)

        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"UPDATE relations SET {column} = ?, updated_ms = ? WHERE partner_id = ?",
                (clean, now_ms, partner_id),
            )
            return cursor.rowcount == 1

        return await self._db.call(write)
