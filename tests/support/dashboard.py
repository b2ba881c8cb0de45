"""The owner's dashboard from outside: its printed URL, its token header, a node run in
the test's own process with its dashboard served (to look inside the node while it
serves), and a party where Bo has visited Mina (who runs a dashboard), for the HTTP and
the browser tests."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from node.character import CharacterNode
from node.config import AutonomySettings, CharacterConfig, EngineSettings, NetworkSettings
from node.config.settings import SouvenirSettings
from node.dashboard import serve_dashboard
from node.events import EventLog
from node.process import NodeOptions, run_node
from tests.support.procs import NodeProcess
from tests.support.visit_party import Member, Party, open_party

TOKEN_HEADER = "X-Roomverse-Token"
READY_S = 30.0
"""From ``ready`` to ``dashboard_ready`` (the server binds after the node is up)."""


def split_url(url: str) -> tuple[str, str]:
    """``http://127.0.0.1:PORT/?token=T`` → (``http://127.0.0.1:PORT``, ``T``)."""
    base, _, token = url.partition("/?token=")
    assert base.startswith("http://127.0.0.1:") and token, url
    return base, token


def artifacts_dir(tmp_path: Path) -> Path:
    """Where the dashboard's screenshots go: ``$ROOMVERSE_TEST_ARTIFACTS/dashboard`` (CI
    keeps it), else under the test's ``tmp_path``."""
    root = os.environ.get("ROOMVERSE_TEST_ARTIFACTS")
    path = Path(root) / "dashboard" if root else tmp_path / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def dashboard_url_of(node: NodeProcess, timeout: float = READY_S) -> str:
    """The URL (with its token) that ``roomverse node --dashboard`` printed."""
    event = node.wait_for(lambda e: e.get("event") == "dashboard_ready", timeout, "dashboard")
    return str(event["url"])


@dataclass
class Served:
    node: CharacterNode
    base: str
    token: str
    events: io.StringIO

    @property
    def auth(self) -> dict[str, str]:
        return {TOKEN_HEADER: self.token}


def engineless(
    name: str, data_dir: Path, souvenirs: tuple[SouvenirSettings, ...] = ()
) -> CharacterConfig:
    """A character on loopback whose one engine never answers (the discard port refuses at
    once): memory, status and lending need none."""
    return CharacterConfig(
        name=name,
        engines=(
            EngineSettings(
                name="none",
                preset="openai-compatible",
                base_url="http://127.0.0.1:9/v1",
                model="none",
            ),
        ),
        autonomy=AutonomySettings(enabled=False),
        network=NetworkSettings(listen=("/ip4/127.0.0.1/tcp/0",), bootstrap=(), mdns=False),
        data_dir=data_dir,
        souvenirs=souvenirs,
    )


@asynccontextmanager
async def dashboard_in_process(tmp_path: Path) -> AsyncIterator[Served]:
    """Mina (engineless) run by :func:`run_node` in this process, her dashboard served."""
    out = io.StringIO()
    events = EventLog("json", stream=out)
    async with trio.open_nursery() as nursery:
        config = engineless("Mina", tmp_path / "mina")
        node: CharacterNode = await nursery.start(
            run_node, config, events, NodeOptions(greet=False)
        )

        async def dashboard(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            await serve_dashboard(
                node, "127.0.0.1:0", allow_public=False, events=events, task_status=task_status
            )

        url: str = await nursery.start(dashboard)
        base, token = split_url(url)
        yield Served(node, base, token, out)
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def visited_party(
    tmp_path: Path, *, bo_token: str = ""
) -> AsyncIterator[tuple[Party, Member, Member]]:
    """Mina (with a dashboard) and Bo; Bo has visited Mina, so she has a relation with Bo,
    a visit and its conversation in memory. ``bo_token`` ends every line Bo says."""
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina", node_args=["--dashboard", "127.0.0.1:0"])
        bo = await party.add("Bo", token=bo_token)
        await party.everyone_online()
        replies = await party.visit("Bo", "Mina", turns=2)
        assert replies[-1]["outcome"] == "completed", replies
        await mina.relation_updates(1)
        yield party, mina, bo


__all__ = [
    "TOKEN_HEADER",
    "Served",
    "artifacts_dir",
    "dashboard_in_process",
    "dashboard_url_of",
    "engineless",
    "split_url",
    "visited_party",
]
