"""The firehose's web face: ``/ws`` (the fan-out, :mod:`firehose.fanout`) and, on
quart-trio + hypercorn, ``/api/directory``, ``/api/stats``, the viewer page at ``/`` and
its files under ``/static/``, all on one port (:mod:`firehose.front` routes).

The listening socket carries ``TCP_USER_TIMEOUT`` (accepted sockets inherit it): a viewer
that stops acknowledging is cut by the kernel after ``send_timeout_s``, as a backstop to
the fan-out's own write deadline (the same time).
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
from quart import Response, send_from_directory
from quart_trio import QuartTrio

from firehose.fanout import Fanout
from firehose.front import private_socket, serve_front
from firehose.hub import Hub
from firehose.limits import ViewerLimits

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose trio-stubs shadow trio's own annotations.
    from trio_typing import TaskStatus

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
LISTEN_BACKLOG = 1024
"""Pending connections the kernel queues: a page reload storm of many viewers at once."""
DIRECTORY_FIELDS = ("peer_id", "name", "description", "tags", "status", "last_seen_ms")

DirectoryRows = Callable[[], list[dict[str, Any]]]
ExtraStats = Callable[[], dict[str, Any]]


class FirehoseApp:
    """The quart-trio app (:attr:`app`) and the ``/ws`` fan-out (:attr:`fanout`) over a
    hub."""

    def __init__(
        self,
        hub: Hub,
        limits: ViewerLimits,
        *,
        directory: DirectoryRows = list,
        stats: ExtraStats = dict,
        send_timeout_s: float = 5.0,
    ) -> None:
        self.hub = hub
        self.limits = limits
        self.fanout = Fanout(hub, limits, write_deadline_s=send_timeout_s)
        self.connections = self.fanout.connections
        self._directory = directory
        self._extra_stats = stats
        self.app = QuartTrio(__name__, static_folder=str(STATIC_DIR))
        self._routes()

    async def wait_idle(self) -> None:
        """Until no viewer connection is open (after :meth:`Hub.close_all`)."""
        await self.fanout.wait_idle()

    def stats(self) -> dict[str, Any]:
        return {
            **self.hub.stats(),
            "connections": self.connections.total,
            "fanout": self.fanout.stats(),
            **self._extra_stats(),
        }

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
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown_trigger`` returns (or cancelled); reports the URL
    (``http://host:port``, the real port when ``port`` is 0). ``sock``: a socket from
    :func:`listening_socket` bound beforehand (then ``host``/``port`` are not used)."""
    if sock is None:
        sock = listening_socket(host, port, app.fanout.write_deadline_s)
    private, address = private_socket()
    config = Config()
    # hypercorn takes the private socket over (and closes it when it stops).
    config.bind = [f"fd://{private.detach()}"]
    config.backlog = LISTEN_BACKLOG
    config.accesslog = None
    # A logger object (not "-") so hypercorn does not install its own stderr handler.
    config.errorlog = logging.getLogger("roomverse.firehose.http")
    config.graceful_timeout = app.limits.close_grace_s
    with sock:
        sock.listen(LISTEN_BACKLOG)
        async with trio.open_nursery() as nursery:

            async def serve_then_stop(*, task_status: TaskStatus[list[str]]) -> None:
                await serve(
                    app.app, config, shutdown_trigger=shutdown_trigger, task_status=task_status
                )
                nursery.cancel_scope.cancel()

            await nursery.start(serve_then_stop)
            nursery.start_soon(app.fanout.run)
            nursery.start_soon(app.fanout.watch)
            await nursery.start(serve_front, sock, app.fanout, address)
            bound_host, bound_port = sock.getsockname()[:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            task_status.started(f"http://{shown}:{bound_port}")


__all__ = ["FirehoseApp", "listening_socket", "serve_app"]
