"""The server side of ``bench/ws_send_path.py``: one WebSocket send path, fanning events
out to every connected viewer. Run by it, never by hand (``--help`` for the flags).

Paths (the same events, the same batching, only the way a frame reaches the socket
differs):

* ``quart``: a quart-trio ``@app.websocket`` route on hypercorn's trio worker, one task
  per viewer calling ``websocket.send`` (what ``firehose/app.py`` does);
* ``asgi``: a bare ASGI app on hypercorn, one task per viewer calling the ASGI ``send``
  (hypercorn without Quart);
* ``trio``: ``trio.serve_tcp`` with our own upgrade, one task per viewer calling
  ``SocketStream.send_all`` on frames we encode (no hypercorn, no wsproto);
* ``lean``: the same upgrade, then one loop that writes each frame with a non-blocking
  ``socket.send`` to every viewer in turn (a partial write is finished on later ticks);
* ``fanout``: the firehose's own ``/ws`` (``firehose.app.serve_app``: its front, wsproto
  handshake, hub and fan-out), fed the same events through ``Hub.publish``; it paces
  itself (a pass over N viewers at most every N / ``frames_per_s`` s), so
  ``--interval-ms`` does not apply; its hello frame comes first.

Events are fixed-size lines ``SEQ TIME_NS xxx…\\n`` made at ``--rate`` per second. Every
``--interval-ms`` (0: at every event) each viewer is sent one frame of all the events it
has not had yet; a frame's payload is built once and shared by every viewer at the same
place. Talks to the parent in JSON lines on stdout: ``ready`` (port), ``connected`` (all
viewers in), ``done`` (CPU while publishing, frames); waits for ``go`` on stdin.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import trio
from _firehose_common import follow_stdin
from _gossip_common import emit, process_cpu_s
from _ws_lean_client import accept_for

PATHS = ("quart", "asgi", "trio", "lean", "fanout")
HEAD_LIMIT = 16384
LISTEN_BACKLOG = 2048
T = TypeVar("T")


@dataclass
class Feed:
    """The events so far, the tick viewers wait on, and what was sent."""

    event_bytes: int
    events: list[bytes] = field(default_factory=list)
    tick: trio.Event = field(default_factory=trio.Event)
    frames: int = 0
    viewers: int = 0
    all_in: trio.Event = field(default_factory=trio.Event)
    expected: int = 0
    _made: dict[tuple[str, int, int], Any] = field(default_factory=dict)
    """What was built for the viewers at one place since the last tick, by form."""
    on_add: Callable[[bytes], None] | None = None
    sent: Callable[[], int] | None = None
    """Frames sent, when the server counts them itself (path ``fanout``)."""

    def add(self) -> None:
        head = b"%010d %019d " % (len(self.events), time.time_ns())
        self.events.append(head + b"x" * (self.event_bytes - len(head) - 1) + b"\n")
        if self.on_add is not None:
            self.on_add(self.events[-1])

    def next_tick(self) -> None:
        self.tick.set()
        self.tick = trio.Event()
        self._made.clear()

    def payload(self, start: int) -> tuple[bytes, int]:
        """All events from ``start`` on, joined once per range; and where the next
        frame starts."""
        return self._once("bytes", start, lambda: b"".join(self.events[start:]))

    def text(self, start: int) -> tuple[str, int]:
        """:meth:`payload` as text, decoded once per range."""
        return self._once("text", start, lambda: self.payload(start)[0].decode())

    def framed(self, start: int) -> tuple[bytes, int]:
        """:meth:`payload` as a whole WebSocket frame, framed once per range."""
        return self._once("frame", start, lambda: frame(self.payload(start)[0]))

    def _once(self, form: str, start: int, make: Callable[[], T]) -> tuple[T, int]:
        end = len(self.events)
        key = (form, start, end)
        if key not in self._made:
            self._made[key] = make()
        made: T = self._made[key]
        return made, end

    def joined(self) -> None:
        self.viewers += 1
        if self.viewers >= self.expected:
            self.all_in.set()


def frame(payload: bytes) -> bytes:
    """``payload`` as an unmasked FIN text frame (RFC 6455 §5.2)."""
    length = len(payload)
    if length < 126:
        return bytes([0x81, length]) + payload
    if length < 1 << 16:
        return bytes([0x81, 126]) + length.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + length.to_bytes(8, "big") + payload


async def per_viewer(
    feed: Feed, take: Callable[[int], tuple[T, int]], send: Callable[[T], Awaitable[None]]
) -> None:
    """One viewer's task: at each tick, one frame of everything it has not had."""
    sent = 0
    while True:
        tick = feed.tick
        if sent >= len(feed.events):
            await tick.wait()
            continue
        payload, sent = take(sent)
        await send(payload)
        feed.frames += 1
        if feed.tick is tick:
            await tick.wait()


def quart_app(feed: Feed) -> Any:
    from quart import websocket
    from quart_trio import QuartTrio

    app = QuartTrio(__name__)

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.accept()
        feed.joined()

        await per_viewer(feed, feed.text, websocket.send)

    return app


def asgi_app(feed: Feed) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        feed.joined()

        async def send_text(text: str) -> None:
            await send({"type": "websocket.send", "text": text})

        await per_viewer(feed, feed.text, send_text)

    return app


async def serve_hypercorn(app: Any, sock: socket.socket) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.backlog = LISTEN_BACKLOG
    config.accesslog = None
    config.errorlog = None
    await serve(app, config)


async def upgrade(stream: trio.SocketStream) -> None:
    """Answer a WebSocket upgrade request (the bench's own viewers only)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = await stream.receive_some(4096)
        if not chunk or len(head) > HEAD_LIMIT:
            raise ConnectionError("no upgrade request")
        head += chunk
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = accept_for(key)
    await stream.send_all(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


@dataclass
class LeanViewer:
    sock: socket.socket
    sent: int = 0
    pending: memoryview | None = None


async def lean_fan_out(feed: Feed, viewers: list[LeanViewer]) -> None:
    """At every tick, one pass over the viewers writing without ever waiting."""
    while True:
        await feed.tick.wait()
        for viewer in list(viewers):
            if viewer.pending is None and viewer.sent < len(feed.events):
                framed, viewer.sent = feed.framed(viewer.sent)
                viewer.pending = memoryview(framed)
                feed.frames += 1
            if viewer.pending is not None:
                try:
                    written = viewer.sock.send(viewer.pending)
                except BlockingIOError:
                    written = 0
                except OSError:  # the viewer went away: it gets nothing more
                    viewers.remove(viewer)
                    continue
                viewer.pending = viewer.pending[written:] or None


async def serve_own(path: str, feed: Feed, sock: socket.socket) -> None:
    listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    viewers: list[LeanViewer] = []

    async def handler(stream: trio.SocketStream) -> None:
        await upgrade(stream)
        feed.joined()
        if path == "lean":
            # The stdlib socket under trio's, for plain non-blocking sends; the stream
            # keeps owning (and finally closes) it.
            viewers.append(LeanViewer(stream.socket._sock))  # type: ignore[attr-defined]
            await trio.sleep_forever()

        await per_viewer(feed, feed.framed, stream.send_all)

    async with trio.open_nursery() as nursery:
        if path == "lean":
            nursery.start_soon(lean_fan_out, feed, viewers)
        await trio.serve_listeners(handler, [listener])


async def serve_fanout(feed: Feed, sock: socket.socket) -> None:
    """The firehose's own server over an in-memory hub the feed publishes to."""
    from firehose.app import FirehoseApp, serve_app
    from firehose.events import FirehoseEvent
    from firehose.hub import Hub, MemoryBacklog
    from firehose.limits import ViewerLimits

    hub = Hub(MemoryBacklog(), ViewerLimits(max_per_ip=feed.expected + 16))

    def on_add(line: bytes) -> None:
        # The firehose joins a frame's objects with newlines: each event goes without its own.
        text = line[:-1].decode()
        hub.publish(FirehoseEvent(hub.published + 1, "action", "bench", text))

    feed.on_add = on_add
    async with trio.open_nursery() as nursery:
        web = FirehoseApp(hub, hub.limits)
        feed.sent = lambda: web.fanout.written
        await nursery.start(partial(serve_app, web, sock=sock))
        seen = hub.generation
        while hub.viewers < feed.expected:  # each attach queues a hello
            seen = await hub.wait_queued(seen)
        feed.viewers = hub.viewers
        feed.all_in.set()


async def publish(feed: Feed, rate: float, duration: float, tick_each: bool) -> None:
    """``rate × duration`` events on schedule (a late one goes at once, never skipped);
    with ``tick_each``, a tick at every event."""
    start = trio.current_time()
    for index in range(int(rate * duration)):
        await trio.sleep_until(start + index / rate)
        feed.add()
        if tick_each:
            feed.next_tick()


async def tick(feed: Feed, interval_s: float) -> None:
    while True:
        await trio.sleep(interval_s)
        feed.next_tick()


async def main(args: argparse.Namespace) -> None:
    feed = Feed(args.event_bytes, expected=args.viewers)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if args.path in ("trio", "lean"):
        sock.listen(LISTEN_BACKLOG)
    commands: dict[str, trio.Event] = {"go": trio.Event(), "stop": trio.Event()}

    def on_line(line: str) -> None:
        if line in commands:
            commands[line].set()

    async with trio.open_nursery() as nursery:
        if args.path == "quart":
            nursery.start_soon(serve_hypercorn, quart_app(feed), sock)
        elif args.path == "asgi":
            nursery.start_soon(serve_hypercorn, asgi_app(feed), sock)
        elif args.path == "fanout":
            nursery.start_soon(serve_fanout, feed, sock)
        else:
            nursery.start_soon(serve_own, args.path, feed, sock)
        nursery.start_soon(follow_stdin, on_line)
        emit({"event": "ready", "port": port})
        await feed.all_in.wait()
        emit({"event": "connected", "viewers": feed.viewers})
        await commands["go"].wait()
        cpu_before = process_cpu_s(os.getpid()) or 0.0
        # Without a tick interval, the last events still need a tick after the last one.
        nursery.start_soon(tick, feed, args.interval_ms / 1000 or 0.05)
        await publish(feed, args.rate, args.duration, tick_each=not args.interval_ms)
        emit({"event": "published", "events": len(feed.events)})
        await commands["stop"].wait()
        cpu = (process_cpu_s(os.getpid()) or 0.0) - cpu_before
        frames = feed.frames if feed.sent is None else feed.sent()
        emit({"event": "done", "cpu_s": cpu, "frames": frames})
        nursery.cancel_scope.cancel()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", choices=PATHS, required=True)
    parser.add_argument("--viewers", type=int, required=True)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--interval-ms", type=float, default=50.0)
    parser.add_argument("--event-bytes", type=int, default=600)
    return parser.parse_args()


if __name__ == "__main__":
    trio.run(main, parse_args())
    sys.exit(0)
