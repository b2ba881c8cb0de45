"""`roomverse party` as a user runs it: three characters, one engine, a firehose; a visit
shows in the viewer's stream; Ctrl-C stops it all; the next party remembers.

The engine is the fake OpenAI-compatible server (``--engine-url``): what is under test is
the party (its nodes, its pacing, its firehose, its stop), not a model.
"""

from __future__ import annotations

import signal
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from node.testing.fake_openai import serve_fake_openai
from tests.support.firehose_wire import open_lines
from tests.support.procs import JsonLinesProcess, roomverse_argv
from tests.support.visit_party import in_thread

pytestmark = pytest.mark.timeout(300)

JOIN_S = 60.0
VISIT_S = 90.0
"""Engine ready + everyone met + the party's first pause (10 s) + a visit."""
STOP_S = 30.0
CHARACTERS = 3


def start_party(data_dir: Path, engine_url: str) -> JsonLinesProcess:
    return JsonLinesProcess(
        roomverse_argv(
            "party",
            "--data-dir",
            str(data_dir),
            "--http",
            "127.0.0.1:0",
            "--engine-url",
            engine_url,
            "--engine-model",
            "party-model",
            "--log-format",
            "json",
        ),
        name="party",
    )


def joined(party: JsonLinesProcess) -> dict[str, str]:
    """Name → PeerID of every character that joined."""
    party.wait_until(
        lambda events: sum(e.get("event") == "party_joined" for e in events) >= CHARACTERS,
        JOIN_S,
        f"{CHARACTERS} characters to join",
    )
    return {e["name"]: e["peer_id"] for e in party.of("party_joined")}


def stop(party: JsonLinesProcess) -> int:
    """Ctrl-C, as a person at the terminal stops it."""
    party.signal(signal.SIGINT)
    try:
        return party.proc.wait(STOP_S)
    finally:
        party.stop()


def refuses_connections(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return False
    except OSError:
        return True


async def test_party_visits_in_the_viewer_stops_on_ctrl_c_and_remembers(tmp_path: Path) -> None:
    data_dir = tmp_path / "party"
    async with serve_fake_openai(model="party-model") as fake:
        party = start_party(data_dir, fake.base_url)
        try:
            peers = await in_thread(joined, party)
            assert len(set(peers.values())) == CHARACTERS  # each its own key
            ready = await in_thread(
                party.wait_for, lambda e: e.get("event") == "firehose_ready", JOIN_S, "viewer"
            )
            viewer = str(ready["url"])
            ws_url = viewer.replace("http://", "ws://") + "/ws"
            speakers: set[str] = set()
            async with open_lines(ws_url) as ws:
                hello = await ws.next(JOIN_S)
                assert hello["type"] == "hello"
                while len(speakers) < 2:  # bounded by next()'s timeout
                    frame = await ws.next(VISIT_S)
                    if frame.get("body", {}).get("type") == "speak":
                        assert frame["from"] in peers.values()
                        speakers.add(frame["from"])
            # The visit ends and the characters remember each other (affinity, summary).
            remembered = await in_thread(
                party.wait_for, lambda e: e.get("event") == "relation_updated", VISIT_S, "memory"
            )
            assert stop(party) == 0
        finally:
            party.stop()
        assert party.of("party_stopped")
        assert not [line for line in party.stderr_lines if "Traceback" in line]
        assert await in_thread(refuses_connections, viewer)  # the firehose went too
        visitors = {e["character"] for e in party.of("visit_started") if e["role"] == "guest"}
        assert visitors  # a character went out on its own

        again = start_party(data_dir, fake.base_url)
        try:
            assert await in_thread(joined, again) == peers  # same characters, same keys
            friends = {e["name"]: e["friends"] for e in again.of("party_joined")}
            assert friends[remembered["character"]] >= 1, friends
        finally:
            again.stop()
    assert party.proc.returncode == 0
    assert not [p for p in (party, again) if p.proc.poll() is None]
