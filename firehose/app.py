"""The firehose's web face: the WebSocket ``/ws``, ``/api/directory``, ``/api/stats``,
the viewer page at ``/`` and its files under ``/static/``, on quart-trio + hypercorn.

A viewer connection is three small tasks: a pump that writes the viewer's queue to the
socket as text frames of JSON lines, a watcher that closes the socket if the viewer sends
anything (viewers only read), and, when resuming, the hub's catch-up. Refusals (Origin,
filters, connections per IP) are HTTP answers before the upgrade.

A frame costs the server the same CPU whatever it carries, so frames are what limits how
many viewers one firehose serves: the pump joins whatever is queued (up to 64 objects or
64 KiB), and :meth:`Hub.pace` lets each viewer send once per ``viewers / frames_per_s``
seconds (a full frame goes at once), so that many viewers get fewer, fuller frames and
the total stays within the budget.

The listening socket carries ``TCP_USER_TIMEOUT``: hypercorn writes with a shielded
``send_all``, so a viewer that stops reading would otherwise hold its connection open
for as long as its kernel keeps acknowledging zero-window probes.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, send_from_directory, websocket
from quart_trio import QuartTrio

from firehose.events import REASON_CODES, closing_frame
from firehose.hub import Hub, Viewer
from firehose.limits import (
    ConnectionCounter,
    ViewerLimits,
    ViewerRefused,
    ViewerRequest,
    check_origin,
    parse_request,
)

if TYPE_CHECKING:
    from quart.typing import ResponseReturnValue

    # libp2p pulls in trio-typing, whose trio-stubs shadow trio's own annotations.
    from trio_typing import TaskStatus

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
QUERY_KEYS = ("character", "kind", "cursor")
LISTEN_BACKLOG = 1024
"""Pending connections the kernel queues: a page reload storm of many viewers at once."""
DIRECTORY_FIELDS = ("peer_id", "name", "description", "tags", "status", "last_seen_ms")

DirectoryRows = Callable[[], list[dict[str, Any]]]
ExtraStats = Callable[[], dict[str, Any]]


class FirehoseApp:
    """The quart-trio app (:attr:`app`) over a hub, with its per-IP connection count."""

    def __init__(
        self,
        hub: Hub,
        limits: ViewerLimits,
        *,
        directory: DirectoryRows = list,
        stats: ExtraStats = dict,
    ) -> None:
        self.hub = hub
        self.limits = limits
        self.connections = ConnectionCounter(limits.max_per_ip)
        self._directory = directory
        self._extra_stats = stats
        self._idle = trio.Event()
        self._idle.set()
        self.app = QuartTrio(__name__, static_folder=str(STATIC_DIR))
        self._routes()

    async def wait_idle(self) -> None:
        """Until no viewer connection is open (after :meth:`Hub.close_all`)."""
        await self._idle.wait()

    def stats(self) -> dict[str, Any]:
        return {**self.hub.stats(), "connections": self.connections.total, **self._extra_stats()}

    def _routes(self) -> None:
        app = self.app

        @app.after_request
        async def headers(response: Response) -> Response:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            return response

        @app.get("/")
        async def index() -> Response:
            return await send_from_directory(STATIC_DIR, "index.html")

        @app.get("/api/directory")
        async def directory() -> dict[str, Any]:
            rows = self._directory()
            return {"entries": [{k: row.get(k) for k in DIRECTORY_FIELDS} for row in rows]}

        @app.get("/api/stats")
        async def stats() -> dict[str, Any]:
            return self.stats()

        @app.websocket("/ws")
        async def ws() -> ResponseReturnValue | None:
            return await self._viewer()

    async def _viewer(self) -> ResponseReturnValue | None:
        client = websocket.scope.get("client") or ("?", 0)
        ip = str(client[0])
        try:
            check_origin(
                websocket.headers.get("Origin"),
                websocket.headers.get("Host"),
                self.limits.allow_origins,
            )
            request = parse_request(
                {key: websocket.args.getlist(key) for key in QUERY_KEYS}, self.limits.max_filters
            )
            self.connections.acquire(ip)
        except ViewerRefused as exc:
            self.hub.refused[exc.reason] += 1
            return {"error": exc.reason, "message": str(exc)}, exc.status
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        try:
            await self._serve(request)
        finally:
            self.connections.release(ip)
            if self.connections.total == 0:
                self._idle.set()
        return None

    async def _serve(self, request: ViewerRequest) -> None:
        viewer = await self.hub.attach(request.filters, request.cursor)
        try:
            await websocket.accept()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pump, viewer)
                nursery.start_soon(_refuse_input, viewer)
                if request.cursor is not None:
                    nursery.start_soon(self.hub.catch_up, viewer, request.cursor)
                await viewer.closed.wait()
                nursery.cancel_scope.cancel()
            self.hub.detach(viewer)
            await _goodbye(viewer.reason or "server_shutdown", self.limits.close_grace_s)
        finally:
            self.hub.detach(viewer)


async def _pump(viewer: Viewer) -> None:
    while True:
        await websocket.send(await viewer.next_frame())


async def _refuse_input(viewer: Viewer) -> None:
    await websocket.receive()
    viewer.close("read_only")


async def _goodbye(reason: str, grace_s: float) -> None:
    """Say why, then close; best effort and bounded (the viewer may be gone or stalled)."""
    with trio.move_on_after(grace_s):
        await websocket.send(closing_frame(reason))
        await websocket.close(REASON_CODES.get(reason, 1008), reason)


def listening_socket(host: str, port: int, send_timeout_s: float) -> socket.socket:
    """A bound TCP socket whose connections give up on a peer that acknowledges nothing
    for ``send_timeout_s`` (accepted sockets inherit the option)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_USER_TIMEOUT"):
            sock.setsockopt(
                socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, int(send_timeout_s * 1000))
            )
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def serve_app(
    app: FirehoseApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    sock: socket.socket | None = None,
    send_timeout_s: float = 5.0,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown_trigger`` returns (or cancelled); reports the URL
    (``http://host:port``, the real port when ``port`` is 0). ``sock``: a socket from
    :func:`listening_socket` bound beforehand (then ``host``/``port`` are not used)."""
    if sock is None:
        sock = listening_socket(host, port, send_timeout_s)
    config = Config()
    # hypercorn takes the descriptor over (and closes it when it stops).
    config.bind = [f"fd://{sock.detach()}"]
    config.backlog = LISTEN_BACKLOG
    config.accesslog = None
    # A logger object (not "-") so hypercorn does not install its own stderr handler.
    config.errorlog = logging.getLogger("roomverse.firehose.http")
    config.websocket_max_message_size = app.limits.max_frame_bytes
    config.graceful_timeout = app.limits.close_grace_s
    async with trio.open_nursery() as nursery:

        async def serve_then_stop_pacing(*, task_status: TaskStatus[list[str]]) -> None:
            await serve(app.app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)
            nursery.cancel_scope.cancel()

        nursery.start_soon(app.hub.pace)
        binds: list[str] = await nursery.start(serve_then_stop_pacing)
        task_status.started(binds[0])


__all__ = ["FirehoseApp", "listening_socket", "serve_app"]
