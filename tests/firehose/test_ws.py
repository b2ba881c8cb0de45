"""The firehose web app on a real hypercorn server (loopback, port 0): the WebSocket
protocol with real clients (trio-websocket, frames read as JSON lines), HTTP with httpx,
and every refusal; after each abuse the firehose keeps serving.

The server and the abuses as specified (``refuse_*``) are in
``tests/support/firehose_server.py``; ``tests/firehose/test_load.py`` runs the abuses again
while a healthy viewer takes a steady stream."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request

from firehose.limits import (
    ConnectionCounter,
    Filters,
    ViewerLimits,
    ViewerRefused,
    check_origin,
    parse_request,
)
from tests.support.firehose_net import ALICE, BOB
from tests.support.firehose_server import (
    DIRECTORY_ROW,
    Server,
    assert_refused,
    open_server,
    refuse_chatty_viewer,
    refuse_extra_connections,
    refuse_foreign_origin,
    refuse_oversized_frame,
    refuse_too_many_filters,
)
from tests.support.firehose_wire import WAIT_S, LineClient, open_lines
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.timeout(120)


async def still_serving(server: Server, *watchers: LineClient) -> None:
    """A new viewer is accepted and every watcher gets the next event."""
    async with open_lines(server.ws) as fresh:
        assert (await fresh.next())["type"] == "hello"
        await wait_until_async(
            lambda: server.hub.viewers >= 1 + len(watchers), WAIT_S, "viewer attached"
        )
        event = server.net.send()
        for ws in (fresh, *watchers):
            got = await ws.next()
            assert (got["type"], got["cursor"]) == ("event", event.cursor)


# -- the protocol ------------------------------------------------------------------------


async def test_hello_then_filtered_events() -> None:
    async with open_server() as server:
        url = f"{server.ws}?character={BOB.peer_id_str}&kind=context"
        async with open_lines(url) as bob_contexts, open_lines(server.ws) as all_:
            hello = await bob_contexts.next()
            assert hello == {
                "type": "hello",
                "oldest": 0,
                "latest": 0,
                "filters": {"character": [BOB.peer_id_str], "kind": ["context"]},
            }
            assert (await all_.next())["type"] == "hello"
            await wait_until_async(lambda: server.hub.viewers == 2, WAIT_S, "two viewers")
            sent = [server.net.send(k, s) for k in ("action", "context") for s in (ALICE, BOB)]
            assert [(await all_.next())["cursor"] for _ in sent] == [e.cursor for e in sent]
            (wanted,) = [e for e in sent if e.kind == "context" and e.sender == BOB.peer_id_str]
            got = await bob_contexts.next()
            assert (got["cursor"], got["kind"], got["from"]) == (
                wanted.cursor,
                "context",
                BOB.peer_id_str,
            )
            assert got["body"] == {"type": "text", "text": "hi"} and got["name"] == "Alice"


async def test_queued_events_share_a_frame_within_bounds() -> None:
    """Events queued while a viewer's previous frame was going out travel together, at
    most ``frame_objects`` to a frame; the order is the cursor order."""
    async with open_server(frame_objects=8) as server, open_lines(server.ws) as ws:
        assert (await ws.next())["type"] == "hello"
        await wait_until_async(lambda: server.hub.viewers == 1, WAIT_S, "attached")
        sent = [server.net.send().cursor for _ in range(50)]  # synchronous: all queued
        assert [(await ws.next())["cursor"] for _ in sent] == sent
        assert ws.max_lines == 8 and ws.frames <= 1 + 50 // 8 + 1


async def test_resume_with_cursor_is_inclusive_then_live() -> None:
    async with open_server() as server:
        for _ in range(10):
            server.net.send()
        async with open_lines(f"{server.ws}?cursor=5") as ws:
            hello = await ws.next()
            assert (hello["oldest"], hello["latest"]) == (1, 10)
            assert [(await ws.next())["cursor"] for _ in range(6)] == [5, 6, 7, 8, 9, 10]
            await wait_until_async(lambda: server.hub.viewers == 1, WAIT_S, "viewer attached")
            server.net.send()
            assert (await ws.next())["cursor"] == 11


async def test_cursor_too_old_is_said_before_the_oldest_events() -> None:
    async with open_server() as server:
        for _ in range(10):
            server.net.send()
        server.net.backlog.prune(keep=4)
        async with open_lines(f"{server.ws}?cursor=2") as ws:
            assert (await ws.next())["type"] == "hello"
            assert await ws.next() == {"type": "cursor_too_old", "cursor": 2, "oldest": 7}
            assert [(await ws.next())["cursor"] for _ in range(4)] == [7, 8, 9, 10]


async def test_a_viewer_that_sends_data_is_closed_read_only() -> None:
    async with open_server() as server, open_lines(server.ws) as healthy:
        assert (await healthy.next())["type"] == "hello"
        await refuse_chatty_viewer(server)
        await wait_until_async(lambda: server.hub.viewers == 1, WAIT_S, "chatty viewer gone")
        await still_serving(server, healthy)
        assert server.hub.closed["read_only"] == 1


async def test_connections_per_ip_are_capped() -> None:
    async with open_server(max_per_ip=3) as server, open_lines(server.ws) as healthy:
        assert (await healthy.next())["type"] == "hello"
        await refuse_extra_connections(server)
        await wait_until_async(
            lambda: server.web.connections.total == 1, WAIT_S, "the extra ones gone"
        )
        await still_serving(server, healthy)
        assert server.hub.refused["too_many_connections"] == 1


async def test_an_oversized_frame_closes_the_viewer() -> None:
    async with open_server(max_frame_bytes=1024) as server, open_lines(server.ws) as ok:
        assert (await ok.next())["type"] == "hello"
        await refuse_oversized_frame(server)
        await wait_until_async(lambda: server.web.connections.total == 1, WAIT_S, "big viewer gone")
        await still_serving(server, ok)


async def test_foreign_origin_is_refused_unless_allowed() -> None:
    allowed = "https://viewer.example"
    async with open_server(allow_origins=frozenset({allowed})) as server:
        await refuse_foreign_origin(server)
        for origin in (allowed, f"http://{server.host}"):
            async with open_lines(server.ws, extra_headers=[(b"origin", origin.encode())]) as ws:
                assert (await ws.next())["type"] == "hello"
        await still_serving(server)


async def test_too_many_or_bad_filters_are_refused() -> None:
    async with open_server(max_filters=4) as server:
        await refuse_too_many_filters(server)
        many = "&".join(["kind=action"] * 3 + [f"character={BOB.peer_id_str}"] * 2)
        for query, reason in (
            (many, "too_many_filters"),
            ("character=mallory", "bad_filter"),
            ("kind=visit", "bad_filter"),
            ("cursor=-1", "bad_cursor"),
        ):
            await assert_refused(f"{server.ws}?{query}", 400, reason)
        await still_serving(server)


async def test_a_stalled_viewer_is_dropped_and_cut_off() -> None:
    """A viewer that stops reading fills its queue and is dropped at once; the kernel
    cuts its socket once nothing is acknowledged for the send timeout; others get all."""
    async with open_server(queue_size=16, send_timeout_s=1.0) as server:
        web, hub = server.web, server.hub
        async with (
            open_lines(server.ws) as healthy,
            open_lines(server.ws, message_queue_size=0) as stalled,
        ):
            for ws in (healthy, stalled):
                assert (await ws.next())["type"] == "hello"
            await wait_until_async(lambda: hub.viewers == 2, WAIT_S, "both attached")
            text = "x" * 8000  # big events fill the socket buffers quickly
            for cursor in range(1, 2000):
                server.net.send("context", ALICE, {"type": "text", "text": text})
                assert (await healthy.next())["cursor"] == cursor
                if hub.stats()["dropped_viewers"]:
                    break
            assert hub.stats()["dropped_viewers"] == 1 and hub.viewers == 1
            (gone,) = hub.departures
            assert gone.reason == "slow_consumer" and gone.filled_at is not None
            assert gone.closed_at >= gone.filled_at
            await wait_until_async(lambda: web.connections.total == 1, WAIT_S, "stalled socket cut")
            await still_serving(server, healthy)


async def test_a_viewer_that_never_answers_pings_is_cut() -> None:
    """A client that completes the handshake, then neither reads nor answers the
    firehose's pings (a dead peer behind a NAT, say) is cut after two ping intervals;
    one that answers (trio-websocket does) stays."""
    async with open_server(ping_interval_s=0.5) as server, open_lines(server.ws) as alive:
        assert (await alive.next())["type"] == "hello"
        stream = await trio.open_tcp_stream("127.0.0.1", int(server.host.rsplit(":", 1)[1]))
        async with stream:
            client = WSConnection(ConnectionType.CLIENT)
            await stream.send_all(client.send(Request(host=server.host, target="/ws")))
            await wait_until_async(lambda: server.hub.viewers == 2, WAIT_S, "both attached")
            await wait_until_async(
                lambda: server.hub.closed["ping_timeout"] == 1, WAIT_S, "the silent one cut"
            )
            with trio.fail_after(WAIT_S):
                while await stream.receive_some(65536):  # pings, then the end
                    pass
        assert server.hub.viewers == 1
        await still_serving(server, alive)


async def test_http_pages_and_api() -> None:
    async with open_server() as server, httpx.AsyncClient(base_url=server.url) as http:
        page = await http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert (await http.get("/static/../app.py")).status_code == 404
        directory = (await http.get("/api/directory")).json()
        assert directory == {
            "entries": [
                {
                    k: DIRECTORY_ROW[k]
                    for k in ("peer_id", "name", "description", "tags", "status", "last_seen_ms")
                }
            ]
        }
        stats = (await http.get("/api/stats")).json()
        assert stats["viewers"] == 0 and stats["x"] == 1 and stats["connections"] == 0


async def test_shutdown_tells_viewers_why() -> None:
    async with open_server() as server, open_lines(server.ws) as ws:
        assert (await ws.next())["type"] == "hello"
        await wait_until_async(lambda: server.hub.viewers == 1, WAIT_S, "attached")
        server.hub.close_all("server_shutdown")
        assert await ws.closed_with() == (1001, "server_shutdown")
        assert ws.rest() == [{"type": "closing", "reason": "server_shutdown"}]
        with trio.fail_after(WAIT_S):
            await server.web.wait_idle()


# -- the pure rules ----------------------------------------------------------------------


def test_parse_request_reads_filters_and_cursor() -> None:
    request = parse_request(
        {"character": [BOB.peer_id_str], "kind": ["context"], "cursor": ["42"]}, 16
    )
    assert request.filters == Filters(frozenset({BOB.peer_id_str}), frozenset({"context"}))
    assert request.cursor == 42
    assert parse_request({}, 16).filters == Filters() and parse_request({}, 16).cursor is None
    for query in ({"cursor": ["1", "2"]}, {"cursor": ["1e3"]}, {"cursor": ["９"]}):
        with pytest.raises(ViewerRefused):
            parse_request(query, 16)


def test_origin_rules() -> None:
    check_origin(None, "h:1", frozenset())
    check_origin("http://h:1", "h:1", frozenset())
    check_origin("HTTPS://Other:2/", "h:1", frozenset({"https://other:2"}))
    for origin in ("http://h:2", "null", "file://h:1"):
        with pytest.raises(ViewerRefused) as refused:
            check_origin(origin, "h:1", frozenset())
        assert refused.value.status == 403


def test_connection_counter() -> None:
    counter = ConnectionCounter(2)
    counter.acquire("a")
    counter.acquire("a")
    counter.acquire("b")
    with pytest.raises(ViewerRefused):
        counter.acquire("a")
    counter.release("a")
    counter.acquire("a")
    assert (counter.open_for("a"), counter.total) == (2, 3)
    assert replace(ViewerLimits(), max_per_ip=2).max_per_ip == 2
