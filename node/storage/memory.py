"""The character's memory: visits, their conversations and messages, and one relation
per partner, in the node's SQLite database (tables of migration 3 in :mod:`node.storage.store`).

Tables::

    visits         one row per visit, keyed by the 32-hex visit id the visitor chose;
                   partner (PeerID bytes) and partner_id (its text form), partner_name,
                   role ('host' | 'guest'), remote_addr, private, started_ms, ended_ms,
                   outcome, turns, transcript_hash, receipt (the receipt envelope bytes),
                   first_line
    conversations  exactly one per visit, keyed by the visit id (so no id of its own):
                   started_ms and the engine's summary of that one visit; it exists so a
                   visit's log (visits) and what was said (conversations + messages) are
                   separate, as the design names them
    messages       (visit_id, idx) → speaker PeerID text, text, ts_ms; idx is the 0-based
                   turn index and grows by one with no gaps
    relations      partner_id → partner_name, affinity 0..100, visit_count,
                   completed_count, last_visit_ms, summary (the engine's, at farewell),
                   notes (the owner's), updated_ms (any write)

Deleting a visit removes its conversation and messages (ON DELETE CASCADE). Relations
are not tied to visits: forgetting a relation keeps the visit log unless asked.

Outcome of a visit: ``open`` while it runs, then ``completed``, ``declined:<reason>``,
``ended_by_partner``, ``partner_vanished``, ``left_message`` (the answering machine) or
``interrupted`` (still open when the node restarted, see :meth:`Memory.mark_interrupted`).

Every free text that enters the database — message text, first line, partner names,
summaries, owner notes, a decline reason — passes through the injected ``redact``
function first, so PII never reaches the disk. Ids, roles, addresses and hashes are
structured and stored as given.

Memory isolation is a property of this API, not a convention: the only call that returns
a partner's summary or notes is :meth:`Memory.relation`, for exactly one partner id.
:meth:`Memory.relations` lists every partner for choosing whom to visit or for the owner's
table, and returns :class:`RelationStats`, which has no summary and no notes; so no call
can put several partners' memories into one prompt.

The visit log (visits, conversations, messages) is written here; the relations are kept
by :mod:`node.storage.memory_relations`, which :class:`Memory` builds on, so callers still
hold one object.

Durability: each write is one SQLite transaction on the node's connection (WAL,
``synchronous=NORMAL``): once a call returns, the row survives the process being killed
(``kill -9``); a power cut may lose the last transactions, as for the rest of the store.
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, fields
from typing import Any

from keys import peer_id_from_str
from node.storage.memory_relations import RelationMemory
from node.storage.memory_rows import (
    COMPLETED,
    DECLINED_PREFIX,
    ENDED_BY_PARTNER,
    FAILED_PREFIX,
    FINAL_OUTCOMES,
    INTERRUPTED,
    LEFT_MESSAGE,
    OPEN,
    PARTNER_VANISHED,
    ROLES,
    VISIT_ID,
    Conversation,
    MemoryUsageError,
    MessageRow,
    Relation,
    RelationStats,
    Role,
    UnknownVisit,
    VisitIdTaken,
    VisitRow,
    VisitStart,
    declined,
)
from node.storage.sqlite_thread import immediate

_VISIT_COLUMNS = (
    "id, partner, partner_id, partner_name, role, remote_addr, private, started_ms, "
    "ended_ms, outcome, turns, transcript_hash, receipt, first_line"
)


class Memory(RelationMemory):
    """Async access to the memory tables through the node's one database thread: the
    visit log here, the relations from :class:`RelationMemory`."""

    # -- visits -------------------------------------------------------------------

    async def open_visit(self, start: VisitStart) -> VisitRow:
        """Log a visit that begins now (outcome ``open``), with its empty conversation.

        Raises :class:`VisitIdTaken` if the id is already in memory, and
        :class:`keys.InvalidPeerId` if ``partner_id`` is not a PeerID.
        """
        _check_visit_id(start.visit_id)
        if start.role not in ROLES:
            raise MemoryUsageError(f"role must be one of {ROLES}, not {start.role!r}")
        row = VisitRow(
            visit_id=start.visit_id,
            partner=peer_id_from_str(start.partner_id),
            partner_id=start.partner_id,
            partner_name=self._redact(start.partner_name),
            role=start.role,
            remote_addr=start.remote_addr,
            private=bool(start.private),
            started_ms=start.started_ms,
            ended_ms=None,
            outcome=OPEN,
            turns=0,
            transcript_hash=None,
            receipt=None,
            first_line=self._redact(start.first_line),
        )

        def write(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                if _visit_state(conn, row.visit_id) is not None:
                    raise VisitIdTaken(f"visit {row.visit_id} is already in memory")
                conn.execute(
                    f"INSERT INTO visits ({_VISIT_COLUMNS}) "
                    f"VALUES ({', '.join('?' * len(fields(row)))})",
                    astuple(row),  # the fields are in column order (bool stored as 0/1)
                )
                conn.execute(
                    "INSERT INTO conversations (visit_id, started_ms) VALUES (?, ?)",
                    (row.visit_id, row.started_ms),
                )

        await self._db.call(write)
        return row

    async def add_message(
        self, visit_id: str, idx: int, speaker: str, text: str, ts_ms: int
    ) -> bool:
        """Store turn ``idx`` of an open visit; committed when this returns, so a turn may
        be acknowledged after it.

        Returns False, changing nothing, if turn ``idx`` is already stored (a retry: the
        first text wins). Turns are stored in order: ``idx`` must be the next index.
        """
        peer_id_from_str(speaker)
        clean = self._redact(text)

        def write(conn: sqlite3.Connection) -> bool:
            with immediate(conn):
                outcome = _visit_state(conn, visit_id)
                if outcome is None:
                    raise UnknownVisit(f"no visit {visit_id} in memory")
                stored = conn.execute(
                    "SELECT 1 FROM messages WHERE visit_id = ? AND idx = ?", (visit_id, idx)
                ).fetchone()
                if stored is not None:
                    return False
                if outcome != OPEN:
                    raise MemoryUsageError(f"visit {visit_id} is closed ({outcome})")
                expected = conn.execute(
                    "SELECT COALESCE(MAX(idx) + 1, 0) FROM messages WHERE visit_id = ?",
                    (visit_id,),
                ).fetchone()[0]
                if idx != expected:
                    raise MemoryUsageError(f"visit {visit_id}: turn {idx} before {expected}")
                conn.execute(
                    "INSERT INTO messages (visit_id, idx, speaker, text, ts_ms) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (visit_id, idx, speaker, clean, ts_ms),
                )
                return True

        return await self._db.call(write)

    async def close_visit(
        self,
        visit_id: str,
        outcome: str,
        ended_ms: int,
        turns: int,
        transcript_hash: bytes | None,
        receipt: bytes | None,
        *,
        summary: str | None = None,
    ) -> bool:
        """Record how an open visit ended (and, if given, the engine's summary of it).

        Returns False, changing nothing, if the visit was already closed: the first close
        wins (a visit marked interrupted at start-up stays so).
        """
        final = self._final_outcome(outcome)
        if turns < 0:
            raise MemoryUsageError("turns cannot be negative")
        clean_summary = None if summary is None else self._redact(summary)

        def write(conn: sqlite3.Connection) -> bool:
            with immediate(conn):
                state = _visit_state(conn, visit_id)
                if state is None:
                    raise UnknownVisit(f"no visit {visit_id} in memory")
                if state != OPEN:
                    return False
                conn.execute(
                    "UPDATE visits SET outcome = ?, ended_ms = ?, turns = ?, "
                    "transcript_hash = ?, receipt = ? WHERE id = ?",
                    (final, ended_ms, turns, transcript_hash, receipt, visit_id),
                )
                if clean_summary is not None:
                    conn.execute(
                        "UPDATE conversations SET summary = ? WHERE visit_id = ?",
                        (clean_summary, visit_id),
                    )
                return True

        return await self._db.call(write)

    async def mark_interrupted(self, now_ms: int) -> list[str]:
        """At start-up: visits still open were cut by the restart; close them as
        ``interrupted`` (turns = messages stored) and return their ids, oldest first."""

        def write(conn: sqlite3.Connection) -> list[str]:
            with immediate(conn):
                ids = [
                    str(r[0])
                    for r in conn.execute(
                        "SELECT id FROM visits WHERE outcome = ? ORDER BY started_ms, id",
                        (OPEN,),
                    )
                ]
                conn.execute(
                    "UPDATE visits SET outcome = ?, ended_ms = ?, "
                    "turns = (SELECT COUNT(*) FROM messages WHERE visit_id = visits.id) "
                    "WHERE outcome = ?",
                    (INTERRUPTED, now_ms, OPEN),
                )
                return ids

        return await self._db.call(write)

    async def visits(self, limit: int = 50, partner_id: str | None = None) -> list[VisitRow]:
        """The latest visits first, optionally only those with one partner."""
        if limit < 1:
            raise MemoryUsageError("limit must be at least 1")

        def read(conn: sqlite3.Connection) -> list[VisitRow]:
            where, args = (
                ("", ()) if partner_id is None else ("WHERE partner_id = ?", (partner_id,))
            )
            rows = conn.execute(
                f"SELECT {_VISIT_COLUMNS} FROM visits {where} ORDER BY started_ms DESC, id LIMIT ?",
                (*args, limit),
            ).fetchall()
            return [_visit_row(r) for r in rows]

        return await self._db.call(read)

    async def conversation(self, visit_id: str) -> Conversation | None:
        def read(conn: sqlite3.Connection) -> Conversation | None:
            row = conn.execute(
                f"SELECT {_VISIT_COLUMNS} FROM visits WHERE id = ?", (visit_id,)
            ).fetchone()
            if row is None:
                return None
            summary = conn.execute(
                "SELECT summary FROM conversations WHERE visit_id = ?", (visit_id,)
            ).fetchone()
            messages = conn.execute(
                "SELECT idx, speaker, text, ts_ms FROM messages WHERE visit_id = ? ORDER BY idx",
                (visit_id,),
            ).fetchall()
            return Conversation(
                visit=_visit_row(row),
                summary="" if summary is None else str(summary[0]),
                messages=tuple(MessageRow(*m) for m in messages),
            )

        return await self._db.call(read)

    async def delete_visit(self, visit_id: str) -> bool:
        """Forget one visit with its conversation and messages; False if it was unknown."""

        def write(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM visits WHERE id = ?", (visit_id,)).rowcount == 1

        return await self._db.call(write)

    # -- helpers ------------------------------------------------------------------

    def _final_outcome(self, outcome: str) -> str:
        if outcome in FINAL_OUTCOMES:
            return outcome
        for prefix in (DECLINED_PREFIX, FAILED_PREFIX):
            if outcome.startswith(prefix):
                return prefix + self._redact(outcome[len(prefix) :])
        raise MemoryUsageError(f"not an outcome a visit can end with: {outcome!r}")


def _check_visit_id(visit_id: str) -> None:
    if not isinstance(visit_id, str) or VISIT_ID.fullmatch(visit_id) is None:
        raise MemoryUsageError("a visit id is 32 lowercase hex characters")


def _visit_state(conn: sqlite3.Connection, visit_id: str) -> str | None:
    row = conn.execute("SELECT outcome FROM visits WHERE id = ?", (visit_id,)).fetchone()
    return None if row is None else str(row[0])


def _visit_row(row: tuple[Any, ...]) -> VisitRow:
    (vid, partner, pid, name, role, addr, private, started, ended, outcome, turns, th, rc, fl) = row
    return VisitRow(
        visit_id=vid,
        partner=bytes(partner),
        partner_id=pid,
        partner_name=name,
        role=role,
        remote_addr=addr,
        private=bool(private),
        started_ms=started,
        ended_ms=ended,
        outcome=outcome,
        turns=turns,
        transcript_hash=None if th is None else bytes(th),
        receipt=None if rc is None else bytes(rc),
        first_line=fl,
    )


__all__ = [
    "COMPLETED",
    "DECLINED_PREFIX",
    "ENDED_BY_PARTNER",
    "FAILED_PREFIX",
    "FINAL_OUTCOMES",
    "INTERRUPTED",
    "LEFT_MESSAGE",
    "OPEN",
    "PARTNER_VANISHED",
    "ROLES",
    "VISIT_ID",
    "Conversation",
    "Memory",
    "MemoryUsageError",
    "MessageRow",
    "Relation",
    "RelationStats",
    "Role",
    "UnknownVisit",
    "VisitIdTaken",
    "VisitRow",
    "VisitStart",
    "declined",
]
