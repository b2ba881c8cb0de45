"""The whole seed story against a running bridge: an independent legacy participant
(FastAPI + uvicorn in its own process, ``tests/support/seed_participant.py``) registers
with the seed's own ``requests`` call, lists the directory, visits a libp2p character
through the bridge for several turns, and is visited back by ``roomverse visit``; both
sides' records agree, and the bridge publishes the visitor's lines for the firehose."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.bridge_process import TOKEN, BridgeProcess
from tests.support.procs import JsonLinesProcess
from tests.support.visit_party import in_thread, open_party
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


@contextmanager
def seed_participant(bridge: BridgeProcess) -> Iterator[str]:
    """The participant's process; yields its base URL once uvicorn says it listens."""
    env = {"SEED_NAME": "Zundamon", "SEED_BRIDGE": bridge.url, "SEED_TOKEN": TOKEN}
    os.environ.update(env)
    argv = [sys.executable, "-m", "uvicorn", "tests.support.seed_participant:app"]
    process = JsonLinesProcess([*argv, "--host", "127.0.0.1", "--port", "0"], name="seed")
    try:

        def listening() -> str | None:
            for line in process.stderr_lines:
                found = RUNNING.search(line)
                if found:
                    return found.group(1)
            return None

        yield wait_until(listening, 30, "uvicorn to listen")
    finally:
        process.stop()
        for name in env:
            os.environ.pop(name, None)


async def test_a_seed_participant_and_a_character_visit_each_other_through_the_bridge(
    tmp_path: Path,
) -> None:
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina", extra={"visits": {"max_turns": 6}})
        bridge = BridgeProcess(
            tmp_path / "bridge", bootstrap=mina.node.addrs[:1], extra=["--allow-private-urls"]
        )
        try:
            await in_thread(bridge.wait_ready)
            with seed_participant(bridge) as seed:

                def owner(path: str, body: dict[str, Any] | None = None) -> Any:
                    response = requests.post(f"{seed}/_owner/{path}", json=body or {}, timeout=240)
                    response.raise_for_status()
                    return response.json()

                registered = await in_thread(owner, "register")
                zundamon_id = registered["id"]

                def mina_listed() -> bool:
                    rows = bridge.get("/directory").json()["online"]
                    return any(row["name"] == "Mina" for row in rows)

                await in_thread(wait_until, mina_listed, 30, "Mina listed by the bridge")
                said = ["こんにちは、ミナさん！", "お茶が好きなのだ。", "また来るのだ！"]
                made = await in_thread(owner, "visit", {"host": "Mina", "lines": said})
                assert made["done"] is True
                minas = ["Mina says line 1.", "Mina says line 2.", "Mina says line 3."]
                assert made["lines"] == [
                    [speaker, text]
                    for ours, theirs in zip(said, minas, strict=True)
                    for speaker, text in (("Zundamon", ours), ("Mina", theirs))
                ]

                def zundamon_seen(presence: dict[str, str]) -> bool:
                    return presence.get(zundamon_id) == "online"

                await in_thread(mina.node.wait_directory, zundamon_seen, 30, "Zundamon at Mina")
                replies = await party.visit("Mina", "Zundamon", turns=10)
                log = (await in_thread(requests.get, f"{seed}/_owner/log", timeout=30)).json()
        finally:
            await in_thread(bridge.stop)

        done = next(r for r in replies if r.get("done"))
        assert (done["outcome"], done["reason"]) == ("ended_by_partner", "goodbye"), done
        await mina.relation_updates(2)
        visits = {v["role"]: v for v in (await mina.memory("visits"))["visits"]}
        assert {v["partner_id"] for v in visits.values()} == {zundamon_id}

        # Zundamon's visit to Mina, as both sides recorded it.
        hosted_by_mina = await mina.memory("conversation", visits["host"]["visit_id"])
        mina_texts = [m["text"] for m in hosted_by_mina["conversation"]["messages"]]
        assert mina_texts == [text for _, text in made["lines"]]
        # Mina's visit to Zundamon, as both sides recorded it.
        (conversation,) = log["hosted"].values()
        guest_of_zundamon = await mina.memory("conversation", visits["guest"]["visit_id"])
        texts = [m["text"] for m in guest_of_zundamon["conversation"]["messages"]]
        # Zundamon said it was done with its third line; Mina still had her turn, then the
        # bridge said goodbye for Zundamon: that last line of Mina's was not relayed.
        assert texts[:-1] == [text for _, text in conversation]
        assert texts[-1].startswith("Mina says line")
        # What the firehose shows: the bridge's speak actions, Zundamon's lines as spoken.
        spoken = [
            e["body"]["text"]
            for e in mina.node.received_from(bridge.peer_id)
            if e["body"].get("type") == "speak"
        ]
        assert spoken[: len(said)] == said
