"""The owner's dashboard from outside: its printed URL, its token header, and a party
where Bo has visited Mina (who runs a dashboard), for the HTTP and the browser tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

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


__all__ = ["TOKEN_HEADER", "artifacts_dir", "dashboard_url_of", "split_url", "visited_party"]
