"""The data directory, the database, and the clock against the peers it remembers.

With no node running, the database is opened through :class:`~node.storage.store.Store`
(the way the node opens it). With a node running, the doctor never opens it for writing:
``integrity_check`` runs on a read-only connection, and the clock reading is the running
node's own (its ``status``), measured from what its peers send right now.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from node.cli.doctor.key_file import own_peer_id
from node.cli.doctor.report import Check, fail, ok, skip
from node.cli.doctor.target import Target
from node.process import DB_FILE
from node.storage.store import Store
from node.wire.clock_skew import OK, UNKNOWN, SkewEstimator
from registry_crdt import CorruptSnapshot, Directory, Status

NTP_FIX = "turn on network time (timedatectl set-ntp true), here or on the odd peer"
DB_FIX = "stop the node, move {db} aside and start it again (it starts a fresh memory)"


def data_dir_check(target: Target) -> Check:
    data_dir = target.data_dir
    if not data_dir.exists():
        return skip("data dir", f"{data_dir} does not exist yet: the node creates it")
    try:
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".doctor-"):
            pass
    except OSError as exc:
        return fail(
            "data dir",
            f"{data_dir} is not writable ({exc.strerror})",
            f'make it yours: chown -R "$USER" {data_dir} && chmod 700 {data_dir}',
        )
    return ok("data dir", f"{data_dir} is writable")


async def database_checks(target: Target) -> list[Check]:
    """``database`` (``PRAGMA integrity_check``) and ``clock skew``."""
    path = target.data_dir / DB_FILE
    if target.running is not None:
        return [_read_only_integrity(path), _running_skew(target.running)]
    if not path.exists():
        return [
            skip("database", "no database yet: the node creates it at its first start"),
            skip("clock skew", "no directory remembered yet"),
        ]
    try:
        store = Store(path)
    except sqlite3.DatabaseError as exc:
        return [_bad_db(path, str(exc)), skip("clock skew", "the database is unreadable")]
    try:
        verdict = await store.integrity_check()
        if verdict != "ok":
            return [_bad_db(path, verdict), skip("clock skew", "the database is damaged")]
        checks = [ok("database", f"{path}: integrity_check ok")]
        checks.append(await _snapshot_skew(store, target))
    except sqlite3.DatabaseError as exc:
        return [_bad_db(path, str(exc)), skip("clock skew", "the database is unreadable")]
    finally:
        store.close()
    return checks


def _read_only_integrity(path: Path) -> Check:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return _bad_db(path, str(exc))
    if verdict != "ok":
        return _bad_db(path, verdict)
    return ok("database", f"{path}: integrity_check ok (read-only: the node is running)")


def _bad_db(path: Path, verdict: str) -> Check:
    first = verdict.splitlines()[0] if verdict else "unreadable"
    return fail("database", f"{path}: {first}", DB_FIX.format(db=path))


async def _snapshot_skew(store: Store, target: Target) -> Check:
    """Our clock against the peers in the last directory snapshot, at the moment it was
    saved: a live peer renews its entry every heartbeat (15 s), so a fresh entry's clock
    is the peer's time minus at most that. The median across peers (the node's own
    :class:`SkewEstimator`) keeps one wrong peer from deciding."""
    data = await store.load_directory()
    saved_ms = await store.directory_saved_ms()
    if data is None or saved_ms is None:
        return skip("clock skew", "no directory remembered yet (no peer seen)")
    try:
        directory = Directory.restore(data, saved_ms)
    except CorruptSnapshot as exc:
        return skip("clock skew", f"the directory snapshot is unreadable ({exc})")
    own = own_peer_id(target.data_dir)
    estimator = SkewEstimator()
    for entry in directory.entries():
        live = entry.status is not Status.LEFT and entry.expires_ms > saved_ms
        if entry.peer != own and entry.vouch is None and live:
            estimator.observe(entry.peer, (saved_ms - entry.clock.wall_ms) / 1000, 0.0)
    reading = estimator.reading(0.0)
    if reading.state == UNKNOWN:
        return skip("clock skew", "no peer was online when the directory was last saved")
    return _skew_check(reading.state, f"{reading.message()} (when the node last ran)")


def _running_skew(status: dict[str, Any]) -> Check:
    clock = status.get("clock")
    if not status.get("ok") or not isinstance(clock, dict):
        return skip("clock skew", f"the running node did not answer ({status.get('error')})")
    state = str(clock.get("state"))
    if state == UNKNOWN:
        return skip("clock skew", "the running node has heard from no peer yet")
    return _skew_check(state, str(clock.get("message")))


def _skew_check(state: str, message: str) -> Check:
    if state == OK:
        return ok("clock skew", message)
    return fail("clock skew", message, NTP_FIX)


__all__ = ["data_dir_check", "database_checks"]
