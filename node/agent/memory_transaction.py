"""The one write transaction every memory write runs in (the visit log in
:mod:`node.agent.memory` and the relations in :mod:`node.agent.memory_relations`)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; taken IMMEDIATE so it never fails half-way on a lock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
