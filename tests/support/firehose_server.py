"""A firehose web app on a real server (fan-out and hypercorn, loopback, port 0) over an in-memory
hub, and the abuses it must refuse, as specified: shared by the WebSocket tests
(``tests/firehose/test_ws.py``) and the load tests, which run the abuses again while a
healthy viewer takes a steady stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionRejected

from firehose.app import FirehoseApp, serve_app
from firehose.hub import Hub, MemoryBacklog
from firehose.limits import ViewerLimits
from tests.support.firehose_net import BOB, Net
from tests.support.firehose_wire import open_lines
from tests.support.websocket import open_websocket


@dataclass
class Server:
    url: str
    hub: Hub
    web: FirehoseApp
    net: Net

    @property
    def ws(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")


@asynccontextmanager
async def open_server(send_timeout_s: float = 5.0, **limits: Any) -> AsyncIterator[Server]:
    backlog = MemoryBacklog()
    hub = Hub(backlog, ViewerLimits(**limits))
    web = FirehoseApp(
        hub,
        hub.limits,
        directory=lambda: [DIRECTORY_ROW],
        stats=lambda: {"x": 1},
        send_timeout_s=send_timeout_s,
    )
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_app, web, "127.0.0.1", 0))
        yield Server(url, hub, web, Net(hub, backlog))
        nursery.cancel_scope.cancel()


DIRECTORY_ROW = {
    "peer_id": BOB.peer_id_str,
    "name": "Bob",
    "description": "a test character",
    "tags": ["t"],
    "status": "online",
    "last_seen_ms": 1,
    "addrs": ["/ip4/10.0.0.1/tcp/1"],
    "self": False,
}


async def assert_refused(url: str, status: int, reason: str, **kwargs: Any) -> None:
    """The upgrade is answered with HTTP ``status`` and a JSON ``error`` of ``reason``."""
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket(url, **kwargs):
            pass
    assert refused.value.status_code == status
    assert json.loads(refused.value.body or b"{}")["error"] == reason


# -- the abuses, as specified ----------------------------------------------------------


async def refuse_chatty_viewer(server: Server) -> None:
    """A viewer that sends anything is told ``closing read_only`` and closed with 1008."""
    async with open_lines(server.ws) as chatty:
        assert (await chatty.next())["type"] == "hello"
        await chatty.ws.send_message("let me publish")
        assert await chatty.closed_with() == (1008, "read_only")
        assert chatty.rest()[-1] == {"type": "closing", "reason": "read_only"}


async def refuse_extra_connections(server: Server) -> None:
    """Up to ``max_per_ip`` viewers from this address are served; the next gets 429."""
    limit = server.web.limits.max_per_ip
    async with AsyncExitStack() as stack:
        for _ in range(limit):
            if server.web.connections.open_for("127.0.0.1") >= limit:
                break
            viewer = await stack.enter_async_context(open_lines(server.ws))
            assert (await viewer.next())["type"] == "hello"
        assert server.web.connections.open_for("127.0.0.1") == limit
        await assert_refused(server.ws, 429, "too_many_connections")


async def refuse_oversized_frame(server: Server) -> None:
    """A frame above ``max_frame_bytes`` closes the viewer with 1009 (message too big)."""
    async with open_lines(server.ws) as big:
        assert (await big.next())["type"] == "hello"
        await big.ws.send_message("x" * (server.web.limits.max_frame_bytes * 4))
        code, _ = await big.closed_with()
        assert code == 1009


async def refuse_foreign_origin(server: Server) -> None:
    """A browser page from another origin is refused before the upgrade (403)."""
    evil = [(b"origin", b"https://evil.example")]
    await assert_refused(server.ws, 403, "origin", extra_headers=evil)


async def refuse_too_many_filters(server: Server) -> None:
    """More filter values than ``max_filters`` are refused before the upgrade (400)."""
    query = "&".join(["kind=action"] * (server.web.limits.max_filters + 1))
    await assert_refused(f"{server.ws}?{query}", 400, "too_many_filters")


__all__ = [
    "DIRECTORY_ROW",
    "Server",
    "assert_refused",
    "open_server",
    "refuse_chatty_viewer",
    "refuse_extra_connections",
    "refuse_foreign_origin",
    "refuse_oversized_frame",
    "refuse_too_many_filters",
]
