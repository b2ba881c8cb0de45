"""One viewer's socket as the fan-out writes to it: non-blocking sends, and what the
socket did not take kept in an outbox bounded in bytes.

The fan-out calls :meth:`Outlet.write` for every viewer in one pass; it never waits. When
the kernel's send buffer is full the rest of the bytes (a view of the shared frame bytes,
not a copy) goes to the outbox, and the viewer's own task (:meth:`Outlet.flush`) finishes
it when the socket becomes writable. While the outbox holds ``outbox_bytes`` or more the
fan-out leaves the viewer's events in its hub queue (bounded in events), so a viewer that
stops reading is dropped as a slow consumer when that queue overflows, and one whose
outbox makes no progress for ``deadline_s`` is dropped by :meth:`Outlet.stalled`.
"""

from __future__ import annotations

import socket
from collections import deque

import trio

SEND_CHUNK = 256 * 1024
"""Most bytes handed to one ``send`` call when flushing the outbox."""
SEND_BUFFER_BYTES = 128 * 1024
"""The kernel's send buffer for a viewer (Linux doubles it). Left to autotuning it grows
to megabytes on loopback, which a stalled viewer fills for seconds without a send ever
failing, until ``TCP_USER_TIMEOUT`` cuts it: the outbox and the queue would never see it
fall behind. 256 KiB is two seconds of a 100 events/s stream, enough for any link."""


class Outlet:
    """Writes to a connected non-blocking stdlib socket (the caller owns and closes it)."""

    def __init__(self, sock: socket.socket, outbox_bytes: int, deadline_s: float) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self.sock = sock
        self.outbox_bytes = outbox_bytes
        self.deadline_s = deadline_s
        self._outbox: deque[memoryview] = deque()
        self.queued_bytes = 0
        self.sent_bytes = 0
        self.broken = False
        """The socket failed (reset, closed by the peer); nothing more is written."""
        self.waiting_since: float | None = None
        """When (trio clock) the outbox last went from empty to holding bytes."""
        self._progress_at = 0.0
        self._pending = trio.lowlevel.ParkingLot()

    @property
    def has_room(self) -> bool:
        """May the fan-out hand this viewer more bytes now?"""
        return not self.broken and self.queued_bytes < self.outbox_bytes

    def write(self, data: bytes) -> None:
        """Send ``data`` now as far as the socket takes it; keep the rest, in order."""
        if self.broken:
            return
        view = memoryview(data)
        if not self._outbox:
            sent = self._send(view)
            if sent == len(view):
                return
            view = view[sent:]
            now = trio.current_time()
            self.waiting_since = now
            self._progress_at = now
            self._pending.unpark_all()
        self._outbox.append(view)
        self.queued_bytes += len(view)

    def stalled(self, now: float) -> bool:
        """Bytes have waited ``deadline_s`` without the socket taking any."""
        return bool(self._outbox) and now - self._progress_at > self.deadline_s

    async def flush(self) -> None:
        """Forever: finish the outbox whenever it holds bytes (the viewer's own task)."""
        while not self.broken:
            while not self._outbox:
                await self._pending.park()
            await trio.lowlevel.wait_writable(self.sock.fileno())
            self._drain()

    async def drained(self, timeout_s: float) -> bool:
        """Wait (up to ``timeout_s``) until the outbox is empty; True if it is."""
        with trio.move_on_after(timeout_s):
            while self._outbox and not self.broken:
                await trio.lowlevel.wait_writable(self.sock.fileno())
                self._drain()
        return not self._outbox

    def _drain(self) -> None:
        while self._outbox and not self.broken:
            view = self._outbox[0]
            chunk = view[:SEND_CHUNK]
            sent = self._send(chunk)
            if sent:
                self._progress_at = trio.current_time()
                self.queued_bytes -= sent
            if sent == len(view):
                self._outbox.popleft()
                continue
            if not self.broken:
                self._outbox[0] = view[sent:]
            if sent < len(chunk):
                return
        self.waiting_since = None

    def _send(self, view: memoryview) -> int:
        try:
            sent = self.sock.send(view)
        except BlockingIOError:
            return 0
        except OSError:
            self.broken = True
            self._outbox.clear()
            self.queued_bytes = 0
            return 0
        self.sent_bytes += sent
        return sent


__all__ = ["Outlet"]
