"""Souvenirs on the owner's dashboard, over real HTTP with real plugins from PyPI:

- the official MCP client (mcp 2.3, streamable HTTP) lists and calls Kai's lent
  ``mcp-server-time`` at ``/mcp`` on the dashboard's port, with the dashboard token, and
  is refused without it;
- ``mcp-server-git`` on a repository the test makes: Mina's call to the write tool Kai
  lends with ``ask`` waits, is listed with its arguments in
  ``/api/souvenirs/approvals``, and runs only when the owner approves it there; a denied
  call and one left to expire never run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import trio
from mcp import Client, MCPError, types
from mcp.client.streamable_http import streamable_http_client

from node.dashboard.routes.souvenirs import footprint_text
from node.souvenirs.wire import Refusal, ToolAnswer
from node.storage.footprints import Footprint
from tests.support.plugin_servers import needs_sandbox
from tests.support.souvenir_sides import (
    TIME,
    VISIT,
    Borrower,
    Lender,
    borrow,
    branches,
    git_lent,
    kai_lends,
    writable_repo,
)
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.timeout(240)
WAIT_S = 30.0
KAI, MINA = "12D3KooWKai", "12D3KooWMina"


def test_footprints_read_as_sentences() -> None:
    def row(lender: str, caller: str, outcome: str) -> Footprint:
        return Footprint(
            VISIT, caller, lender, "Mina", "get_current_time", "0" * 64, 9, 3, outcome, 1
        )

    assert footprint_text(row(KAI, MINA, "ok"), KAI, "Kai") == (
        "Kai lent Mina the get_current_time souvenir"
    )
    assert footprint_text(row(MINA, KAI, "ok"), KAI, "Kai") == (
        "Mina lent Kai the get_current_time souvenir"
    )
    assert footprint_text(row(KAI, MINA, "denied"), KAI, "Kai") == (
        "Mina asked for Kai's get_current_time souvenir: not approved"
    )
    assert footprint_text(row(KAI, MINA, "refused:quota_visit"), KAI, "Kai").endswith(
        "refused (quota_visit)"
    )


@asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


@needs_sandbox
async def test_the_official_mcp_client_lists_and_calls_the_lent_tools(tmp_path: Path) -> None:
    async with kai_lends(tmp_path, (TIME,)) as (kai, _):
        url = f"{kai.base}/mcp"
        for headers in (kai.auth, {"Authorization": f"Bearer {kai.token}"}):
            async with mcp_client(url, headers) as client:
                listed = await client.list_tools()
                assert [tool.name for tool in listed.tools] == ["get_current_time"]
                (tool,) = listed.tools
                assert "timezone" in tool.input_schema["properties"]
                assert tool.annotations is not None and tool.annotations.read_only_hint
                result = await client.call_tool("get_current_time", {"timezone": "Asia/Tokyo"})
                assert not result.is_error
                (content,) = result.content
                assert isinstance(content, types.TextContent)
                now = json.loads(content.text)
                assert now["timezone"] == "Asia/Tokyo" and now["datetime"].startswith("20")
                # Only what is lent: the server's other tool is not reachable.
                with pytest.raises(MCPError, match="not lent"):
                    await client.call_tool("convert_time", {})
        assert '"souvenir_owner_call"' in kai.events.getvalue()

        # Without the token (or with a wrong one, a foreign Host or Origin) nothing is served.
        ask = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        accept = {"Accept": "application/json, text/event-stream"}
        async with httpx.AsyncClient(base_url=kai.base, timeout=10) as http:
            refusals = {
                "no token": ({}, 401),
                "wrong token": ({"X-Roomverse-Token": "nope"}, 403),
                "wrong bearer": ({"Authorization": "Bearer nope"}, 403),
                "foreign host": ({**kai.auth, "Host": "evil.example"}, 403),
                "foreign origin": ({**kai.auth, "Origin": "http://evil.example"}, 403),
            }
            for name, (headers, status) in refusals.items():
                reply = await http.post("/mcp", json=ask, headers={**accept, **headers})
                assert reply.status_code == status, (name, reply.text)
            # The token in the query string, as the page uses, is not taken here.
            reply = await http.post("/mcp", json=ask, params={"token": kai.token}, headers=accept)
            assert reply.status_code == 401
            # The token as a header: served, not 421 (the SDK's Host guard knows our port).
            reply = await http.post("/mcp", json=ask, headers={**accept, **kai.auth})
            assert reply.status_code != 421, reply.text
        # The official client without the token gets no further than its handshake.
        with pytest.raises(ExceptionGroup) as refused_client:
            async with mcp_client(url, {}) as client:
                await client.list_tools()
        assert refused_client.group_contains(MCPError, depth=None)

        # The dashboard's own API sits beside it on the same port, as before.
        async with httpx.AsyncClient(base_url=kai.base, headers=kai.auth, timeout=10) as http:
            lent = (await http.get("/api/souvenirs")).json()
        assert [(t["name"], t["read_only"], t["ask"]) for t in lent["lent"]] == [
            ("get_current_time", True, False)
        ]
        assert lent["plugins"][0]["state"] == "running"


async def pending_call(http: httpx.AsyncClient, tool: str) -> dict[str, Any]:
    """Wait until a call to ``tool`` is waiting for the owner; the page's view of it."""
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        reply = await http.get("/api/souvenirs/approvals")
        found[:] = [call for call in reply.json()["pending"] if call["tool"] == tool]
        return bool(found)

    await wait_until_async(listed, WAIT_S, f"a call to {tool} waiting for approval")
    return found[0]


async def ask_for_branch(
    mina: Borrower, kai: Lender, repo: Path, branch: str, answers: list[Any]
) -> None:
    arguments = {"repo_path": str(repo), "branch_name": branch}
    answers.append(await borrow(mina, kai, "git_create_branch", arguments))


@needs_sandbox
async def test_a_write_tool_lent_with_ask_runs_only_when_the_owner_approves(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "kai"
    repo = await writable_repo(tmp_path, data_dir)
    async with (
        kai_lends(tmp_path, (git_lent(repo),), data_dir=data_dir) as (kai, mina),
        httpx.AsyncClient(base_url=kai.base, headers=kai.auth, timeout=10) as http,
    ):
        lent = (await http.get("/api/souvenirs")).json()
        modes = {t["name"]: (t["read_only"], t["ask"]) for t in lent["lent"]}
        assert modes == {
            "git_status": (True, False),
            "git_log": (True, False),
            "git_create_branch": (False, True),
        }
        kai.service.approvals.timeout_s = 20.0

        # Approved: it waits, the owner sees its arguments, approves, and it runs.
        answers: list[Any] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_for_branch, mina, kai, repo, "approved-branch", answers)
            call = await pending_call(http, "git_create_branch")
            assert call["arguments"] == {"repo_path": str(repo), "branch_name": "approved-branch"}
            assert call["caller"] == mina.node.identity.peer_id_str and call["visit"] == VISIT
            assert "approved-branch" not in await branches(repo)  # nothing ran yet
            bad = await http.post(f"/api/souvenirs/approvals/{call['id']}", json={"approve": 1})
            assert bad.status_code == 400
            reply = await http.post(
                f"/api/souvenirs/approvals/{call['id']}", json={"approve": True}
            )
            assert reply.status_code == 200 and reply.json()["approved"] is True
        (answer,) = answers
        assert isinstance(answer, ToolAnswer) and not answer.is_error, answer
        assert "approved-branch" in await branches(repo)
        # Answered once: a second click finds nothing waiting.
        again = await http.post(f"/api/souvenirs/approvals/{call['id']}", json={"approve": False})
        assert again.status_code == 404

        # Denied: the partner is told so and nothing runs.
        answers.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_for_branch, mina, kai, repo, "denied-branch", answers)
            call = await pending_call(http, "git_create_branch")
            reply = await http.post(
                f"/api/souvenirs/approvals/{call['id']}", json={"approve": False}
            )
            assert reply.status_code == 200 and reply.json()["approved"] is False
        assert isinstance(answers[0], Refusal) and answers[0].reason == "denied"

        # Left alone: denied when the owner's time is up, and a late click is a 404.
        kai.service.approvals.timeout_s = 1.0
        answers.clear()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_for_branch, mina, kai, repo, "expired-branch", answers)
            call = await pending_call(http, "git_create_branch")
        assert isinstance(answers[0], Refusal) and answers[0].reason == "denied"
        late = await http.post(f"/api/souvenirs/approvals/{call['id']}", json={"approve": True})
        assert late.status_code == 404
        assert (await http.get("/api/souvenirs/approvals")).json() == {"pending": []}
        assert set(await branches(repo)) - {"master", "main"} == {"approved-branch"}

        # The footprints say what happened, newest first.
        reply = await http.get("/api/souvenirs/footprints", params={"limit": 10})
        texts = [f["text"] for f in reply.json()["footprints"]]
        assert texts[0].endswith("git_create_branch souvenir: not approved")
        assert texts[1].endswith("git_create_branch souvenir: not approved")
        assert texts[2].startswith("Kai lent ") and texts[2].endswith(
            " the git_create_branch souvenir"
        )
        assert all(f["ours"] for f in reply.json()["footprints"])
        # Input checks.
        for path, body, status in (
            ("/api/souvenirs/approvals/NOPE", {"approve": True}, 400),
            ("/api/souvenirs/approvals/abc", {"approve": True, "x": 1}, 400),
            ("/api/souvenirs/approvals/abc", {"approve": True}, 404),
        ):
            assert (await http.post(path, json=body)).status_code == status, path
        assert (await http.get("/api/souvenirs/footprints?limit=0")).status_code == 400
        bare = await http.get("/api/souvenirs", headers={"X-Roomverse-Token": ""})
        assert bare.status_code == 401
