"""``/api/live?since=``: the live log (:mod:`node.dashboard.live`) over a WebSocket, one
JSON record a message. The socket is read-only: a page that sends anything is closed."""

from __future__ import annotations

import contextlib
import json

import trio
from quart import websocket
from quart_trio import QuartTrio

from node.dashboard.api import int_arg
from node.dashboard.live import LiveLog, Viewer

CLOSE_WAIT_S = 1.0
"""How long a closing live-log socket may take to say why (its client may be stuck)."""


def register_live_routes(app: QuartTrio, feed: LiveLog) -> None:
    @app.websocket("/api/live")
    async def live_log() -> None:
        since = int_arg(websocket.args, "since", 0, 0, 2**62)
        await websocket.accept()
        with feed.viewer(since) as viewer:
            await _stream(viewer)


async def _stream(viewer: Viewer) -> None:
    """Send the viewer's records until it is dropped, sends something, or the log ends;
    then say why, briefly, and close."""
    read_only = False

    async def refuse_input() -> None:
        nonlocal read_only
        await websocket.receive()  # the page never sends: anything is a misuse
        read_only = True
        viewer.cancel.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(refuse_input)
        with viewer.cancel:
            for record in viewer.backlog:
                await websocket.send(json.dumps(record))
            async for record in viewer.receive:
                await websocket.send(json.dumps(record))
        nursery.cancel_scope.cancel()
    if viewer.dropped:
        reason, code = "slow_consumer", 1008
    elif read_only:
        reason, code = "read_only", 1008
    else:
        reason, code = "server_shutdown", 1001
    with trio.move_on_after(CLOSE_WAIT_S), contextlib.suppress(Exception):
        await websocket.send(json.dumps({"type": "closing", "reason": reason}))
        await websocket.close(code, reason)
