"""Visits between real node processes on loopback, each character with its own fake
OpenAI-compatible engine over real HTTP: full visits, receipts, memory, affinity, memory
isolation, the answering machine, and a host killed mid-visit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from node.agent.affinity import AffinityTier
from node.agent.prompts.views import TIER_WORDING
from node.testing.fake_openai import FakeReply
from node.visits.receipts import verify_receipt
from tests.support.visit_party import in_thread, is_summary, open_party

pytestmark = pytest.mark.timeout(300)


def lines_of(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [reply["line"] for reply in replies if "line" in reply]


def done_of(replies: list[dict[str, Any]]) -> dict[str, Any]:
    (done,) = [reply for reply in replies if reply.get("done")]
    return done


def system_prompts(requests: list[Any]) -> list[str]:
    return [r.messages[0].content for r in requests if not is_summary(r)]


async def test_a_visit_alternates_turns_and_both_sides_sign_the_same_transcript(
    tmp_path: Path,
) -> None:
    async with open_party(tmp_path, ["Mina", "Kai"]) as party:
        mina, kai = party.members["Mina"], party.members["Kai"]
        await party.everyone_online()
        replies = await party.visit("Mina", "Kai", turns=6)
        done = done_of(replies)
        assert done["outcome"] == "completed", replies
        await kai.relation_updates(1)
        lines = lines_of(replies)
        assert [line["turn"] for line in lines] == list(range(6))
        speakers = [line["speaker"] for line in lines]
        assert speakers == [mina.node.peer_id, kai.node.peer_id] * 3
        assert all(line["text"].startswith(("Mina says", "Kai says")) for line in lines)
        assert [line["text"].split()[0] for line in lines] == ["Mina", "Kai"] * 3

        visit = done["visit"]
        ours = (await mina.memory("conversation", visit))["conversation"]
        theirs = (await kai.memory("conversation", visit))["conversation"]
        assert ours["visit"]["transcript_hash"] == theirs["visit"]["transcript_hash"]
        assert ours["visit"]["transcript_hash"] == done["transcript"]
        assert [m["text"] for m in ours["messages"]] == [m["text"] for m in theirs["messages"]]
        for side in (ours, theirs):
            receipt = verify_receipt(bytes.fromhex(side["visit"]["receipt"]))
            assert receipt.transcript.hex() == done["transcript"]
            assert receipt.turns == 6
        assert (ours["visit"]["role"], theirs["visit"]["role"]) == ("guest", "host")
        assert theirs["visit"]["outcome"] == "completed"

        # Each side published its own speech with the visit id (public visit).
        def spoken(events: list[dict[str, Any]]) -> list[str]:
            return [
                e["body"]["text"]
                for e in events
                if e.get("event") == "action_received"
                and e["body"].get("type") == "speak"
                and e["body"].get("visit") == visit
            ]

        await in_thread(
            kai.node.wait_until, lambda ev: len(spoken(ev)) == 3, 20, "Mina's speech on Kai"
        )
        assert all(text.startswith("Mina says") for text in spoken(kai.node.events))


async def test_affinity_rises_with_repeated_visits_and_the_host_opens_up(tmp_path: Path) -> None:
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina")
        kai = await party.add("Kai", extra={"visits": {"per_visitor_per_hour": 10}})
        await party.everyone_online()
        affinities = []
        for visits in range(1, 7):
            done = done_of(await party.visit("Mina", "Kai", turns=4))
            assert done["outcome"] == "completed"
            await kai.relation_updates(visits)
            (relation,) = (await kai.memory("relations"))["relations"]
            assert relation["partner_id"] == mina.node.peer_id
            affinities.append(relation["affinity"])
        assert affinities == sorted(affinities) and affinities[-1] > affinities[0], affinities
        prompts = system_prompts(kai.fake.requests)
        assert TIER_WORDING[AffinityTier.STRANGER] in prompts[0]
        assert TIER_WORDING[AffinityTier.FRIEND] in prompts[-1], affinities
        # The summary the host's engine wrote at farewell is what it remembers next time.
        assert "Your own memories of them" in prompts[-1]
        assert "I remember our visit" in prompts[-1]


async def test_memory_of_one_partner_never_reaches_a_prompt_for_another(
    tmp_path: Path,
) -> None:
    async with open_party(tmp_path) as party:
        await party.add("Mina", token="TOKEN-MINA")
        kai = await party.add("Kai", extra={"visits": {"per_visitor_per_hour": 10}})
        await party.add("Ren", token="TOKEN-REN")
        await party.everyone_online()
        for visits in (1, 2):
            assert done_of(await party.visit("Mina", "Kai", turns=4))["outcome"] == "completed"
            await kai.relation_updates(visits)
        # Kai's second visit with Mina already carried its memory of her (positive control).
        assert any("TOKEN-MINA" in p for p in system_prompts(kai.fake.requests))
        before = len(kai.fake.requests)
        for visits in (3, 4):
            assert done_of(await party.visit("Ren", "Kai", turns=4))["outcome"] == "completed"
            await kai.relation_updates(visits)
        with_ren = kai.fake.requests[before:]
        assert with_ren
        for request in with_ren:
            text = "\n".join(m.content for m in request.messages)
            assert "TOKEN-MINA" not in text
            assert "Mina" not in text
        assert any("TOKEN-REN" in p for p in system_prompts(with_ren))


async def test_an_away_host_answers_once_in_persona_and_keeps_the_message(
    tmp_path: Path,
) -> None:
    async with open_party(tmp_path, ["Mina", "Kai"]) as party:
        mina, kai = party.members["Mina"], party.members["Kai"]
        await party.everyone_online()
        assert (await kai.control({"cmd": "set_status", "status": "away"}))["status"] == "away"
        await in_thread(
            mina.node.wait_directory,
            lambda seen: seen.get(kai.node.peer_id) == "away",
            20,
            "Kai away",
        )
        replies = await party.visit("Mina", "Kai", check=False)
        done = done_of(replies)
        assert done["outcome"] == "declined:away"
        assert done["message"] == "Kai is out right now; I'll pass your message on."
        # One short engine call on the host, nothing more.
        assert len(kai.fake.requests) == 1
        assert (kai.fake.requests[0].max_tokens or 0) <= 120
        (visit,) = (await kai.memory("visits"))["visits"]
        assert visit["outcome"] == "left_message"
        kept = (await kai.memory("conversation", visit["visit_id"]))["conversation"]
        assert kept["messages"][0]["text"].startswith("Mina says")


async def test_host_killed_mid_visit_loses_no_acknowledged_line(tmp_path: Path) -> None:
    async with open_party(tmp_path, ["Mina", "Kai"]) as party:
        mina, kai = party.members["Mina"], party.members["Kai"]
        await party.everyone_online()
        # Kai answers the first line, then hangs while writing the next.
        kai.fake.script(FakeReply("Kai says welcome."), FakeReply("never sent", delay_s=60))
        replies: list[dict[str, Any]] = []

        async def visit() -> None:
            replies.extend(await party.visit("Mina", "Kai", turns=8, check=False))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(visit)
            await kai.fake.wait_for_requests(2, timeout=60)  # turn 2 stored, turn 3 pending
            await in_thread(kai.node.kill)  # SIGKILL
        done = done_of(replies)
        assert done["outcome"] == "partner_vanished"
        said = [line["text"] for line in lines_of(replies)]
        assert len(said) == 3

        kai = await party.restart("Kai")
        (stored,) = (await kai.memory("visits"))["visits"]
        assert stored["outcome"] == "interrupted"
        kept = (await kai.memory("conversation", stored["visit_id"]))["conversation"]
        assert [m["text"] for m in kept["messages"]] == said
        (ours,) = (await mina.memory("visits"))["visits"]
        assert ours["outcome"] == "partner_vanished"
