"""What the plugin and sandbox tests share: the servers they run, a git repository to
lend, and an event log that remembers what it was told (with trio's clock)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from node.events import EventLog
from node.souvenirs import sandbox_problem

SUPPORT = Path(__file__).resolve().parent
HOSTILE = SUPPORT / "hostile_plugin.py"
LEGACY = SUPPORT / "plugin_legacy_server.py"
PYTHON = sys.executable

needs_sandbox = pytest.mark.skipif(
    sandbox_problem() is not None,
    reason=f"the plugin sandbox is unavailable here: {sandbox_problem()} (CI runs as root)",
)

SAFE_DIRECTORY_ENV = (
    ("GIT_CONFIG_COUNT", "1"),
    ("GIT_CONFIG_KEY_0", "safe.directory"),
    ("GIT_CONFIG_VALUE_0", "*"),
)
"""The repository belongs to the test's uid, not the plugin's: git refuses such a
repository unless told it is safe (the owner's plugin config says so, in ``env``)."""


def open_up(path: Path) -> None:
    """pytest makes tmp dirs 0700; the plugin's uid must be able to walk into them
    (inside the sandbox the mount points above are made 0755)."""
    path.chmod(0o755)


def make_repo(where: Path) -> Path:
    """A git repository with one commit and one untracked file, readable by anyone."""
    repo = where / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=Test", "-c", "user.email=test@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "README").write_text("hello\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first commit"], check=True)
    (repo / "notes.txt").write_text("untracked\n")
    open_up(where)
    for root, dirs, files in os.walk(repo):
        for name in [*dirs, *files]:
            os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
    open_up(repo)
    return repo


class Recorded:
    """An :class:`EventLog` writing nowhere, and the (trio time, event, fields) it saw."""

    def __init__(self) -> None:
        self.log = EventLog("json", io.StringIO())
        self.seen: list[tuple[float, str, dict[str, Any]]] = []
        self.log.subscribe(
            lambda event, fields: self.seen.append((trio.current_time(), event, fields))
        )

    def named(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        return [(at, fields) for at, name, fields in self.seen if name == event]
