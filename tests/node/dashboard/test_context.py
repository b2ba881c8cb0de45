"""``POST /context`` on the owner's dashboard, over real HTTP (MRTalk's input endpoint):
refused without the token or with a wrong one (nothing published), a text context makes
the character act, an image is noticed by its caption only (its bytes never reach the
engine), and bad bodies are told why."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from node.testing.fake_openai import ChatRequest, FakeReply
from tests.support.dashboard import TOKEN_HEADER, dashboard_url_of, split_url
from tests.support.visit_party import Member, in_thread, open_party

pytestmark = pytest.mark.timeout(300)
WAIT_S = 30.0
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
REACTIONS = {"pause_min_s": 0.05, "pause_max_s": 0.1}


def reacts(request: ChatRequest) -> FakeReply:
    if "Choose ONE thing" in request.messages[0].content:
        return FakeReply("say: Rain! I will put the kettle on.")
    return FakeReply("Mina says something.")


async def reaction_to(member: Member, seq: int) -> dict[str, Any]:
    def found(event: dict[str, Any]) -> bool:
        stimulus = event.get("stimulus") or {}
        return event.get("event") in ("reaction", "reaction_skipped") and stimulus.get("seq") == seq

    return await in_thread(member.node.wait_for, found, WAIT_S, "a reaction")


async def test_a_context_posted_with_the_token_makes_the_character_act(tmp_path: Path) -> None:
    async with open_party(tmp_path) as party:
        mina = await party.add(
            "Mina", node_args=["--dashboard", "127.0.0.1:0"], extra={"reactions": REACTIONS}
        )
        mina.fake.responder = reacts
        bo = await party.add("Bo")
        await party.everyone_online()
        base, token = split_url(await in_thread(dashboard_url_of, mina.node))
        text = {"type": "text", "context": "It started to rain."}
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.post("/context", json=text)).status_code == 401
            wrong = await client.post("/context", json=text, headers={TOKEN_HEADER: "x" * 43})
            assert wrong.status_code == 403
            assert [e for e in mina.node.of("action_sent") if e["kind"] == "context"] == []

            client.headers[TOKEN_HEADER] = token
            answer = await client.post("/context", json=text)
            assert answer.status_code == 200, answer.text
            reaction = await reaction_to(mina, answer.json()["seq"])
            assert (reaction["event"], reaction["action"]) == ("reaction", "say")
            assert reaction["stimulus"]["owner"] is True

            data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
            image = {"type": "image", "context": data_url, "alt": "a cat on a wall", "to": "*"}
            answer = await client.post("/context", json=image)
            assert answer.status_code == 200, answer.text
            await reaction_to(mina, answer.json()["seq"])
            prompt = mina.fake.requests[-1].messages[1].content.splitlines()[0]
            assert prompt == "(Your owner shows you an image. Its caption:) a cat on a wall"
            assert all("iVBOR" not in m.content for r in mina.fake.requests for m in r.messages)
            sniffed = {"type": "image", "context": base64.b64encode(PNG).decode()}
            assert (await client.post("/context", json=sniffed)).status_code == 200

            for bad in (
                {"type": "video", "context": "x"},
                {"type": "text", "context": ""},
                {"type": "text", "context": "hi", "alt": "no"},
                {"type": "image", "context": "not base64!"},
                {"type": "image", "context": base64.b64encode(b"GIF?").decode()},
                {"type": "text", "context": "hi", "colour": "red"},
                {"type": "text", "context": "hi", "to": ""},
            ):
                refused = await client.post("/context", json=bad)
                assert refused.status_code == 400, (bad, refused.text)
                assert refused.json()["error"]

        def got_context(event: dict[str, Any]) -> bool:
            body = event.get("body") or {}
            return event.get("event") == "action_received" and body.get("text") == text["context"]

        await in_thread(bo.node.wait_for, got_context, WAIT_S, "Mina's context")
