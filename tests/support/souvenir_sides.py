"""Two characters run in this process over real libp2p on loopback, for the souvenir
dashboard tests: Kai lends real MCP servers from PyPI (sandboxed) and serves his
dashboard (with ``/mcp``); Mina is connected to him and calls his souvenirs the way her
visit would, through her own :class:`~node.souvenirs.service.SouvenirService`, inside a
visit Kai has opened for her (the lending capability; no engine is needed)."""

from __future__ import annotations

import io
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from node.character import CharacterNode
from node.config.settings import SouvenirSettings
from node.dashboard import serve_dashboard
from node.events import EventLog
from node.process import NodeOptions, run_node
from node.souvenirs.sandbox import plugin_uid
from node.souvenirs.service import SouvenirService
from node.souvenirs.wire import CALL, ToolRequest
from tests.support.dashboard import engineless, split_url
from tests.support.plugin_servers import SAFE_DIRECTORY_ENV, make_repo
from tests.support.waiting import wait_until_async

VISIT = "cd" * 16
START_S = 60.0
"""The node up, the sandboxed plugin started and listed, the peers connected."""

TIME = SouvenirSettings(
    name="time",
    command=("mcp-server-time", "--local-timezone", "Asia/Tokyo"),
    tools=(("get_current_time", "lend"),),
)


def git_lent(repo: Path) -> SouvenirSettings:
    """``mcp-server-git`` on ``repo``: two read-only tools lent, ``git_create_branch``
    (a write tool) lent with ``ask``; the repository bound writable."""
    return SouvenirSettings(
        name="git",
        command=("mcp-server-git", "--repository", str(repo)),
        tools=(("git_status", "lend"), ("git_log", "lend"), ("git_create_branch", "ask")),
        env=SAFE_DIRECTORY_ENV,
        writable_paths=(str(repo),),
    )


async def writable_repo(tmp_path: Path, data_dir: Path) -> Path:
    """A repository the git plugin of the character at ``data_dir`` may write to."""
    repo = make_repo(tmp_path)
    uid = plugin_uid(data_dir, "git")
    await trio.run_process(["chown", "-R", f"{uid}:{uid}", str(repo)])
    return repo


async def branches(repo: Path) -> list[str]:
    done = await trio.run_process(
        ["git", "-c", "safe.directory=*", "-C", str(repo), "branch", "--format=%(refname:short)"],
        capture_stdout=True,
    )
    return done.stdout.decode().split()


@dataclass
class Lender:
    node: CharacterNode
    base: str
    token: str
    events: io.StringIO

    @property
    def service(self) -> SouvenirService:
        assert self.node.agent is not None
        return self.node.agent.souvenirs

    @property
    def auth(self) -> dict[str, str]:
        return {"X-Roomverse-Token": self.token}


@dataclass
class Borrower:
    node: CharacterNode

    @property
    def service(self) -> SouvenirService:
        assert self.node.agent is not None
        return self.node.agent.souvenirs


_REQUEST_IDS = itertools.count(1)


async def borrow(borrower: Borrower, lender: Lender, tool: str, arguments: dict[str, Any]) -> Any:
    """Mina calls Kai's ``tool`` in :data:`VISIT`; the wire's answer (or refusal)."""
    request = ToolRequest(next(_REQUEST_IDS), CALL, tool, arguments)
    return await borrower.service.exchange(lender.node.identity.peer_id_str, VISIT, request)


@asynccontextmanager
async def kai_lends(
    tmp_path: Path, souvenirs: tuple[SouvenirSettings, ...], *, data_dir: Path | None = None
) -> AsyncIterator[tuple[Lender, Borrower]]:
    """Kai (lending ``souvenirs``, dashboard on 127.0.0.1) and Mina, connected, with
    Kai's lent tools up; Kai has opened :data:`VISIT` to Mina for the block."""
    events = io.StringIO()
    log = EventLog("json", stream=events)
    async with trio.open_nursery() as nursery:
        kai: CharacterNode = await nursery.start(
            run_node,
            engineless("Kai", data_dir or tmp_path / "kai", souvenirs),
            log,
            NodeOptions(greet=False),
        )
        mina: CharacterNode = await nursery.start(
            run_node,
            engineless("Mina", tmp_path / "mina"),
            EventLog("json", stream=io.StringIO()),
            NodeOptions(greet=False),
        )

        async def dashboard(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            await serve_dashboard(
                kai, "127.0.0.1:0", allow_public=False, events=log, task_status=task_status
            )

        base, token = split_url(await nursery.start(dashboard))
        lender, borrower = Lender(kai, base, token, events), Borrower(mina)
        kai_id = kai.identity.peer_id_str
        await mina.host.dial(f"{kai.host.listen_addrs()[0]}/p2p/{kai_id}")

        def lent() -> bool:
            plugins = lender.service.lender
            return plugins is not None and len(plugins.lent()) > 0

        await wait_until_async(lent, START_S, "Kai's souvenirs lent")
        async with lender.service.visit(VISIT, mina.identity.peer_id_str, "Mina", private=True):
            yield lender, borrower
        await mina.host.disconnect(kai_id)
        nursery.cancel_scope.cancel()


__all__ = [
    "TIME",
    "VISIT",
    "Borrower",
    "Lender",
    "borrow",
    "branches",
    "git_lent",
    "kai_lends",
    "writable_repo",
]
