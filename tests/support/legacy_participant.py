"""A legacy participant's HTTP server in a thread (``http.server``): the seed's
``GET /manifest``, ``POST /visit`` and ``POST /chat`` (Zundamon answers each line with a
numbered one, done after its third), and the ways a participant can misbehave."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

Behaviour = Literal["ok", "huge", "garbage", "silent", "garbage_replies"]
"""``garbage``: the manifest is not JSON; ``garbage_replies``: the manifest is fine, its
answers to /visit and /chat are not."""

MANIFEST = {
    "name": "Zundamon",
    "description": "ずんだ餅の妖精なのだ。",
    "greeting": "ボクはずんだもんなのだ！",
    "icon": "https://example.invalid/zundamon.png",
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.heard.append((self.path, body))
        answer: dict[str, object]
        if self.path == "/visit":
            answer = {"conversation_id": "zc-1", "reply": "Zundamon's line 1 なのだ。"}
        elif self.path == "/chat":
            count = sum(1 for path, _ in self.server.heard if path == "/chat") + 1
            answer = {"reply": f"Zundamon's line {count} なのだ。", "done": count >= 3}
        else:
            self.send_error(404)
            return
        if self.server.behaviour in ("garbage", "garbage_replies"):
            data = b"<html>not json"
        else:
            data = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path != "/manifest":
            self.send_error(404)
            return
        behaviour = self.server.behaviour
        if behaviour == "silent":
            self.server.release.wait(60)
            return
        if behaviour == "huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(50 * 1024 * 1024))
            self.end_headers()
            chunk = b" " * 65536
            try:
                for _ in range(800):  # 50 MB, until the bridge hangs up
                    self.wfile.write(chunk)
            except OSError:
                pass
            return
        body = b"<html>not json" if behaviour == "garbage" else json.dumps(MANIFEST).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour = "ok"
    release: threading.Event
    heard: list[tuple[str, dict[str, object]]]


@dataclass
class Participant:
    url: str
    heard: list[tuple[str, dict[str, object]]]
    """Every POST it got: (path, JSON body), in order."""


@contextmanager
def legacy_participant(behaviour: Behaviour = "ok") -> Iterator[str]:
    """Serve on 127.0.0.1 (a free port) until the block exits; yields its base URL."""
    with serving(behaviour) as participant:
        yield participant.url


@contextmanager
def serving(behaviour: Behaviour = "ok") -> Iterator[Participant]:
    """As :func:`legacy_participant`, yielding what it heard too."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.behaviour = behaviour
    server.release = threading.Event()
    server.heard = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Participant(f"http://127.0.0.1:{server.server_address[1]}", server.heard)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
