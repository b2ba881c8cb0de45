"""A legacy participant visits a libp2p character through a running bridge: a real
visit, the host deciding at its door, its memory keeping the participant by its vouched
id, the bridge's lines published for the firehose, and farewell with receipts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.bridge_process import BridgeProcess
from tests.support.legacy_participant import legacy_participant
from tests.support.visit_party import Member, in_thread, open_party
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(300)


@asynccontextmanager
async def bridge_beside(member: Member, tmp_path: Path) -> AsyncIterator[BridgeProcess]:
    bridge = BridgeProcess(
        tmp_path / "bridge",
        bootstrap=member.node.addrs[:1],
        extra=["--allow-private-urls", "--trust-proxy"],
    )
    try:
        await in_thread(bridge.wait_ready)

        def lists_host() -> bool:
            rows = bridge.get("/directory").json()["online"]
            return any(row["id"] == member.node.peer_id for row in rows)

        await in_thread(wait_until, lists_host, 30, f"{member.name} listed by the bridge")
        yield bridge
    finally:
        await in_thread(bridge.stop)


async def test_a_legacy_participant_visits_a_character_through_the_bridge(
    tmp_path: Path,
) -> None:
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina", extra={"visits": {"max_turns": 6}})
        async with bridge_beside(mina, tmp_path) as bridge:
            with legacy_participant() as url:
                visitor = {"name": "Zundamon", "url": url}
                path = f"/characters/{mina.node.peer_id}"
                first: dict[str, Any] = (
                    await in_thread(
                        bridge.post,
                        f"{path}/visit",
                        {"visitor": visitor, "message": "こんにちは、ずんだもんなのだ！"},
                        **{"X-Forwarded-For": "203.0.113.5"},
                    )
                ).json()
                assert first["host"] == {"id": mina.node.peer_id, "name": "Mina"}, first
                assert (first["reply"], first["done"]) == ("Mina says line 1.", False)
                replies = [first["reply"]]
                said = ["こんにちは、ずんだもんなのだ！"]
                for n in range(2):
                    said.append(f"Zundamon's line {n + 2}")
                    answer = (
                        await in_thread(
                            bridge.post,
                            f"{path}/chat",
                            {
                                "conversation_id": first["conversation_id"],
                                "message": said[-1],
                                "partner": "Zundamon",
                            },
                        )
                    ).json()
                    replies.append(answer["reply"])
                assert replies == ["Mina says line 1.", "Mina says line 2.", "Mina says line 3."]
                assert answer["done"] is True and answer["outcome"] == "completed", answer
                legacy_id = bridge.get("/directory?q=Zundamon").json()["online"][0]["id"]

        await mina.relation_updates(1)
        (visit,) = (await mina.memory("visits"))["visits"]
        assert (visit["partner_id"], visit["partner_name"]) == (legacy_id, "Zundamon")
        assert visit["outcome"] == "completed" and visit["receipt"], visit
        conversation = (await mina.memory("conversation", visit["visit_id"]))["conversation"]
        texts = [m["text"] for m in conversation["messages"]]
        assert texts == [t for pair in zip(said, replies, strict=True) for t in pair]
        relations = (await mina.memory("relations"))["relations"]
        assert [r["partner_id"] for r in relations] == [legacy_id]
        spoken_by_bridge = [
            e["body"]["text"]
            for e in mina.node.received_from(bridge.peer_id)
            if e["body"].get("type") == "speak"
        ]
        assert spoken_by_bridge == said
