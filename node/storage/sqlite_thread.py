"""One SQLite connection on one dedicated thread, awaited from trio.

aiosqlite cannot run under trio (it hands back asyncio futures), so the node owns a
plain :mod:`sqlite3` connection on a thread of its own. Jobs are callables that receive
the connection; they run one at a time, in order. A job that has been submitted always
completes even if the awaiting task is cancelled: a write is either done and
acknowledged, or not started.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import trio

T = TypeVar("T")

_STOP = object()


class SqliteThread:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"sqlite:{path.name}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException as exc:
            self._open_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    return
                fn, deliver = job
                try:
                    result: tuple[bool, Any] = (True, fn(conn))
                except BaseException as exc:
                    result = (False, exc)
                deliver(result)
        finally:
            conn.close()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the database thread and return its result."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        box: list[tuple[bool, Any]] = []

        def deliver(result: tuple[bool, Any]) -> None:
            box.append(result)
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        self._jobs.put((fn, deliver))
        with trio.CancelScope(shield=True):
            await done.wait()
        ok, value = box[0]
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def call_blocking(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Synchronous variant for code outside trio (start-up, CLI)."""
        done = threading.Event()
        box: list[tuple[bool, Any]] = []

        def deliver(result: tuple[bool, Any]) -> None:
            box.append(result)
            done.set()

        self._jobs.put((fn, deliver))
        done.wait()
        ok, value = box[0]
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def close(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(_STOP)
            self._thread.join(timeout=10)


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction; taken IMMEDIATE so it never fails half-way on a lock, and
    rolled back if the job fails, so the connection is never left inside it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
