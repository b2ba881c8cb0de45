"""Souvenir footprints: every lent-tool call, on both sides (table ``souvenir_calls``,
migration 4 of :mod:`node.storage.store`).

Columns::

    visit_id          the visit the call was made in (as the caller named it: a refused
                      call may name a visit we never had)
    caller_id         PeerID text of the character whose engine called
    lender_id         PeerID text of the character whose tool ran (or was refused)
    partner_name      the other side's name, redacted (for "Kai lent Mina his time souvenir")
    tool              the souvenir's name
    arguments_digest  sha256 hex of the arguments' canonical JSON: which call it was,
                      never what it said
    result_bytes      size of the result text (0 when there was none)
    duration_ms       from request to answer
    outcome           ``ok``, ``tool_error`` (the tool ran and reported an error),
                      ``denied`` (the owner said no, or did not answer in time),
                      ``refused:<reason>`` (the capability or the wire refused it),
                      ``failed:<reason>`` (the plugin or the network failed)
    ts_ms             when the call was made

Arguments and results are never stored. At most :data:`KEEP` rows are kept: a stranger's
refused calls cannot fill the disk.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass, fields, replace
from typing import Any, Final

from node.storage.sqlite_thread import SqliteThread, immediate

KEEP: Final = 20_000
OK: Final = "ok"
TOOL_ERROR: Final = "tool_error"
DENIED: Final = "denied"
REFUSED_PREFIX: Final = "refused:"
FAILED_PREFIX: Final = "failed:"


@dataclass(frozen=True, slots=True)
class Footprint:
    visit_id: str
    caller_id: str
    lender_id: str
    partner_name: str
    tool: str
    arguments_digest: str
    result_bytes: int
    duration_ms: int
    outcome: str
    ts_ms: int

    @property
    def lent(self) -> bool:
        """The tool ran (it may still have reported an error)."""
        return self.outcome in (OK, TOOL_ERROR)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Footprint:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


_COLUMNS: Final = ", ".join(f.name for f in fields(Footprint))


def arguments_digest(arguments: Mapping[str, Any]) -> str:
    """sha256 of the arguments as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class Footprints:
    """Async access to ``souvenir_calls`` through the node's database thread."""

    def __init__(self, db: SqliteThread, redact: Callable[[str], str]) -> None:
        self._db = db
        self._redact = redact

    async def record(self, footprint: Footprint) -> None:
        row = astuple(replace(footprint, partner_name=self._redact(footprint.partner_name)))

        def write(conn: sqlite3.Connection) -> None:
            with immediate(conn):
                conn.execute(
                    f"INSERT INTO souvenir_calls ({_COLUMNS}) VALUES ({', '.join('?' * len(row))})",
                    row,
                )
                conn.execute(
                    "DELETE FROM souvenir_calls WHERE id <= "
                    "(SELECT max(id) FROM souvenir_calls) - ?",
                    (KEEP,),
                )

        await self._db.call(write)

    async def for_visit(self, visit_id: str) -> list[Footprint]:
        """The calls made in one visit, oldest first."""
        return await self._select("WHERE visit_id = ? ORDER BY id", (visit_id,))

    async def for_visits(self, visit_ids: list[str]) -> dict[str, list[Footprint]]:
        """The calls of several visits (the memory view's page of visits)."""
        if not visit_ids:
            return {}
        marks = ", ".join("?" * len(visit_ids))
        rows = await self._select(f"WHERE visit_id IN ({marks}) ORDER BY id", tuple(visit_ids))
        found: dict[str, list[Footprint]] = {}
        for row in rows:
            found.setdefault(row.visit_id, []).append(row)
        return found

    async def recent(self, limit: int = 50) -> list[Footprint]:
        """The newest calls, newest first."""
        return await self._select("ORDER BY id DESC LIMIT ?", (limit,))

    async def _select(self, clause: str, params: tuple[Any, ...]) -> list[Footprint]:
        def read(conn: sqlite3.Connection) -> list[Footprint]:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM souvenir_calls {clause}", params)
            return [Footprint(*row) for row in rows.fetchall()]

        return await self._db.call(read)
