"""The owner's dashboard over real HTTP: who may use it, the status switch, memory edits,
the live log.

Three layers: pure checks (the bind rule, the request guard, the token, the live log's
fan-out); a node run in this process with :func:`serve_dashboard` called directly (the
code the CLI wires, and the only way to look inside the node while it serves); and real
``roomverse node --dashboard 127.0.0.1:0`` processes, two characters on fake engines
with a real visit between them, driven from outside like an owner would.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionRejected

from keys import Identity
from keys.errors import ConfigError
from node.character import CharacterNode
from node.dashboard import check_bind
from node.dashboard.guard import RequestFacts, refusal
from node.dashboard.live import LiveLog, Viewer
from node.dashboard.serve import new_token
from node.events import EventLog
from node.storage.memory import VisitStart
from registry_crdt import Status
from tests.support.dashboard import (
    TOKEN_HEADER,
    dashboard_in_process,
    dashboard_url_of,
    split_url,
    visited_party,
)
from tests.support.procs import REPO, NodeProcess, roomverse_argv, write_character
from tests.support.visit_party import in_thread
from tests.support.websocket import open_websocket

NO_VISIT = "0" * 32
WAIT_S = 30.0
PII_EMAIL = "mina.private@example.com"


# -- pure -------------------------------------------------------------------------------------


def test_bind_is_loopback_unless_the_owner_says_otherwise() -> None:
    assert check_bind("127.0.0.1:0", allow_public=False).port == 0
    assert check_bind("localhost:8765", allow_public=False).loopback
    assert check_bind("[::1]:8765", allow_public=False).host == "::1"
    for public in ("0.0.0.0:8765", "192.168.1.20:80", "[::]:1", "example.com:80"):
        with pytest.raises(ConfigError) as refused:
            check_bind(public, allow_public=False)
        assert refused.value.field == "--dashboard"
        assert "--dashboard-public" in str(refused.value)
    assert not check_bind("0.0.0.0:8765", allow_public=True).loopback
    for bad in ("127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "127.0.0.1:８０"):
        with pytest.raises(ConfigError, match="HOST:PORT"):
            check_bind(bad, allow_public=True)


def test_guard_refuses_what_it_should() -> None:
    token = "t" * 43

    def facts(**changes: Any) -> RequestFacts:
        base: dict[str, Any] = {
            "method": "POST",
            "host": "127.0.0.1:5000",
            "origin": "http://127.0.0.1:5000",
            "token": token,
        }
        return RequestFacts(**{**base, **changes})

    assert refusal(facts(), token, loopback_port=5000) is None
    assert refusal(facts(origin=None), token, loopback_port=5000) is None  # not a browser
    assert refusal(facts(host="localhost:5000", origin=None), token, loopback_port=5000) is None
    cases = {
        "no token": (facts(token=None), 401),
        "empty token": (facts(token=""), 401),
        "wrong token": (facts(token="x" * 43), 403),
        "prefix of the token": (facts(token=token[:-1]), 403),
        "foreign origin": (facts(origin="http://evil.example"), 403),
        "null origin": (facts(origin="null"), 403),
        "rebinding host": (facts(host="evil.example:5000", origin=None), 403),
        "other port": (facts(host="127.0.0.1:5001", origin=None), 403),
    }
    for name, (request, status) in cases.items():
        refused = refusal(request, token, loopback_port=5000)
        assert refused is not None and refused.status == status, name
    # Public on the owner's word: any Host, still the token and same-origin rules.
    assert refusal(facts(host="10.0.0.5:80", origin=None), token, loopback_port=None) is None
    assert refusal(facts(host="10.0.0.5:80", token="x"), token, loopback_port=None) is not None


def test_token_reads_back_unchanged_in_the_printed_url() -> None:
    from node.privacy.log_scrub import scrub_log_text

    url = "http://127.0.0.1:8765/"
    tokens = {new_token(url) for _ in range(300)}
    assert len(tokens) == 300
    for token in tokens:
        assert len(token) >= 43
        assert scrub_log_text(f"{url}?token={token}") == f"{url}?token={token}"


async def test_live_log_scrubs_and_drops_a_viewer_that_stops_reading() -> None:
    events = EventLog("json", stream=io.StringIO())
    live = LiveLog(viewer_queue=4, backlog=3)
    async with trio.open_nursery() as nursery:
        await nursery.start(live.run, events)
        with live.viewer() as reader, live.viewer() as stalled:
            got: list[dict[str, Any]] = []

            async def read(viewer: Viewer) -> None:
                async for record in viewer.receive:
                    got.append(record)

            nursery.start_soon(read, reader)
            for i in range(10):
                events.emit("visit_line", text=f"line {i}, write to {PII_EMAIL}", mine=False)
                await trio.testing.wait_all_tasks_blocked()
            assert stalled.dropped and stalled.cancel.cancel_called
            assert not reader.dropped
            assert [r["fields"]["text"] for r in got] == [
                f"line {i}, write to [email]" for i in range(10)
            ]
            assert {r["group"] for r in got} == {"visit"}
            assert [r["id"] for r in got] == list(range(1, 11))
            assert live.dropped_viewers == 1
            # A page that reconnects gets what it missed that is still kept.
            with live.viewer(since=8) as late:
                assert [r["id"] for r in late.backlog] == [9, 10]
        nursery.cancel_scope.cancel()


# -- a node in this process -----------------------------------------------------------------


async def remember_a_visit(node: CharacterNode, partner: Identity) -> str:
    """Memory as a finished visit from ``partner`` leaves it (first line, one reply, a
    relation), written through the agent's own memory API."""
    assert node.agent is not None
    memory = node.agent.memory
    visit = "ab" * 16
    start = VisitStart(visit, partner.peer_id_str, "Bo", "host", None, False, 1_000, "Hello!")
    await memory.open_visit(start)
    await memory.add_message(visit, 0, partner.peer_id_str, "Hello!", 1_000)
    await memory.add_message(visit, 1, node.identity.peer_id_str, "Welcome, Bo.", 2_000)
    await memory.close_visit(visit, "completed", 3_000, 2, None, None, summary="A kind chat.")
    await memory.update_relation(
        partner.peer_id_str,
        "Bo",
        affinity=30,
        visit_count_delta=1,
        completed_delta=1,
        last_visit_ms=3_000,
        summary="Bo is kind.",
        now_ms=3_000,
    )
    return visit


def check_access(base: str, token: str, peer: str, *, visit: str = NO_VISIT) -> None:
    """Every endpoint refuses a request without the token (401) or with a wrong one (403),
    a foreign Origin or a foreign Host; malformed input gets a clear 4xx JSON error."""
    endpoints = [
        ("GET", "/"),
        ("GET", "/api/status"),
        ("POST", "/api/status"),
        ("GET", "/api/visits"),
        ("GET", f"/api/visits/{visit}"),
        ("DELETE", f"/api/visits/{visit}"),
        ("POST", f"/api/visits/{visit}/end"),
        ("GET", "/api/relations"),
        ("GET", f"/api/relations/{peer}"),
        ("POST", f"/api/relations/{peer}"),
        ("DELETE", f"/api/relations/{peer}"),
        ("GET", "/api/directory"),
    ]
    big = b"{}" + b" " * 20_000
    with httpx.Client(base_url=base, timeout=10) as client:
        for method, path in endpoints:
            body = {"status": "away"} if path == "/api/status" else {"notes": "x"}
            json_body = body if method == "POST" else None
            bare = client.request(method, path, json=json_body)
            assert bare.status_code == 401, (method, path, bare.text)
            assert "token" in bare.json()["error"]
            wrong = client.request(method, path, json=json_body, headers={TOKEN_HEADER: "nope"})
            assert wrong.status_code == 403, (method, path)
            wrong_q = client.request(method, path, json=json_body, params={"token": token[:-1]})
            assert wrong_q.status_code == 403, (method, path)
            host = client.request(
                method, path, json=json_body, headers={TOKEN_HEADER: token, "Host": "evil.example"}
            )
            assert host.status_code == 403, (method, path)
            if method != "GET":
                foreign = client.request(
                    method,
                    path,
                    json=json_body,
                    headers={TOKEN_HEADER: token, "Origin": "http://evil.example"},
                )
                assert foreign.status_code == 403, (method, path)
                assert "cross-origin" in foreign.json()["error"]
        # The page's own code is public (it holds nothing), the page itself is not.
        assert client.get("/static/dashboard.js").status_code == 200
        assert (
            client.get("/", params={"token": token}).headers["content-type"].startswith("text/html")
        )
        auth = {TOKEN_HEADER: token}
        bad_inputs: list[tuple[str, str, dict[str, Any], int]] = [
            ("/api/status", "POST", {"content": b"{nope", "headers": _json_type()}, 400),
            ("/api/status", "POST", {"content": b"[1]", "headers": _json_type()}, 400),
            ("/api/status", "POST", {"json": {"status": "gone"}}, 400),
            ("/api/status", "POST", {"json": {"status": "away", "x": 1}}, 400),
            ("/api/status", "POST", {"content": b"status=away"}, 415),
            (
                "/api/status",
                "POST",
                {"content": big, "headers": _json_type()},
                413,
            ),
            (f"/api/relations/{peer}", "POST", {"json": {"notes": 5}}, 400),
            (f"/api/relations/{peer}", "POST", {"json": {"notes": "x" * 4001}}, 400),
            (f"/api/relations/{peer}", "POST", {"json": {}}, 400),
            ("/api/relations/not-a-peer", "GET", {}, 400),
            ("/api/visits/XYZ", "GET", {}, 400),
            ("/api/visits?limit=0", "GET", {}, 400),
            ("/api/visits?limit=" + "9" * 5000, "GET", {}, 400),
            ("/api/directory?search=" + "a" * 201, "GET", {}, 400),
            (f"/api/visits/{NO_VISIT}", "DELETE", {}, 404),
            (f"/api/visits/{NO_VISIT}/end", "POST", {"json": {}}, 404),
            (f"/api/visits/{visit}/end", "POST", {"json": {}}, 404),
            ("/api/visits/XYZ/end", "POST", {"json": {}}, 400),
            (f"/api/visits/{NO_VISIT}/end", "POST", {"json": {"now": True}}, 400),
            (f"/api/visits/{NO_VISIT}/end", "POST", {"content": b"end"}, 415),
            ("/api/nothing-here", "GET", {}, 404),
        ]
        for path, method, kwargs, status in bad_inputs:
            headers = {**auth, **kwargs.pop("headers", {})}
            reply = client.request(method, path, headers=headers, **kwargs)
            assert reply.status_code == status, (method, path[:60], reply.text)
            assert reply.json()["error"], (method, path[:60])


def _json_type() -> dict[str, str]:
    return {"Content-Type": "application/json"}


def own_status(node: CharacterNode) -> Status:
    """The node's own status, read now (mypy would keep an earlier ``is`` narrowing of
    ``node.directory.status`` across the requests that change it)."""
    return node.directory.status


async def test_in_process_dashboard_guards_switches_and_edits(tmp_path: Path) -> None:
    partner = Identity.generate()
    async with dashboard_in_process(tmp_path) as served:
        node = served.node
        ready = [json.loads(line) for line in served.events.getvalue().splitlines()]
        printed = [e for e in ready if e["event"] == "dashboard_ready"]
        assert printed and printed[0]["url"] == f"{served.base}/?token={served.token}"
        visit = await remember_a_visit(node, partner)
        await in_thread(check_access, served.base, served.token, partner.peer_id_str, visit=visit)
        assert own_status(node) is Status.ONLINE  # no refused request changed it

        async with httpx.AsyncClient(base_url=served.base, headers=served.auth) as client:
            status = (await client.get("/api/status")).json()
            assert status["name"] == "Mina" and status["own_status"] == "online"
            assert status["mdns"] is False and status["agent"]["tier"]
            assert status["clock"]["state"] == "unknown"  # no peer heard from yet
            for peer in (Identity.generate() for _ in range(3)):
                node.clock_skew.sample(peer.peer_id, 92.0)  # we read 92 s ahead of them
            clock = (await client.get("/api/status")).json()["clock"]
            assert clock["state"] == "ahead" and clock["offset_s"] == 92.0
            assert clock["message"].startswith("your clock is 92 s ahead of your peers")
            reply = await client.post("/api/status", json={"status": "away"})
            assert reply.json() == {"ok": True, "status": "away"}
            assert own_status(node) is Status.AWAY

            path = f"/api/relations/{partner.peer_id_str}"
            edited = await client.post(path, json={"notes": f"met at the fair, {PII_EMAIL}"})
            assert edited.status_code == 200
            assert node.agent is not None
            stored = await node.agent.memory.relation(partner.peer_id_str)
            assert stored is not None and stored.notes == "met at the fair, [email]"
            assert stored.summary == "Bo is kind."
            listed = (await client.get("/api/relations")).json()["relations"]
            assert [(r["partner_name"], r["tier"]) for r in listed] == [("Bo", "acquaintance")]

            conversation = (await client.get(f"/api/visits/{visit}")).json()
            assert [m["text"] for m in conversation["messages"]] == ["Hello!", "Welcome, Bo."]
            assert (await client.delete(f"/api/visits/{visit}")).status_code == 200
            assert await node.agent.memory.conversation(visit) is None
            assert (await client.delete(path)).status_code == 200
            assert await node.agent.memory.relation(partner.peer_id_str) is None


async def test_in_process_live_log_streams_scrubbed_events(tmp_path: Path) -> None:
    async with dashboard_in_process(tmp_path) as served:
        ws_base = served.base.replace("http://", "ws://")
        for refused_url, headers in (
            (f"{ws_base}/api/live", []),
            (f"{ws_base}/api/live?token=nope", []),
            (f"{ws_base}/api/live?token={served.token}", [(b"Origin", b"http://evil.example")]),
        ):
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket(refused_url, extra_headers=headers):
                    pass
            assert rejected.value.status_code in (401, 403)

        origin = [(b"Origin", served.base.encode("ascii"))]
        async with open_websocket(
            f"{ws_base}/api/live?token={served.token}", extra_headers=origin
        ) as ws:
            served.node.events.emit("visit_line", text=f"mail me at {PII_EMAIL}", mine=False)
            with trio.fail_after(WAIT_S):
                while True:
                    record = json.loads(await ws.get_message())
                    if record.get("event") == "visit_line":
                        break
            assert record["group"] == "visit"
            assert record["fields"]["text"] == "mail me at [email]"
            # The page never sends: a viewer that does is told why and closed.
            await ws.send_message("hello")
            with trio.fail_after(WAIT_S):
                while (closing := json.loads(await ws.get_message()))["type"] != "closing":
                    pass
            assert closing["reason"] == "read_only"


# -- real node processes ----------------------------------------------------------------------


@pytest.fixture
def dashboard_node(tmp_path: Path) -> Iterator[NodeProcess]:
    node = NodeProcess(
        write_character(tmp_path, "Mina"),
        tmp_path / "data-mina",
        extra=["--dashboard", "127.0.0.1:0"],
    )
    try:
        node.wait_ready()
        yield node
    finally:
        node.stop()


def test_cli_dashboard_refuses_a_public_address_without_the_flag(tmp_path: Path) -> None:
    character = write_character(tmp_path, "Mina")
    argv = roomverse_argv(
        "node", "--character", str(character), "--data-dir", str(tmp_path / "d"), "--no-mdns"
    )
    done = subprocess.run(
        [*argv, "--dashboard", "0.0.0.0:0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=_env(),
    )
    assert done.returncode == 2, done.stderr
    assert "--dashboard" in done.stderr and "--dashboard-public" in done.stderr
    assert "ready" not in done.stdout


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_cli_dashboard_access_and_status_switch(dashboard_node: NodeProcess) -> None:
    base, token = split_url(dashboard_url_of(dashboard_node))
    check_access(base, token, dashboard_node.peer_id)
    assert dashboard_node.status()["own_status"] == "online"
    with httpx.Client(base_url=base, headers={TOKEN_HEADER: token}, timeout=10) as client:
        status = client.get("/api/status").json()
        assert status["peer_id"] == dashboard_node.peer_id
        assert status["addrs"] and status["mdns"] is False
        assert client.post("/api/status", json={"status": "away"}).json()["status"] == "away"
        assert dashboard_node.status()["own_status"] == "away"  # `roomverse status` agrees
        assert client.post("/api/status", json={"status": "online"}).status_code == 200
        entries = client.get("/api/directory", params={"search": "mina"}).json()["entries"]
        assert [e["name"] for e in entries] == ["Mina"]
        assert client.get("/api/directory", params={"search": "nobody"}).json()["entries"] == []


async def test_cli_dashboard_memory_after_a_real_visit(tmp_path: Path) -> None:
    async with visited_party(tmp_path) as (_, mina, bo):
        base, token = split_url(await in_thread(dashboard_url_of, mina.node))
        async with httpx.AsyncClient(base_url=base, headers={TOKEN_HEADER: token}) as client:
            visits = (await client.get("/api/visits")).json()["visits"]
            assert [(v["partner_name"], v["role"], v["outcome"]) for v in visits] == [
                ("Bo", "host", "completed")
            ]
            visit = visits[0]["visit_id"]
            assert visits[0]["first_line"] and visits[0]["receipt"] is True
            talk = (await client.get(f"/api/visits/{visit}")).json()
            assert talk["messages"] and talk["self_id"] == mina.node.peer_id

            relation_path = f"/api/relations/{bo.node.peer_id}"
            listed = (await client.get("/api/relations")).json()["relations"]
            assert [r["partner_id"] for r in listed] == [bo.node.peer_id]
            assert listed[0]["tier"] and "notes" not in listed[0]
            edit = {"notes": "Bo likes trains", "summary": "Bo talks about trains."}
            assert (await client.post(relation_path, json=edit)).status_code == 200
            relation = (await client.get(relation_path)).json()["relation"]
            assert (relation["notes"], relation["summary"]) == (edit["notes"], edit["summary"])
            # The visit's other memory is untouched, as the control socket shows.
            remembered = await mina.memory("relations")
            assert [r["partner_id"] for r in remembered["relations"]] == [bo.node.peer_id]

            assert (await client.delete(f"/api/visits/{visit}")).status_code == 200
            assert (await mina.memory("visits"))["visits"] == []
            assert (await client.get(f"/api/visits/{visit}")).status_code == 404
            assert (await client.delete(relation_path)).status_code == 200
            assert (await mina.memory("relations"))["relations"] == []
