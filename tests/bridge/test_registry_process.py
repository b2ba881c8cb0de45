"""``roomverse bridge`` as a real process: legacy participants register with the seed's
own call, everyone online is listed, the vouched entry reaches libp2p characters, and
every refusal is problem+json while honest traffic keeps flowing."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from bridge.guard import TOKEN_HEADER
from bridge.registry import handle_for
from keys import peer_id_from_str, peer_id_to_str
from registry_crdt import legacy_peer_id
from tests.support.bridge_process import TOKEN, BridgeProcess
from tests.support.legacy_participant import legacy_participant
from tests.support.procs import NodeProcess, start_character, write_character
from tests.support.waiting import wait_until

PROBLEM = "application/problem+json"


HONEST_EVERY_S = 0.5
"""An honest client's pace: well inside the per-address rate (60 a minute, bursts of 20)."""


@contextmanager
def honest_traffic(bridge: BridgeProcess) -> Iterator[None]:
    """An honest client listing the directory from its own address the whole time; on
    the way out, every one of its requests must have been answered 200."""
    answers: list[int] = []
    stop = threading.Event()

    def keep_listing() -> None:
        for _ in range(240):  # bounded: at most two minutes
            answers.append(
                bridge.get("/directory", **{"X-Forwarded-For": "203.0.113.7"}).status_code
            )
            if stop.wait(HONEST_EVERY_S):
                return

    listing = threading.Thread(target=keep_listing)
    listing.start()
    try:
        yield
    finally:
        stop.set()
        listing.join(150)
    assert answers and set(answers) == {200}, answers


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[BridgeProcess]:
    process = BridgeProcess(tmp_path / "bridge", extra=["--allow-private-urls", "--trust-proxy"])
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def test_the_seeds_registration_call_works_and_the_entry_reaches_libp2p_characters(
    tmp_path: Path, bridge: BridgeProcess, nodes: list[NodeProcess]
) -> None:
    mina = start_character(tmp_path, nodes, "Mina", bootstrap=bridge.addrs, extra=["--no-greet"])
    with legacy_participant() as url:
        # The seed's snippet, as written, plus the community token header.
        response = requests.post(
            f"{bridge.url}/register",
            json={"name": "Zundamon", "url": url},
            headers={TOKEN_HEADER: TOKEN},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        expected_id = peer_id_to_str(
            legacy_peer_id(peer_id_from_str(bridge.peer_id), handle_for(url))
        )
        assert answer["id"] == expected_id
        assert answer["lease_s"] == 300
        # Registering again is the heartbeat: same id, a later lease.
        again = bridge.post("/register", {"name": "Zundamon", "url": url + "/"}).json()
        assert again["id"] == expected_id
        assert again["lease_expires_ms"] >= answer["lease_expires_ms"]

    def listed() -> dict[str, dict[str, str]] | None:
        rows = {row["name"]: row for row in bridge.get("/directory").json()["online"]}
        return rows if {"Mina", "Zundamon"} <= set(rows) else None

    rows = wait_until(listed, 30, "Mina and Zundamon listed by the bridge")
    assert rows["Zundamon"] == {
        "id": expected_id,
        "name": "Zundamon",
        "status": "online",
        "description": "ずんだ餅の妖精なのだ。",
        "kind": "legacy",
        "url": url,
    }
    assert rows["Mina"]["kind"] == "libp2p"
    assert rows["Mina"]["url"] == f"{bridge.url}/characters/{mina.peer_id}"
    assert [r["name"] for r in bridge.get("/directory?q=zunda").json()["online"]] == ["Zundamon"]
    manifest = bridge.get(f"/characters/{mina.peer_id}/manifest").json()
    assert (manifest["name"], manifest["id"], manifest["souvenirs"]) == ("Mina", mina.peer_id, [])
    assert set(manifest) >= {"icon", "greeting", "description"}
    missing = bridge.get(f"/characters/{expected_id}/manifest")
    assert missing.status_code == 404 and "own URL" in missing.json()["detail"]

    def at_mina() -> dict[str, object] | None:
        found = [e for e in mina.directory()["entries"] if e["peer_id"] == expected_id]
        return found[0] if found else None

    entry = wait_until(at_mina, 30, "Zundamon's vouched entry at Mina")
    assert entry["vouched_by"] == bridge.peer_id
    assert entry["status"] == "online"
    assert entry["addrs"] == [url]


def test_refusals_are_problems_and_honest_traffic_keeps_flowing(bridge: BridgeProcess) -> None:
    with honest_traffic(bridge):

        def refused(response: requests.Response, status: int, words: str) -> None:
            assert response.status_code == status, response.text
            assert response.headers["Content-Type"].startswith(PROBLEM)
            body = response.json()
            assert body["status"] == status and words in body["detail"], body
            assert "Traceback" not in response.text

        url = f"{bridge.url}/register"
        good = {"name": "Zundamon", "url": "https://example.invalid"}
        refused(requests.post(url, json=good, timeout=10), 401, "header is missing")
        refused(
            requests.post(url, json=good, headers={TOKEN_HEADER: "x" * 40}, timeout=10),
            401,
            "wrong token",
        )
        refused(bridge.post("/register", {**good, "extra": 1}), 422, "unknown field(s) 'extra'")
        refused(bridge.post("/register", {"name": "Z"}), 422, "missing field(s) 'url'")
        refused(bridge.post("/register", {**good, "name": "Z" * 65}), 422, "at most 64")
        refused(bridge.post("/register", {**good, "name": 7}), 422, "must be a string")
        refused(bridge.post("/register", ["not", "an", "object"]), 422, "JSON object")
        refused(bridge.post("/register", {**good, "name": "x" * 20_000}), 413, "over 16384 bytes")
        garbage = requests.post(
            url,
            data=b"{nope",
            headers=bridge.headers(**{"Content-Type": "application/json"}),
            timeout=10,
        )
        refused(garbage, 422, "not JSON")
        refused(bridge.get("/nowhere"), 404, "not found")
        nobody = "12D3KooWSiXCe69tnQZaqB6hdHksVBP9kPhfTaTfVEZJ3yDrHFDh"
        knock = {"visitor": {"name": "Z", "url": "https://example.invalid"}, "message": "hi"}
        refused(bridge.post(f"/characters/{nobody}/visit", knock), 404, "no libp2p character")
        refused(
            bridge.post(f"/characters/{nobody}/visit", {**knock, "visitor": {"name": "Z"}}),
            422,
            "missing field(s) 'url'",
        )
        refused(
            bridge.post(f"/characters/{nobody}/visit", {**knock, "message": "x" * 501}),
            422,
            "at most 500",
        )
        chat = {"conversation_id": "0" * 32, "message": "hi"}
        refused(bridge.post(f"/characters/{nobody}/chat", chat), 404, "conversation_id")
        # Visits have the seed's rate: 3 a minute per address.
        knocks = [
            bridge.post(f"/characters/{nobody}/visit", knock, **{"X-Forwarded-For": "198.51.100.7"})
            for _ in range(5)
        ]
        assert [r.status_code for r in knocks] == [404, 404, 404, 429, 429]
        # A flood from one address: refused with Retry-After; others are not affected.
        flood = [bridge.get("/directory", **{"X-Forwarded-For": "198.51.100.9"}) for _ in range(30)]
        limited = [r for r in flood if r.status_code == 429]
        assert limited, [r.status_code for r in flood]
        refused(limited[0], 429, "too many")
        assert int(limited[0].headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        ("garbage", "not JSON"),
        ("huge", "more than 65536 bytes"),
        ("silent", "did not answer within"),
    ],
)
def test_a_participant_that_answers_badly_is_not_registered(
    bridge: BridgeProcess, behaviour: str, words: str
) -> None:
    with honest_traffic(bridge), legacy_participant(behaviour) as url:  # type: ignore[arg-type]
        response = bridge.post("/register", {"name": "Broken", "url": url})
    assert response.status_code == 502, response.text
    assert words in response.json()["detail"]
    assert bridge.get("/directory").json()["online"] == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.invalid", "must be https"),
        ("https://user:pw@example.invalid", "credentials"),
        ("https://127.0.0.1:8443", "127.0.0.1"),
        ("https://10.1.2.3", "10.1.2.3"),
        ("https://169.254.169.254/latest", "169.254.169.254"),
        ("https://[::1]:8443", "::1"),
        ("https://localhost:8443", "loopback, private"),
        ("https://no-such-host.invalid", "does not resolve"),
    ],
)
def test_a_url_the_bridge_must_not_call_is_refused_before_any_request(
    tmp_path: Path, url: str, words: str
) -> None:
    guarded = BridgeProcess(tmp_path / "guarded", extra=["--trust-proxy"])
    try:
        guarded.wait_ready()
        with honest_traffic(guarded):
            response = guarded.post("/register", {"name": "Sneaky", "url": url})
        assert response.status_code == 422, response.text
        assert response.headers["Content-Type"].startswith(PROBLEM)
        assert words in response.json()["detail"]
    finally:
        guarded.stop()


@pytest.mark.parametrize("slow", ["headers", "body"])
def test_a_slow_client_is_cut_off_while_others_are_served(bridge: BridgeProcess, slow: str) -> None:
    """Slowloris: headers (hypercorn: complete within 5 s) or a body (10 s) sent a byte at
    a time; the connection is closed, and an honest request meanwhile is answered."""
    host, port = bridge.url.removeprefix("http://").rsplit(":", 1)
    with honest_traffic(bridge), socket.create_connection((host, int(port)), timeout=30) as sock:
        head = f"POST /register HTTP/1.1\r\nHost: {host}\r\n{TOKEN_HEADER}: {TOKEN}\r\n"
        if slow == "body":
            head += "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
        sock.sendall(head.encode())
        assert bridge.get("/directory").status_code == 200
        closed = False
        for _ in range(40):  # a byte a second, at most 40 s
            try:
                sock.sendall(b"x")
                sock.settimeout(1.0)
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
            closed = True  # an answer (408 for the body) or the end of the stream
            if data:
                assert data.startswith(b"HTTP/1.1 408"), data[:80]
            break
        assert closed, "the slow client was never cut off"


@pytest.mark.skipif(os.geteuid() != 0, reason="souvenir plugins run sandboxed, which needs root")
def test_the_manifest_shows_the_souvenirs_a_character_lends(
    tmp_path: Path, bridge: BridgeProcess, nodes: list[NodeProcess]
) -> None:
    time_plugin = {
        "name": "time",
        "command": ["mcp-server-time", "--local-timezone", "UTC"],
        "tools": {"get_current_time": "lend"},
    }
    character = write_character(tmp_path, "Kai", extra={"souvenirs": [time_plugin]})
    kai = NodeProcess(character, tmp_path / "data-kai", bootstrap=bridge.addrs)
    nodes.append(kai)
    kai.wait_ready()

    def lent() -> list[dict[str, object]] | None:
        answer = bridge.get(f"/characters/{kai.peer_id}/manifest")
        souvenirs = answer.json().get("souvenirs") if answer.status_code == 200 else None
        return souvenirs or None

    [souvenir] = wait_until(lent, 60, "Kai's souvenir in the bridge's manifest")
    assert souvenir["name"] == "get_current_time" and souvenir["readOnly"] is True
    assert "time" in str(souvenir["description"]).lower()
    assert re.fullmatch(r"[0-9a-f]{32}", str(souvenir["schemaDigest"]))
