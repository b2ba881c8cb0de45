"""The fan-out of ``/ws``: WebSocket viewers on plain sockets, every frame encoded once
and written to every viewer from one loop that never waits.

A viewer's connection (:meth:`Fanout.serve`, handed over by :mod:`firehose.front` with
the request head it read) is checked before the upgrade (Origin, filters, connections per
address: HTTP refusals with a JSON body), accepted by wsproto with compression declined,
and attached to the hub. Its own tasks only read (pings are answered, anything a viewer
sends closes it ``read_only``, a message above ``max_frame_bytes`` closes it with 1009),
finish its outbox when the socket takes bytes again (:class:`~firehose.outlet.Outlet`)
and, when resuming, run the hub's catch-up.

Writing is one loop (:meth:`Fanout.run`): whenever something was queued, one pass over
the viewers takes each viewer's queued objects as frames of JSON lines, encodes them
(:func:`firehose.wire.encode_text`) once for every viewer with the same
:meth:`~firehose.hub.Viewer.share_key`, and writes the bytes with non-blocking sends. A
pass over N viewers starts at most every ``N / frames_per_s`` seconds, so more viewers
get fuller frames rather than the loop taking the whole CPU; events that come meanwhile
wait in the viewers' hub queues. :meth:`Fanout.watch` pings every viewer and cuts those
that answer nothing, and those whose outbox made no progress for the write deadline.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field

import trio
from wsproto import WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message, Ping
from wsproto.utilities import RemoteProtocolError

from firehose.events import CLOSE_POLICY, REASON_CODES, closing_frame
from firehose.hub import Hub, Viewer
from firehose.limits import ConnectionCounter, ViewerLimits, ViewerRefused, check_origin
from firehose.limits import parse_request as parse_viewer_request
from firehose.outlet import Outlet
from firehose.wire import (
    PING,
    accept,
    encode_text,
    header,
    query_of,
    reject,
    server_connection,
)

logger = logging.getLogger(__name__)

QUERY_KEYS = ("character", "kind", "cursor")
RECV_BYTES = 4096
"""Viewers send nothing but pongs and close frames: small reads suffice."""
PASS_SLICE = 512
"""Viewers written between two yields of a pass. Few yields: the node's receive path
needs many scheduler turns per message, and a turn taken in the middle of a pass costs it
a slice of the pass, while between passes turns are quick."""
WATCH_INTERVAL_S = 1.0


@dataclass(eq=False)
class Session:
    """One accepted viewer: its wsproto connection, socket writer and hub viewer."""

    conn: WSConnection
    outlet: Outlet
    viewer: Viewer
    heard_at: float
    """When (trio clock) the viewer last sent anything (a pong, at least)."""
    gone: bool = False
    """The connection is over from the viewer's side: no goodbye to send."""
    message_bytes: int = field(default=0)


class Fanout:
    """Serves ``/ws`` viewers of ``hub``; :meth:`run` and :meth:`watch` run beside it."""

    def __init__(self, hub: Hub, limits: ViewerLimits, *, write_deadline_s: float = 5.0) -> None:
        self.hub = hub
        self.limits = limits
        self.write_deadline_s = write_deadline_s
        self.connections = ConnectionCounter(limits.max_per_ip)
        self._sessions: dict[Viewer, Session] = {}
        self._idle = trio.Event()
        self._idle.set()
        self.passes = 0
        self.encoded = 0
        """Frames' worth of bytes encoded (once per group of viewers sharing them)."""
        self.written = 0
        """Writes to viewers' sockets (one per viewer per pass it had something in)."""

    async def wait_idle(self) -> None:
        """Until no viewer connection is open (after :meth:`Hub.close_all`)."""
        await self._idle.wait()

    def stats(self) -> dict[str, int]:
        return {"passes": self.passes, "encoded": self.encoded, "written": self.written}

    # -- one viewer --------------------------------------------------------------------

    async def serve(self, sock: socket.socket, head: bytes, ip: str) -> None:
        """Handshake, serve and say goodbye to the viewer on ``sock`` (the caller closes
        it afterwards); ``head``: the bytes read so far, the request head first."""
        try:
            conn, request = server_connection(head)
        except (RemoteProtocolError, ValueError):
            return
        outlet = Outlet(sock, self.limits.outbox_bytes, self.write_deadline_s)
        try:
            check_origin(header(request, b"origin"), request.host, self.limits.allow_origins)
            query = query_of(request)
            wanted = parse_viewer_request(
                {key: query.get(key, []) for key in QUERY_KEYS}, self.limits.max_filters
            )
            self.connections.acquire(ip)
        except ViewerRefused as exc:
            self.hub.refused[exc.reason] += 1
            outlet.write(reject(conn, exc.status, exc.reason, str(exc)))
            await outlet.drained(self.limits.close_grace_s)
            return
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        try:
            viewer = await self.hub.attach(wanted.filters, wanted.cursor)
            outlet.write(accept(conn))
            session = Session(conn, outlet, viewer, trio.current_time())
            self._sessions[viewer] = session
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(outlet.flush)
                    nursery.start_soon(self._read, session)
                    if wanted.cursor is not None:
                        nursery.start_soon(self.hub.catch_up, viewer, wanted.cursor)
                    await viewer.closed.wait()
                    nursery.cancel_scope.cancel()
            finally:
                self._sessions.pop(viewer, None)
                self.hub.detach(viewer)
            await self._goodbye(session)
        finally:
            self.connections.release(ip)
            if self.connections.total == 0:
                self._idle.set()

    async def _read(self, session: Session) -> None:
        """Read until the viewer goes or breaks a rule (then its viewer is closed)."""
        while session.viewer.reason is None:
            data = await self._receive(session)
            if data is None:
                continue
            if not data:
                session.gone = True
                session.viewer.close("disconnected")
                return
            self._handle(session, data)

    async def _receive(self, session: Session) -> bytes | None:
        """Bytes from the viewer (b"" at its end), None if none were ready after all."""
        sock = session.outlet.sock
        await trio.lowlevel.wait_readable(sock.fileno())
        try:
            data = sock.recv(RECV_BYTES)
        except BlockingIOError:
            return None
        except OSError:
            return b""
        session.heard_at = trio.current_time()
        return data

    def _handle(self, session: Session, data: bytes) -> None:
        viewer = session.viewer
        try:
            session.conn.receive_data(data)
            events = list(session.conn.events())
        except RemoteProtocolError:
            session.gone = True
            viewer.close("disconnected")
            return
        for event in events:
            if isinstance(event, Ping):
                session.outlet.write(session.conn.send(event.response()))
            elif isinstance(event, CloseConnection):
                session.gone = True
                if session.conn.state is ConnectionState.REMOTE_CLOSING:
                    session.outlet.write(session.conn.send(event.response()))
                viewer.close("disconnected")
            elif isinstance(event, Message):
                session.message_bytes += len(event.data)
                if session.message_bytes > self.limits.max_frame_bytes:
                    viewer.close("too_big")
                elif event.message_finished:
                    viewer.close("read_only")

    async def _goodbye(self, session: Session) -> None:
        """Say why, then close; best effort and bounded (the viewer may be gone or
        stalled): a ``closing`` frame, the close handshake, the viewer's answer."""
        if session.gone or session.outlet.broken:
            return
        reason = session.viewer.reason or "server_shutdown"
        code = REASON_CODES.get(reason, CLOSE_POLICY)
        with trio.move_on_after(self.limits.close_grace_s):
            if session.conn.state is ConnectionState.OPEN:
                session.outlet.write(
                    encode_text(closing_frame(reason))
                    + session.conn.send(CloseConnection(code=code, reason=reason))
                )
            await session.outlet.drained(self.limits.close_grace_s)
            while not session.gone:
                data = await self._receive(session)
                if data == b"":
                    return
                if data is not None:
                    self._handle(session, data)

    # -- every viewer ------------------------------------------------------------------

    async def run(self) -> None:
        """Write what is queued for the viewers, a pass at a time, forever."""
        seen = self.hub.generation
        while True:
            seen = await self.hub.wait_queued(seen)
            started = trio.current_time()
            await self.write_pass()
            await trio.sleep_until(started + len(self._sessions) / self.limits.frames_per_s)

    async def write_pass(self) -> None:
        """One pass: each viewer's queue, as frames encoded once per share key."""
        self.passes += 1
        shared: dict[object, bytes] = {}
        now = trio.current_time()
        for done, session in enumerate(list(self._sessions.values()), 1):
            if done % PASS_SLICE == 0:
                await trio.lowlevel.checkpoint()
            viewer, outlet = session.viewer, session.outlet
            if viewer.reason is not None or not viewer.queued():
                continue
            if outlet.stalled(now):
                viewer.close("slow_consumer")
                continue
            if not outlet.has_room:
                continue
            key = viewer.share_key()
            data = None if key is None else shared.get(key)
            if data is None:
                frames = viewer.take_frames()
                self.encoded += len(frames)
                data = b"".join([encode_text(frame) for frame in frames])
                if key is not None:
                    shared[key] = data
            else:
                viewer.skip_queued()
            self.written += 1
            outlet.write(data)

    async def watch(self) -> None:
        """Forever: cut viewers whose outbox is stuck past the write deadline, ping
        every ``ping_interval_s`` and cut those that answered nothing for two."""
        next_ping = trio.current_time() + self.limits.ping_interval_s
        # Look at least twice per ping interval: looking less often than a viewer must
        # answer would cut viewers that did answer (their pong came just after a look).
        every_s = min(WATCH_INTERVAL_S, self.limits.ping_interval_s / 2)
        while True:
            await trio.sleep(every_s)
            now = trio.current_time()
            ping = now >= next_ping
            if ping:
                next_ping = now + self.limits.ping_interval_s
            for session in list(self._sessions.values()):
                if session.outlet.stalled(now):
                    session.viewer.close("slow_consumer")
                elif now - session.heard_at > 2 * self.limits.ping_interval_s:
                    session.gone = True
                    session.viewer.close("ping_timeout")
                elif ping:
                    session.outlet.write(PING)


__all__ = ["Fanout"]
