"""A legacy participant visits a libp2p character through a running bridge: a real
visit, the host deciding at its door, its memory keeping the participant by its vouched
id, the bridge's lines published for the firehose, and farewell with receipts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.bridge_process import BridgeProcess, bridge_beside
from tests.support.legacy_participant import legacy_participant, serving
from tests.support.visit_party import Member, in_thread, open_party

pytestmark = pytest.mark.timeout(300)


async def register(bridge: BridgeProcess, name: str, url: str) -> str:
    """Register the participant at ``url``; its vouched id."""
    answer = await in_thread(bridge.post, "/register", {"name": name, "url": url})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


async def until_online(member: Member, *peer_ids: str) -> None:
    def online(presence: dict[str, str]) -> bool:
        return all(presence.get(peer) == "online" for peer in peer_ids)

    await in_thread(member.node.wait_directory, online, 30, f"{peer_ids} at {member.name}")


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


async def test_a_character_visits_a_legacy_participant_through_the_bridge(
    tmp_path: Path,
) -> None:
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina")
        async with bridge_beside(mina, tmp_path) as bridge:
            with serving() as zundamon:
                legacy_id = await register(bridge, "Zundamon", zundamon.url)

                await until_online(mina, legacy_id)
                replies = await party.visit("Mina", "Zundamon", turns=8)

            done = next(r for r in replies if r.get("done"))
            # Zundamon said it was done after its third line: the bridge said goodbye.
            assert (done["outcome"], done["reason"]) == ("ended_by_partner", "goodbye"), done
            lines = [r["line"] for r in replies if "line" in r]
            theirs = [line["text"] for line in lines if line["speaker"] != mina.node.peer_id]
            assert theirs == [f"Zundamon's line {n} なのだ。" for n in (1, 2, 3)]
            paths = [path for path, _ in zundamon.heard]
            assert paths == ["/visit", "/chat", "/chat"]
            visit_body = zundamon.heard[0][1]
            assert visit_body["message"] == lines[0]["text"]
            assert visit_body["visitor"] == {
                "name": "Mina",
                "url": f"{bridge.url}/characters/{mina.node.peer_id}",
            }
            assert all(body["conversation_id"] == "zc-1" for _, body in zundamon.heard[1:])

        await mina.relation_updates(1)
        (visit,) = (await mina.memory("visits"))["visits"]
        assert (visit["partner_id"], visit["partner_name"]) == (legacy_id, "Zundamon")
        assert visit["outcome"] == "ended_by_partner" and visit["receipt"], visit


async def test_a_participant_answering_garbage_ends_the_visit_cleanly_with_a_reason(
    tmp_path: Path,
) -> None:
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina")
        async with bridge_beside(mina, tmp_path) as bridge:
            with serving("garbage_replies") as broken:
                legacy_id = await register(bridge, "Broken", broken.url)

                await until_online(mina, legacy_id)
                replies = await party.visit("Mina", "Broken", turns=8)
            done = next(r for r in replies if r.get("done"))
            assert (done["outcome"], done["reason"]) == (
                "ended_by_partner",
                "engine_unavailable",
            ), done
            assert [path for path, _ in broken.heard] == ["/visit"]


async def test_the_bridge_root_fronts_one_character_with_its_agent_card(tmp_path: Path) -> None:
    """``roomverse bridge --character Mina``: one URL for Mina, in the seed protocol."""
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina", extra={"visits": {"max_turns": 4}})
        async with bridge_beside(mina, tmp_path, "--character", "mina") as bridge:
            manifest = bridge.get("/manifest").json()
            assert (manifest["name"], manifest["id"]) == ("Mina", mina.node.peer_id)
            card = bridge.get("/.well-known/agent-card.json").json()
            assert card["name"] == "Mina" and card["version"]
            assert card["supportedInterfaces"] == [
                {"url": bridge.url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}
            ]
            (extension,) = card["capabilities"]["extensions"]
            assert extension["params"]["peerId"] == mina.node.peer_id
            assert extension["params"]["multiaddrs"]
            assert card["skills"][0]["id"] == "visit"
            for field in ("description", "defaultInputModes", "defaultOutputModes"):
                assert card[field]
            with legacy_participant() as url:
                first = (
                    await in_thread(
                        bridge.post,
                        "/visit",
                        {"visitor": {"name": "Zundamon", "url": url}, "message": "Hello!"},
                    )
                ).json()
                assert (first["reply"], first["done"]) == ("Mina says line 1.", False), first
                last = (
                    await in_thread(
                        bridge.post,
                        "/chat",
                        {"conversation_id": first["conversation_id"], "message": "Bye!"},
                    )
                ).json()
            assert (last["reply"], last["done"]) == ("Mina says line 2.", True), last


async def test_autonomy_drops_in_on_a_legacy_participant_too(tmp_path: Path) -> None:
    """A character's autonomy picks from everyone online, legacy participants included;
    the visit goes through the bridge that vouches for the participant."""
    async with open_party(tmp_path) as party:
        autonomy = {"enabled": True, "interval_s": 2.0, "jitter": 0.0, "cooldown_s": 3600.0}
        mina = await party.add("Mina", extra={"autonomy": autonomy})
        async with bridge_beside(mina, tmp_path) as bridge:
            with serving() as zundamon:
                legacy_id = await register(bridge, "Zundamon", zundamon.url)

                def visited(events: list[dict[str, Any]]) -> bool:
                    return any(
                        e.get("event") == "visit_ended" and e.get("partner") == legacy_id
                        for e in events
                    )

                await in_thread(mina.node.wait_until, visited, 90, "Mina's visit to Zundamon")
            chosen = [e for e in mina.node.of("autonomy_visit") if e["target"] == legacy_id]
            assert chosen and chosen[0]["name"] == "Zundamon"
            ended = next(e for e in mina.node.of("visit_ended") if e["partner"] == legacy_id)
            assert ended["outcome"] == "ended_by_partner", ended
            assert [path for path, _ in zundamon.heard] == ["/visit", "/chat", "/chat"]


async def test_a_character_far_from_the_bridge_finds_it_in_the_directory(
    tmp_path: Path,
) -> None:
    """Kai knows only Mina; the bridge (listed, taking no visits itself) is in the
    directory, so Kai's visit to Zundamon dials it there."""
    async with open_party(tmp_path, ["Mina", "Kai"]) as party:
        mina, kai = party.members["Mina"], party.members["Kai"]
        async with bridge_beside(mina, tmp_path) as bridge:
            with serving() as zundamon:
                legacy_id = await register(bridge, "Zundamon", zundamon.url)

                await until_online(kai, legacy_id, bridge.peer_id)
                replies = await party.visit("Kai", "Zundamon", turns=8)
                with pytest.raises(AssertionError, match="takes no visits"):
                    await party.visit("Kai", bridge.peer_id)
            done = next(r for r in replies if r.get("done"))
            assert done["outcome"] == "ended_by_partner", done
            names = [row["name"] for row in bridge.get("/directory").json()["online"]]
            assert sorted(names) == ["Kai", "Mina", "Zundamon"], "never the bridge itself"
