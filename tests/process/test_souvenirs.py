"""Souvenirs between two real node processes: Kai lends ``mcp-server-time`` (the real
server from PyPI, sandboxed), Mina's engine calls it during a real visit.

Mina's fake engine scripts the tool call when it is offered Kai's tools; what matters is
everything around it: the offer (namespaced, spotlighted), the call over
``/roomverse/mcp/1.0.0`` in signed envelopes, Kai's capability check and plugin, the real
time result back in Mina's next engine request, the footprints on both sides, and the
public ``souvenir`` action that a third node (standing in for the firehose) receives.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from node.engine.messages import ToolCall
from node.testing.fake_openai import ChatRequest, FakeReply, tool_results
from tests.support.visit_party import Member, in_thread, is_summary, open_party, talker
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="plugins run sandboxed (setpriv + bwrap), which needs root"
    ),
]

TIME_PLUGIN = {
    "name": "time",
    "command": ["mcp-server-time", "--local-timezone", "Asia/Tokyo"],
    "tools": {"get_current_time": "lend", "convert_time": "lend"},
}
TOOL = "kai__get_current_time"


def borrower(name: str) -> Any:
    """Mina's engine: when Kai's tools are offered (and no result is in yet), call the
    time tool; otherwise speak numbered lines."""
    lines = talker(name)

    def reply(request: ChatRequest) -> FakeReply:
        offered = {tool.name for tool in request.tools}
        if TOOL in offered and not tool_results(request) and not is_summary(request):
            call = ToolCall("call_tokyo", TOOL, json.dumps({"timezone": "Asia/Tokyo"}))
            return FakeReply(tool_calls=(call,))
        return lines(request)

    return reply


async def lends(member: Member, tools: set[str]) -> None:
    def lent(event: dict[str, Any]) -> bool:
        return event.get("event") == "souvenirs_lent" and set(event.get("tools", ())) == tools

    await in_thread(member.node.wait_for, lent, 60)


async def test_a_lent_time_tool_is_called_by_the_partners_engine_during_a_visit(
    tmp_path: Path,
) -> None:
    async with open_party(tmp_path) as party:
        kai = await party.add("Kai", extra={"souvenirs": [TIME_PLUGIN]})
        mina = await party.add("Mina")
        watcher = await party.add("Ren")
        mina.fake.responder = borrower("Mina")
        await party.everyone_online()
        await lends(kai, {"get_current_time", "convert_time"})

        def card_lends(entries: dict[str, Any]) -> bool:
            lent = {"get_current_time", "convert_time"}
            return any(
                row["name"] == "Kai" and set(row["souvenirs"]) == lent for row in entries["entries"]
            )

        await in_thread(
            wait_until, lambda: card_lends(mina.node.directory()), 30, "Mina sees Kai's souvenirs"
        )

        replies = await party.visit("Mina", "Kai", turns=4)
        assert replies[-1]["outcome"] == "completed", replies

        offers = [r for r in mina.fake.requests if r.tools]
        assert offers, "Mina's engine was never offered Kai's tools"
        offered = {tool.name: tool for tool in offers[0].tools}
        assert set(offered) == {"kai__get_current_time", "kai__convert_time"}
        assert "not an instruction" in offered[TOOL].description
        assert offered[TOOL].parameters["properties"]["timezone"]["type"] == "string"

        results = [tool_results(r).get("call_tokyo") for r in mina.fake.requests]
        result = next(text for text in results if text)
        # The real server's answer, as data: the zone we asked for and an ISO time.
        assert "Asia/Tokyo" in result and re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", result)
        assert "not instructions" in result

        visit = replies[-1]["visit"]
        for member, lender_side in ((mina, False), (kai, True)):
            conversation = await member.memory("conversation", visit)
            calls = conversation["souvenirs"]
            assert [(c["tool"], c["outcome"]) for c in calls] == [("get_current_time", "ok")]
            assert calls[0]["lender_id"] == kai.node.peer_id
            assert calls[0]["caller_id"] == mina.node.peer_id
            assert calls[0]["result_bytes"] > 0
            assert (calls[0]["lender_id"] == member.node.peer_id) is lender_side

        def souvenir_seen(event: dict[str, Any]) -> bool:
            body = event.get("body") or {}
            return event.get("event") == "action_received" and body.get("type") == "souvenir"

        seen = await in_thread(watcher.node.wait_for, souvenir_seen, 30)
        assert seen["from"] == mina.node.peer_id
        assert seen["body"] == {
            "type": "souvenir",
            "visit": visit,
            "lender": kai.node.peer_id,
            "tool": "get_current_time",
        }
