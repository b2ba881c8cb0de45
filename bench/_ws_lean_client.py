"""Many WebSocket viewers in one process for as little client CPU as possible: plain
non-blocking sockets and one ``epoll``, no event loop library, no per-frame objects.

The benchmarks use it so that, on a small machine where the viewers share the cores with
the server they measure, the viewers take as little as they can. It speaks only what a
viewer needs: the HTTP upgrade (RFC 6455 §4.1, no extensions offered), unmasked server
frames (text, binary, close; ping is answered), and nothing else. Not a general client.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RECV_BYTES = 1 << 18
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
MAX_HEAD_BYTES = 16384

OnFrame = Callable[[int, bytes, int], None]
"""(viewer index, payload, receive time in ``time.time_ns()``)."""


class HandshakeFailed(Exception):
    """The server did not switch protocols (its status line is the message)."""


@dataclass
class Connection:
    index: int
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    closed: str | None = None
    """Why the connection ended (``close CODE``, ``eof``, ``error ...``), None while open."""


def accept_for(key: bytes) -> bytes:
    """The ``Sec-WebSocket-Accept`` answer to ``Sec-WebSocket-Key: key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def upgrade_request(host: str, port: int, target: str) -> tuple[bytes, bytes]:
    """The upgrade request for ``target`` and the ``Sec-WebSocket-Accept`` it must get."""
    key = base64.b64encode(os.urandom(16))
    accept = accept_for(key)
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        f"Origin: http://{host}:{port}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    return request.encode(), accept


def connect(index: int, host: str, port: int, target: str, timeout_s: float) -> Connection:
    """A connected viewer (blocking handshake, then non-blocking); raises
    :class:`HandshakeFailed` or ``OSError``."""
    sock = socket.create_connection((host, port), timeout=timeout_s)
    try:
        request, accept = upgrade_request(host, port, target)
        sock.sendall(request)
        head = bytearray()
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk or len(head) > MAX_HEAD_BYTES:
                raise HandshakeFailed("connection ended during the handshake")
            head += chunk
        end = head.index(b"\r\n\r\n") + 4
        status = bytes(head[: head.index(b"\r\n")]).decode(errors="replace")
        if " 101 " not in status + " ":
            raise HandshakeFailed(status)
        if accept not in head[:end]:
            raise HandshakeFailed("wrong Sec-WebSocket-Accept")
        sock.setblocking(False)
        return Connection(index, sock, bytearray(head[end:]))
    except BaseException:
        sock.close()
        raise


def take_frames(conn: Connection, on_frame: OnFrame, now_ns: int) -> None:
    """Hand every whole frame in ``conn.buffer`` to ``on_frame``; keep the rest."""
    buf = conn.buffer
    at = 0
    while len(buf) - at >= 2:
        opcode = buf[at] & 0x0F
        length = buf[at + 1] & 0x7F
        head = 2
        if length == 126:
            head = 4
            if len(buf) - at < head:
                break
            length = int.from_bytes(buf[at + 2 : at + 4], "big")
        elif length == 127:
            head = 10
            if len(buf) - at < head:
                break
            length = int.from_bytes(buf[at + 2 : at + 10], "big")
        if len(buf) - at < head + length:
            break
        payload = bytes(buf[at + head : at + head + length])
        at += head + length
        if opcode == OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            conn.closed = f"close {code}"
            break
        if opcode == OP_PING:
            _send_pong(conn, payload)
        elif opcode != OP_PONG:
            on_frame(conn.index, payload, now_ns)
    del buf[:at]


def _send_pong(conn: Connection, payload: bytes) -> None:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload[:125]))
    with contextlib.suppress(OSError):
        conn.sock.send(bytes([0x80 | OP_PONG, 0x80 | len(masked)]) + mask + masked)


class LeanViewers:
    """``connect`` viewers, then :meth:`run` hands their frames to a callback."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.failed: dict[int, str] = {}
        self._poll = select.epoll()
        self._by_fd: dict[int, Connection] = {}

    def connect(self, count: int, host: str, port: int, target: str, timeout_s: float) -> None:
        for index in range(count):
            try:
                conn = connect(index, host, port, target, timeout_s)
            except (OSError, HandshakeFailed) as exc:
                self.failed[index] = f"{type(exc).__name__}: {exc}"[:200]
                continue
            self.connections.append(conn)
            self._by_fd[conn.sock.fileno()] = conn
            self._poll.register(conn.sock.fileno(), select.EPOLLIN)

    @property
    def open(self) -> int:
        return sum(conn.closed is None for conn in self.connections)

    def run(self, on_frame: OnFrame, until: Callable[[], bool], deadline: float) -> None:
        """Read until ``until()`` is true, every viewer has closed, or ``deadline``
        (``time.monotonic()``) passes. Frames already buffered are handed over first."""
        for conn in self.connections:
            take_frames(conn, on_frame, time.time_ns())
            if conn.closed is not None:
                self._end(conn, conn.closed)
        while not until() and self.open and (left := deadline - time.monotonic()) > 0:
            for fd, _ in self._poll.poll(min(left, 0.5)):
                conn = self._by_fd[fd]
                try:
                    data = conn.sock.recv(RECV_BYTES)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._end(conn, f"error {exc.errno}")
                    continue
                if not data:
                    self._end(conn, "eof")
                    continue
                conn.buffer += data
                take_frames(conn, on_frame, time.time_ns())
                if conn.closed is not None:
                    self._end(conn, conn.closed)

    def _end(self, conn: Connection, why: str) -> None:
        conn.closed = conn.closed or why
        self._poll.unregister(conn.sock.fileno())

    def close(self) -> None:
        for conn in self.connections:
            conn.sock.close()
        self._poll.close()


__all__ = ["Connection", "HandshakeFailed", "LeanViewers", "OnFrame", "accept_for", "take_frames"]
