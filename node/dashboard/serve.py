"""Serve the owner's dashboard beside a running character (``roomverse node --dashboard``).

The dashboard shows private memory and changes the character's state, so it listens on
loopback unless the owner passes ``--dashboard-public``, and every request must carry a
token drawn fresh at each start and printed once, in the ``dashboard_ready`` URL.

The socket is bound before the app is built: the port (0 picks one) must be known to
write that URL, a busy port is a clear :class:`~keys.errors.ConfigError` rather than a
traceback from inside the server, and the token is drawn only once the whole URL is
known (see :func:`new_token`).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

if TYPE_CHECKING:
    # As in node.process: trio-typing's stubs shadow trio's own annotations.
    from trio_typing import TaskStatus

    from node.character import CharacterNode
    from node.events import EventLog

from keys.errors import ConfigError
from node.dashboard.app import create_app
from node.dashboard.guard import is_loopback
from node.dashboard.live import LiveLog
from node.dashboard.mcp_http import with_mcp
from node.privacy.log_scrub import scrub_log_text

FLAG = "--dashboard"
PUBLIC_FLAG = "--dashboard-public"
TOKEN_BYTES = 32
TOKEN_DRAWS = 64
"""A token is drawn again when the log redactor would mangle it in the printed URL (about
one draw in 2,500 looks like an IBAN, a street address or an API key to it)."""
_PORT = re.compile(r"[0-9]{1,5}")


@dataclass(frozen=True, slots=True)
class Bind:
    """Where the dashboard listens: an IP literal or ``localhost``, and a port (0: any)."""

    host: str
    port: int
    loopback: bool

    def address(self) -> tuple[str, int]:
        return ("127.0.0.1" if self.host.lower() == "localhost" else self.host, self.port)


def check_bind(text: str, *, allow_public: bool) -> Bind:
    """Parse ``HOST:PORT`` (``[::1]:PORT`` for IPv6) and refuse a non-loopback host
    unless the owner allowed it; raises :class:`ConfigError` naming ``--dashboard``."""
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or _PORT.fullmatch(port_text) is None or int(port_text) > 65535:
        raise ConfigError(FLAG, f"expected HOST:PORT such as 127.0.0.1:8765, not {text!r}")
    loopback = is_loopback(host)
    if not loopback and not allow_public:
        raise ConfigError(
            FLAG,
            f"{host} is not a loopback address; the dashboard shows the character's private"
            f" memory, so it listens on 127.0.0.1 unless you also pass {PUBLIC_FLAG}",
        )
    if not loopback and not _is_ip(host):
        raise ConfigError(FLAG, f"{host!r} is not an IP address (or localhost)")
    return Bind(host, int(port_text), loopback)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def dashboard_url(bind: Bind, port: int) -> str:
    host = f"[{bind.host}]" if ":" in bind.host else bind.host
    return f"http://{host}:{port}/"


def new_token(url: str) -> str:
    """A fresh random token that reads back unchanged in the printed ``url?token=...``.

    Every event line passes :func:`scrub_log_text`, which would occasionally take a random
    token for personal data and print a URL that cannot work.
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    for _ in range(TOKEN_DRAWS):
        line = f"{url}?token={token}"
        if scrub_log_text(line) == line:
            break
        token = secrets.token_urlsafe(TOKEN_BYTES)
    return token


def bind_socket(bind: Bind) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(bind.address())
    except OSError as exc:
        sock.close()
        where = f"{bind.host}:{bind.port}"
        raise ConfigError(FLAG, f"cannot listen on {where}: {exc.strerror or exc}") from None
    return sock


async def serve_dashboard(
    node: CharacterNode,
    bind: str,
    *,
    allow_public: bool,
    events: EventLog,
    task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the dashboard until cancelled; reports the URL (with its token) through
    ``task_status`` and emits ``dashboard_ready`` with it."""
    where = check_bind(bind, allow_public=allow_public)
    with bind_socket(where) as sock:
        port = int(sock.getsockname()[1])
        url = dashboard_url(where, port)
        token = new_token(url)
        live = LiveLog()
        app = create_app(node, token, live=live, loopback_port=port if where.loopback else None)
        # The character's lent tools over MCP (``/mcp``) share the port and the token.
        served = with_mcp(app, node, token, port=port, loopback=where.loopback)
        config = Config()
        # hypercorn gets its own descriptor for the socket we bound (it wraps and owns it);
        # ours closes when this block ends.
        config.bind = [f"fd://{os.dup(sock.fileno())}"]
        config.accesslog = None  # request lines would carry ?token=
        config.errorlog = logging.getLogger("roomverse.dashboard.http")
        config.graceful_timeout = 1.0
        # The page never sends on the live-log socket: anything large is refused.
        config.websocket_max_message_size = 4096
        async with trio.open_nursery() as nursery:
            await nursery.start(live.run, events)
            await nursery.start(partial(serve, served, config))
            ready = f"{url}?token={token}"
            events.emit("dashboard_ready", url=ready, public=not where.loopback)
            task_status.started(ready)
