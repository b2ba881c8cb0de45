"""How visits end, between real node processes on loopback, each character with its own
fake OpenAI-compatible engine over real HTTP: early on a goodbye (before the turn budget),
and by the owner through ``roomverse end-visit`` while the character's engine is still
writing. Both sides record why, sign the same transcript and remember the visit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from node.errors import ControlError
from node.testing.fake_openai import FakeReply
from node.visits.receipts import verify_receipt
from tests.support.procs import run_cli
from tests.support.visit_party import Member, in_thread, is_summary, open_party

pytestmark = pytest.mark.timeout(300)

CLOSING = "The visit is ending now: say a short, warm goodbye."
UNKNOWN_VISIT = "0" * 32


def done_of(replies: list[dict[str, Any]]) -> dict[str, Any]:
    (done,) = [reply for reply in replies if reply.get("done")]
    return done


async def visit_ended(member: Member, visit: str) -> dict[str, Any]:
    """The ``visit_ended`` event of ``visit`` on ``member``'s node, once it is out."""

    def ended(event: dict[str, Any]) -> bool:
        return event.get("event") == "visit_ended" and event.get("visit") == visit

    return await in_thread(member.node.wait_for, ended, 30, f"visit_ended on {member.name}")


async def same_transcript(mina: Member, kai: Member, visit: str) -> list[str]:
    """Both memories hold the visit with the same transcript hash and a receipt that
    verifies; returns the lines said."""
    ours = (await mina.memory("conversation", visit))["conversation"]
    theirs = (await kai.memory("conversation", visit))["conversation"]
    assert ours["visit"]["transcript_hash"] == theirs["visit"]["transcript_hash"]
    for side in (ours, theirs):
        receipt = verify_receipt(bytes.fromhex(side["visit"]["receipt"]))
        assert receipt.transcript.hex() == side["visit"]["transcript_hash"]
    return [message["text"] for message in ours["messages"]]


async def test_a_goodbye_ends_a_visit_before_its_budget(tmp_path: Path) -> None:
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina")
        kai = await party.add("Kai", extra={"visits": {"max_turns": 12}})
        await party.everyone_online()
        # Kai's third line (turn 5) says goodbye; Mina answers it; Kai sees her off.
        kai.fake.script(
            FakeReply("Kai says line 1."),
            FakeReply("Kai says line 2."),
            FakeReply("What a lovely talk. Take care, see you soon!"),
        )
        done = done_of(await party.visit("Mina", "Kai", turns=12))
        visit = done["visit"]
        assert (done["outcome"], done["turns"]) == ("ended_by_partner", 7)
        theirs, ours = await visit_ended(kai, visit), await visit_ended(mina, visit)
        assert (theirs["reason"], theirs["ended_by"], theirs["outcome"]) == (
            "goodbye",
            "me",
            "completed",
        )
        assert (ours["reason"], ours["ended_by"], ours["turns"]) == ("goodbye", "partner", 7)
        said = await same_transcript(mina, kai, visit)
        assert said[5] == "What a lovely talk. Take care, see you soon!"
        # Mina's engine was asked for a goodbye back, and only for that line.
        prompts = [r.messages[0].content for r in mina.fake.requests if not is_summary(r)]
        assert [CLOSING in prompt for prompt in prompts] == [False, False, False, True]
        assert len(kai.fake.requests) == 3 + sum(map(is_summary, kai.fake.requests))


async def test_the_owner_ends_a_visit_with_the_cli_while_the_engine_writes(
    tmp_path: Path,
) -> None:
    async with open_party(tmp_path, ["Mina", "Kai"]) as party:
        mina, kai = party.members["Mina"], party.members["Kai"]
        await party.everyone_online()
        # Kai answers the first line, then his engine takes a minute over the next.
        kai.fake.script(FakeReply("Kai says welcome."), FakeReply("never said", delay_s=60))
        replies: list[dict[str, Any]] = []

        async def visit() -> None:
            replies.extend(await party.visit("Mina", "Kai", turns=8))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(visit)
            await kai.fake.wait_for_requests(2, timeout=60)  # turn 3 is being written
            with pytest.raises(AssertionError, match=f"no visit {UNKNOWN_VISIT} is in progress"):
                await in_thread(
                    run_cli, "end-visit", UNKNOWN_VISIT, "--data-dir", str(kai.data_dir)
                )
            out = await in_thread(
                run_cli, "end-visit", "--data-dir", str(kai.data_dir), "--json", timeout=30
            )
        (ended,) = json.loads(out)["visits"]
        assert (ended["ended"], ended["outcome"], ended["reason"]) == (True, "completed", "owner")
        assert (ended["role"], ended["partner_name"], ended["turns"]) == ("host", "Mina", 3)
        done = done_of(replies)
        assert (done["visit"], done["outcome"], done["turns"]) == (
            ended["visit"],
            "ended_by_partner",
            3,
        )
        theirs, ours = await visit_ended(kai, done["visit"]), await visit_ended(mina, done["visit"])
        assert (theirs["reason"], theirs["ended_by"]) == ("owner", "me")
        assert (ours["reason"], ours["ended_by"]) == ("owner", "partner")
        assert "never said" not in await same_transcript(mina, kai, done["visit"])
        await kai.relation_updates(1)  # memory is kept as after any visit
        (visit_row,) = (await kai.memory("visits"))["visits"]
        assert visit_row["outcome"] == "completed"
        assert (await kai.control({"cmd": "status"}))["visiting"] == []
        # Over now: a clear error naming what became of it.
        with pytest.raises(AssertionError, match="is already over \\(completed\\)"):
            await in_thread(run_cli, "end-visit", done["visit"], "--data-dir", str(kai.data_dir))
        with pytest.raises(AssertionError, match="no visit is in progress"):
            await in_thread(run_cli, "end-visit", "--data-dir", str(mina.data_dir))
        with pytest.raises(ControlError, match='"visit" must be a visit id'):
            await kai.control({"cmd": "end_visit", "visit": "not-a-visit"})
        with pytest.raises(ControlError, match='"wait" must be true or false'):
            await kai.control({"cmd": "end_visit", "wait": "yes"})
