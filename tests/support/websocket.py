"""WebSocket clients for tests whose TCP connection is always closed on the way out.

trio-websocket 0.12's client closes its TCP stream only when the client starts the close
(or the connection breaks). When the server closes first (a refusal such as ``1008
read_only`` or ``1009``, a shutdown goodbye) the client waits for the server's FIN and
then returns from its reader without closing the socket, and ``aclose()`` does nothing
more since the WebSocket is already closed; when the server refuses the upgrade (HTTP
4xx), ``ConnectionRejected`` is raised from the reader, again with the socket open. Both
leave the socket to the garbage collector (``ResourceWarning: unclosed <socket.socket>``).
So here the test opens the TCP stream itself, hands it to
:func:`trio_websocket.wrap_client_stream`, and closes it when the block ends, whoever
closed the WebSocket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionTimeout,
    DisconnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

CONNECT_S = 60.0
DISCONNECT_S = 60.0
"""trio-websocket's own defaults for the opening and the closing handshake."""


@asynccontextmanager
async def open_websocket(
    url: str,
    *,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    message_queue_size: int = 1,
    max_message_size: int = 2**20,
    connect_timeout: float = CONNECT_S,
    disconnect_timeout: float = DISCONNECT_S,
) -> AsyncIterator[WebSocketConnection]:
    """:func:`trio_websocket.open_websocket_url` for a ``ws://HOST:PORT/...`` URL, with
    the same keyword arguments (defaults included) and errors: ``ConnectionRejected``
    when the upgrade is refused, ``ConnectionTimeout`` / ``DisconnectionTimeout`` when a
    handshake takes too long, ``HandshakeError`` when the TCP connection fails; an error
    raised in the block comes out as itself."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None or parts.port is None:
        raise ValueError(f"not a ws://HOST:PORT URL: {url}")
    resource = parts.path or "/"
    if parts.query:
        resource += f"?{parts.query}"
    try:
        with trio.fail_after(connect_timeout):
            stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    except trio.TooSlowError:
        raise ConnectionTimeout from None
    except OSError as exc:
        raise HandshakeError from exc
    try:
        try:
            async with trio.open_nursery() as nursery:
                try:
                    with trio.fail_after(connect_timeout):
                        ws = await wrap_client_stream(
                            nursery,
                            stream,
                            f"{parts.hostname}:{parts.port}",  # the Host header
                            resource,
                            extra_headers=extra_headers,
                            message_queue_size=message_queue_size,
                            max_message_size=max_message_size,
                        )
                except trio.TooSlowError:
                    raise ConnectionTimeout from None
                try:
                    yield ws
                finally:
                    try:
                        with trio.fail_after(disconnect_timeout):
                            await ws.aclose()
                    except trio.TooSlowError:
                        raise DisconnectionTimeout from None
                    finally:
                        # Ends the reader too if the server closed the WebSocket but
                        # not yet its end of the TCP connection.
                        stream.socket.close()
        except BaseExceptionGroup as group:
            # The nursery only runs the connection's reader: one error (the block's, or
            # the reader's, e.g. ConnectionRejected) is raised as itself.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
    finally:
        stream.socket.close()  # synchronous: no checkpoint that a cancellation could take


__all__ = ["open_websocket"]
