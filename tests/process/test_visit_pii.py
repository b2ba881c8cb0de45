"""PII said in visits never reaches a database or a log, even at DEBUG (py-libp2p logs
payloads in hex there; the leak check looks for hex and base64 forms too)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from node.testing.fake_openai import ChatRequest, FakeReply
from tests.support.pii_corpus import leaks, pii_items
from tests.support.visit_party import in_thread, is_summary, open_party

pytestmark = pytest.mark.timeout(300)

ITEMS = pii_items()
PER_LINE = 4


def blabber(name: str) -> object:
    """A fake engine that puts a few PII items into every line it writes."""
    items = itertools.cycle(ITEMS)

    def reply(request: ChatRequest) -> FakeReply:
        if is_summary(request):
            return FakeReply(f"They told me {next(items).text}, of all things.")
        said = ", ".join(next(items).text for _ in range(PER_LINE))
        return FakeReply(f"{name} here. Write this down: {said}.")

    return reply


def everything_written(data_dir: Path) -> str:
    return "\n".join(
        path.read_bytes().decode("latin-1") for path in sorted(data_dir.iterdir()) if path.is_file()
    )


async def test_fifty_pii_items_said_in_visits_leave_no_trace(tmp_path: Path) -> None:
    assert len(ITEMS) >= 50
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina", verbose=2)
        kai = await party.add("Kai", verbose=2, extra={"visits": {"per_visitor_per_hour": 20}})
        mina.fake.responder = blabber("Mina")  # type: ignore[assignment]
        kai.fake.responder = blabber("Kai")  # type: ignore[assignment]
        await party.everyone_online()
        outputs = []
        visits = -(-len(ITEMS) // (PER_LINE * 4)) + 1  # 4 lines of each side per visit
        for _ in range(visits):
            replies = await party.visit("Mina", "Kai", turns=8)
            assert replies[-1]["outcome"] == "completed"
            outputs.append(str(replies))
        said = [r.messages for r in mina.fake.requests + kai.fake.requests]
        assert said, "the engines were asked to speak"
        assert (await kai.memory("relations"))["relations"]
        await in_thread(party.stop_all)

        stored = everything_written(mina.data_dir) + everything_written(kai.data_dir)
        assert "[email]" in stored and "[card]" in stored  # the text was kept, redacted
        logs = "\n".join(
            [
                *outputs,
                *(str(event) for m in (mina, kai) for event in m.node.events),
                *(line for m in (mina, kai) for line in m.node.stderr_lines),
            ]
        )
        assert any("DEBUG" in line for line in mina.node.stderr_lines)
        assert leaks(stored, ITEMS) == []
        assert leaks(logs, ITEMS) == []
