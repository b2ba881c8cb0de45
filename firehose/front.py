"""The firehose's one listening port: WebSocket upgrades of ``/ws`` go to the fan-out,
every other connection to hypercorn.

Why one listener that routes, rather than hypercorn's ``serve()`` on a second port beside
the fan-out: users get one URL, and one origin is all a reverse proxy or a tunnel must
carry (the page finds its WebSocket at ``/ws`` of its own origin). Hypercorn offers no way
to take a raw socket over after an upgrade, nor to be handed an accepted connection
through its public API; so it listens on a private Unix socket (abstract namespace:
nothing on disk) and this listener relays the bytes of the connections that are not
viewers. Those are the page, its files and the small JSON API: few and short, so the
relay costs nothing that matters, while the viewers' sockets stay plain sockets the
fan-out writes to directly.

A connection's first request head (at most :data:`~firehose.wire.MAX_HEAD_BYTES`, within
``head_timeout_s``) decides; a later request on a kept-alive HTTP connection stays with
hypercorn (browsers open a fresh connection for a WebSocket).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
from typing import TYPE_CHECKING

import trio

from firehose.fanout import Fanout
from firehose.wire import MAX_HEAD_BYTES, head_end, is_websocket_upgrade

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger(__name__)

RELAY_BYTES = 65536
ACCEPT_RETRY_S = 0.1
"""After an accept fails for want of resources (descriptors, memory): wait, then retry."""


def private_socket() -> tuple[socket.socket, str]:
    """A bound Unix socket in the abstract namespace for hypercorn, and its address."""
    address = f"\0roomverse-firehose-{secrets.token_hex(8)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(address)
    return sock, address


async def serve_front(
    listener: socket.socket,
    fanout: Fanout,
    upstream: str,
    *,
    head_timeout_s: float = 10.0,
    task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on the listening ``listener`` (not closed here) and route each connection,
    until cancelled."""
    listener.setblocking(False)
    async with trio.open_nursery() as nursery:
        task_status.started()
        while True:
            await trio.lowlevel.wait_readable(listener.fileno())
            try:
                sock, addr = listener.accept()
            except BlockingIOError:
                continue
            except OSError as exc:
                logger.warning("accept failed: %s", exc)
                await trio.sleep(ACCEPT_RETRY_S)
                continue
            nursery.start_soon(_route, sock, str(addr[0]), fanout, upstream, head_timeout_s)


async def _route(
    sock: socket.socket, ip: str, fanout: Fanout, upstream: str, head_timeout_s: float
) -> None:
    sock.setblocking(False)
    try:
        head = await _read_head(sock, head_timeout_s)
        if head is None:
            return
        if is_websocket_upgrade(head[: head_end(head)]):
            await fanout.serve(sock, head, ip)
        else:
            await _relay(sock, head, upstream)
    finally:
        trio.lowlevel.notify_closing(sock.fileno())
        sock.close()


async def _read_head(sock: socket.socket, timeout_s: float) -> bytes | None:
    """The bytes received until the end of the request head; None if the client sent
    no complete head in time, within the size bound, or left."""
    buffer = bytearray()
    with trio.move_on_after(timeout_s):
        while len(buffer) < MAX_HEAD_BYTES:
            await trio.lowlevel.wait_readable(sock.fileno())
            try:
                data = sock.recv(MAX_HEAD_BYTES)
            except BlockingIOError:
                continue
            except OSError:
                return None
            if not data:
                return None
            buffer += data
            if head_end(buffer) >= 0:
                return bytes(buffer)
    return None


async def _relay(sock: socket.socket, head: bytes, upstream: str) -> None:
    """Carry one HTTP connection to hypercorn and back, the bytes already read first."""
    client = trio.SocketStream(trio.socket.from_stdlib_socket(_dup(sock)))
    try:
        server = await trio.open_unix_socket(upstream)
    except OSError:
        await client.aclose()
        return
    async with client, server, trio.open_nursery() as nursery:
        await server.send_all(head)

        async def up() -> None:
            await _pump(client, server)
            with contextlib.suppress(trio.ClosedResourceError):
                await server.send_eof()

        async def down() -> None:
            await _pump(server, client)
            nursery.cancel_scope.cancel()

        nursery.start_soon(up)
        nursery.start_soon(down)


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    """Copy until ``source`` ends or either side breaks."""
    try:
        while data := await source.receive_some(RELAY_BYTES):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def _dup(sock: socket.socket) -> socket.socket:
    # trio takes a socket over; a duplicate leaves ``sock`` to the caller's close.
    return sock.dup()


__all__ = ["private_socket", "serve_front"]
