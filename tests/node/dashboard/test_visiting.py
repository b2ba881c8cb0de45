"""The owner ends a visit from the dashboard, over real HTTP: Bo visits Mina (who runs
``roomverse node --dashboard``), Mina's status lists the visit, and ``POST
/api/visits/<id>/end`` ends it politely while her engine is still writing — both nodes
say it ended at the owner's word, and a second try is told it is over."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from node.testing.fake_openai import FakeReply
from tests.support.dashboard import TOKEN_HEADER, dashboard_url_of, split_url
from tests.support.visit_party import Member, in_thread, open_party
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.timeout(300)
WAIT_S = 30.0


async def visit_ended(member: Member, visit: str) -> dict[str, Any]:
    def ended(event: dict[str, Any]) -> bool:
        return event.get("event") == "visit_ended" and event.get("visit") == visit

    return await in_thread(member.node.wait_for, ended, WAIT_S, f"visit_ended on {member.name}")


async def test_the_owner_ends_a_visit_from_the_dashboard(tmp_path: Path) -> None:
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina", node_args=["--dashboard", "127.0.0.1:0"])
        bo = await party.add("Bo")
        await party.everyone_online()
        base, token = split_url(await in_thread(dashboard_url_of, mina.node))
        mina.fake.script(FakeReply("Mina says welcome."), FakeReply("never said", delay_s=60))
        async with (
            httpx.AsyncClient(base_url=base, headers={TOKEN_HEADER: token}) as client,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(functools.partial(party.visit, "Bo", "Mina", turns=8))
            await mina.fake.wait_for_requests(2, timeout=WAIT_S)  # writing turn 3

            async def listed() -> list[dict[str, Any]]:
                status: dict[str, Any] = (await client.get("/api/status")).json()
                return list(status["visiting"])

            await wait_until_async(listed, WAIT_S, "the visit in Mina's status")
            (now,) = await listed()
            assert (now["role"], now["partner_name"], now["ending"]) == ("host", "Bo", False)
            visit = now["visit"]

            # A browser from another site cannot end it; the owner's page can.
            foreign = await client.post(
                f"/api/visits/{visit}/end", json={}, headers={"Origin": "http://evil.example"}
            )
            assert foreign.status_code == 403
            reply = await client.post(f"/api/visits/{visit}/end", json={}, headers={"Origin": base})
            assert reply.status_code == 200, reply.text
            (ending,) = reply.json()["visits"]
            assert (ending["visit"], ending["ending"]) == (visit, True)

            theirs, ours = await visit_ended(mina, visit), await visit_ended(bo, visit)
            assert (theirs["reason"], theirs["ended_by"], theirs["turns"]) == ("owner", "me", 3)
            assert (ours["reason"], ours["ended_by"]) == ("owner", "partner")
            assert await listed() == []
            again = await client.post(f"/api/visits/{visit}/end", json={})
            assert again.status_code == 404
            assert "already over (completed)" in again.json()["error"]
