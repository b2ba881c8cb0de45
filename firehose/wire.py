"""The WebSocket wire of ``/ws``, through wsproto (python-hyper): which requests are
upgrades, the server's handshake answers, and frames encoded once into bytes.

Sans-IO: nothing here touches a socket or a clock. Compression (permessage-deflate) is
always declined, so a server frame's bytes depend only on its text and are the same for
every viewer: :func:`encode_text` runs once per frame, whatever the number of viewers.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.frame_protocol import FrameProtocol

WS_PATH = "/ws"
MAX_HEAD_BYTES = 16 * 1024
"""Longest request head (request line and headers) the listener reads before routing."""

_ENCODER = FrameProtocol(client=False, extensions=[])
"""Stateless for whole messages (``fin=True``): one encoder serves every frame."""


def encode_text(text: str) -> bytes:
    """One unfragmented, uncompressed server text frame."""
    return bytes(_ENCODER.send_data(text, fin=True))


PING = bytes(_ENCODER.ping(b""))
"""A server ping with no payload: the same bytes for everyone."""


def head_end(buffer: bytes | bytearray) -> int:
    """Where the request head ends (just past the blank line), or -1 if not yet."""
    end = buffer.find(b"\r\n\r\n")
    return -1 if end < 0 else end + 4


def is_websocket_upgrade(head: bytes) -> bool:
    """Is this request head a WebSocket upgrade of ``/ws`` (whatever its query)? Only
    routes: wsproto validates the handshake itself."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET":
        return False
    if urlsplit(parts[1].decode("latin-1")).path != WS_PATH:
        return False
    for header in rest.split(b"\r\n"):
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"upgrade" and value.strip().lower() == b"websocket":
            return True
    return False


def server_connection(head: bytes) -> tuple[WSConnection, Request]:
    """A wsproto server connection fed ``head``, and the upgrade request it read.
    Raises :class:`wsproto.utilities.RemoteProtocolError` on a bad handshake."""
    conn = WSConnection(ConnectionType.SERVER)
    conn.receive_data(head)
    for event in conn.events():
        if isinstance(event, Request):
            return conn, event
    raise ValueError("no upgrade request in the head")


def header(request: Request, name: bytes) -> str | None:
    for key, value in request.extra_headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def query_of(request: Request) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.target).query, keep_blank_values=True)


def accept(conn: WSConnection) -> bytes:
    """The 101 answer, declining every extension the client offered."""
    return conn.send(AcceptConnection(extensions=[]))


def reject(conn: WSConnection, status: int, reason: str, message: str) -> bytes:
    """An HTTP refusal of the upgrade with a JSON body ``{"error", "message"}``."""
    body = json.dumps({"error": reason, "message": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    out = conn.send(RejectConnection(status_code=status, headers=headers, has_body=True))
    return out + conn.send(RejectData(data=body, body_finished=True))


__all__ = [
    "MAX_HEAD_BYTES",
    "PING",
    "WS_PATH",
    "accept",
    "encode_text",
    "head_end",
    "header",
    "is_websocket_upgrade",
    "query_of",
    "reject",
    "server_connection",
]
