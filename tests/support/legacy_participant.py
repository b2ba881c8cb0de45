"""A legacy participant's HTTP server in a thread (``http.server``): the seed's
``GET /manifest``, and the ways a participant can misbehave for the bridge's tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

Behaviour = Literal["ok", "huge", "garbage", "silent"]

MANIFEST = {
    "name": "Zundamon",
    "description": "ずんだ餅の妖精なのだ。",
    "greeting": "ボクはずんだもんなのだ！",
    "icon": "https://example.invalid/zundamon.png",
}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

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


@contextmanager
def legacy_participant(behaviour: Behaviour = "ok") -> Iterator[str]:
    """Serve on 127.0.0.1 (a free port) until the block exits; yields its base URL."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.behaviour = behaviour
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
