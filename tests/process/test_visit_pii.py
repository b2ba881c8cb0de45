"""PII said in visits never reaches a database or a log, even at DEBUG with py-libp2p's
own DEBUG logging on (it logs payloads in hex there; the leak check looks for hex and
base64 forms too).

Defects this guards against:

* the node's log handler without its ``RedactingFilter`` (``node/cli/startup.py``);
* py-libp2p's records bypassing that handler: with ``LIBP2P_DEBUG`` set, py-libp2p
  logs through handlers of its own (stderr and a file) unless the node takes them over.

py-libp2p keeps its logging off unless ``LIBP2P_DEBUG`` is set, so the nodes run with it
set; without that, this test could pass with no redaction at all. And since our own
nodes redact what they say before it leaves them, a raw peer publishes PII to Kai too:
py-libp2p logs each payload Kai's validator refuses in hex, and those lines must show
the redaction marker (the positive control), never the item.
"""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio

from keys import TOPIC_ACTIONS
from node._libp2p import open_p2p_host
from node.privacy.log_scrub import ENCODED_PLACEHOLDER
from node.testing.fake_openai import ChatRequest, FakeReply
from tests.support.pii_corpus import KINDS, PiiItem, leaks, pii_items
from tests.support.procs import POLL_INTERVAL_S
from tests.support.visit_party import Member, in_thread, is_summary, open_party

pytestmark = pytest.mark.timeout(300)

ITEMS = pii_items()
PER_LINE = 4
RAW_ITEMS = [next(item for item in ITEMS if item.kind == kind) for kind in KINDS]
"""One item of each kind, which the raw peer says as is."""
REFUSED_LOG = "Topic validation failed"
"""py-libp2p's DEBUG line for a refused message: it carries the payload in hex."""
RAW_PEER_S = 30.0


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


def raw_line(item: PiiItem) -> bytes:
    """What a peer that redacts nothing would say: a bare (unsigned) speak body."""
    return bytes(msgpack.packb({"type": "speak", "text": f"call me: {item.text}"}))


async def raw_peer_says(member: Member, items: list[PiiItem]) -> str:
    """A libp2p peer of our own publishes ``items`` unredacted to ``member``'s node, which
    refuses them (not envelopes); returns the raw peer's id once every refusal is seen."""
    async with open_p2p_host(secrets.token_bytes(32), ["/ip4/127.0.0.1/tcp/0"]) as raw:
        await raw.subscribe(TOPIC_ACTIONS)
        target = await raw.dial(member.node.addrs[0], timeout=RAW_PEER_S)
        assert await raw.wait_for_subscriber(TOPIC_ACTIONS, target, RAW_PEER_S)
        for item in items:
            await raw.publish(TOPIC_ACTIONS, raw_line(item))

        def all_refused(events: list[dict[str, Any]]) -> bool:
            refused = [
                e for e in events if e.get("event") == "rejected" and e["peer_id"] == raw.peer_id
            ]
            return len(refused) >= len(items)

        await in_thread(member.node.wait_until, all_refused, RAW_PEER_S, "raw lines refused")
        return raw.peer_id


async def refused_log_lines(member: Member, peer_id: str, count: int) -> list[str]:
    """py-libp2p's lines about ``peer_id``'s refused messages in the node's stderr, once
    there are ``count`` (stderr is read by another thread, after the events)."""
    lines: list[str] = []
    with trio.move_on_after(RAW_PEER_S):
        while len(lines) < count:
            lines = [
                line
                for line in list(member.node.stderr_lines)
                if REFUSED_LOG in line and peer_id in line
            ]
            await trio.sleep(POLL_INTERVAL_S)
    return lines


async def test_fifty_pii_items_said_in_visits_leave_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(ITEMS) >= 50
    # py-libp2p reads these when imported: in the node processes (and CLI runs) only.
    libp2p_file = tmp_path / "libp2p-debug.log"
    monkeypatch.setenv("LIBP2P_DEBUG", "DEBUG")
    monkeypatch.setenv("LIBP2P_DEBUG_FILE", str(libp2p_file))
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

        raw_peer = await raw_peer_says(kai, RAW_ITEMS)
        refused = await refused_log_lines(kai, raw_peer, len(RAW_ITEMS))
        await in_thread(party.stop_all)

        # The positive control: py-libp2p's hex dumps of the raw lines reached Kai's
        # stderr through the node's handler, and were redacted there.
        assert len(refused) >= len(RAW_ITEMS), kai.node.stderr_lines[-20:]
        assert all(ENCODED_PLACEHOLDER in line for line in refused), refused
        for member in (mina, kai):
            assert any(" DEBUG libp2p." in line for line in member.node.stderr_lines)

        stored = everything_written(mina.data_dir) + everything_written(kai.data_dir)
        assert "[email]" in stored and "[card]" in stored  # the text was kept, redacted
        logs = "\n".join(
            [
                *outputs,
                *(str(event) for m in (mina, kai) for event in m.node.events),
                *(line for m in (mina, kai) for line in m.node.stderr_lines),
                libp2p_file.read_text(errors="replace") if libp2p_file.exists() else "",
            ]
        )
        assert any("DEBUG" in line for line in mina.node.stderr_lines)
        assert leaks(stored, ITEMS) == []
        assert leaks(logs, ITEMS) == []
