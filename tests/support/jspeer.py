"""Drive the js-libp2p 2.x test peer (``js/peer.mjs``) from pytest.

Usage::

    js_dir = ensure_js_deps()
    if js_dir is None:
        pytest.skip(js_skip_reason())
    with JsPeer(js_dir, topics=["roomverse/1/actions"], mdns=False) as peer:
        ready = peer.ready
        peer.send({"cmd": "dial", "addr": "/ip4/127.0.0.1/tcp/4001/p2p/12D3..."})
        peer.wait_for(lambda e: e["event"] == "peer_connected", timeout=10)

``peer.mjs`` prints one JSON object per line on stdout (events) and reads one
JSON command per line on stdin; see the header of ``peer.mjs``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.ci_gate import in_ci
from tests.support.line_reader import Event, LineReader, json_event, plain_line

JS_DIR = Path(__file__).resolve().parent.parent / "interop" / "js"

#: Why ``ensure_js_deps`` returned None (for ``pytest.skip``); None after success.
JS_SKIP_REASON: str | None = None

_deps_lock = threading.Lock()
_deps_result: Path | None = None
_deps_done = False
_npm_failed = False


class JsDepsError(RuntimeError):
    """``npm ci`` failed with ``CI=true``: there that is a failure, never a skip."""


def _fail_in_ci() -> None:
    if _npm_failed and in_ci():
        raise JsDepsError(JS_SKIP_REASON or "npm ci failed")


Predicate = Callable[[Event], bool]


def ensure_js_deps(js_dir: Path = JS_DIR, timeout: float = 300.0) -> Path | None:
    """Install the js peer's npm dependencies once (``npm ci``) if missing.

    Returns the folder holding ``peer.mjs``, or None when node/npm are missing
    or the install failed; the reason is then in ``JS_SKIP_REASON``. With ``CI=true``
    a failed install raises :class:`JsDepsError` (every call) instead.
    """
    global JS_SKIP_REASON, _deps_result, _deps_done, _npm_failed
    with _deps_lock:
        if _deps_done:
            _fail_in_ci()
            return _deps_result
        _deps_done = True
        node = shutil.which("node")
        npm = shutil.which("npm")
        if node is None or npm is None:
            JS_SKIP_REASON = "node and npm are required for js-libp2p interop tests"
            return None
        try:
            out = subprocess.run(
                [node, "--version"], capture_output=True, text=True, timeout=30, check=True
            )
        except (OSError, subprocess.SubprocessError) as exc:
            JS_SKIP_REASON = f"node --version failed: {exc}"
            return None
        major = out.stdout.strip().lstrip("v").split(".", 1)[0]
        if not major.isdigit() or int(major) < 20:
            JS_SKIP_REASON = f"node >= 20 required, found {out.stdout.strip()}"
            return None
        marker = js_dir / "node_modules" / "libp2p" / "package.json"
        if not marker.exists():
            try:
                res = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund"],
                    cwd=js_dir,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                JS_SKIP_REASON = f"npm ci failed: {exc}"
                _npm_failed = True
                _fail_in_ci()
                return None
            if res.returncode != 0 or not marker.exists():
                tail = (res.stderr or res.stdout).strip()[-2000:]
                JS_SKIP_REASON = f"npm ci failed (exit {res.returncode}): {tail}"
                _npm_failed = True
                _fail_in_ci()
                return None
        JS_SKIP_REASON = None
        _deps_result = js_dir
        return js_dir


def js_skip_reason() -> str:
    """Why the last ``ensure_js_deps`` call returned None (for ``pytest.skip``)."""
    return JS_SKIP_REASON or "js-libp2p test peer unavailable"


class JsPeerError(RuntimeError):
    """The js peer is not running when sent a command."""


class JsPeer:
    """A ``node peer.mjs`` subprocess whose stdout events are taken one by one.

    Both streams are read by :class:`~tests.support.line_reader.LineReader`: every event
    is in ``events`` (full history); ``wait_for`` takes each at most once. Stderr is kept
    in ``stderr_lines`` for failure messages.
    """

    def __init__(
        self,
        js_dir: Path | None = None,
        *,
        listen: Sequence[str] = (),
        topics: Sequence[str] = (),
        mdns: bool = True,
        mdns_interval_ms: int = 1000,
        muxers: Sequence[str] = (),
        autodial: bool = True,
        prefix: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        self.js_dir = js_dir if js_dir is not None else JS_DIR
        args: list[str] = [*prefix, shutil.which("node") or "node", "peer.mjs"]
        for addr in listen:
            args += ["--listen", addr]
        for topic in topics:
            args += ["--topic", topic]
        if not mdns:
            args.append("--no-mdns")
        else:
            args += ["--mdns-interval", str(mdns_interval_ms)]
        for muxer in muxers:
            args += ["--muxer", muxer]
        if not autodial:
            args.append("--no-autodial")
        args += list(extra_args)
        self.args = args
        self._taken: set[int] = set()
        """Indexes in ``events`` already returned by ``wait_for``."""
        self._send_lock = threading.Lock()
        self.proc = subprocess.Popen(
            args,
            cwd=self.js_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = LineReader(self.proc.stdout, json_event, label="js peer")
        self.err = LineReader(self.proc.stderr, plain_line, label="js peer (stderr)")
        self.events: list[Event] = self.out.items
        self.stderr_lines: list[str] = self.err.items
        try:
            self.ready: Event = self.wait_for(
                lambda e: e["event"] == "ready", ready_timeout, "ready"
            )
        except BaseException:
            self.stop()
            raise
        self.peer_id: str = self.ready["peer_id"]
        self.addrs: list[str] = list(self.ready["addrs"])

    def wait_for(self, predicate: Predicate, timeout: float = 10.0, what: str = "event") -> Event:
        """Return the first not-yet-taken event matching ``predicate``, and take it.

        Events that do not match stay for later ``wait_for`` calls (a command's answer is
        taken once, so the next command of the same kind waits for its own). Fails
        (AssertionError) on timeout, or as soon as the peer's output ends without one.
        """

        def first_untaken(events: list[Event]) -> tuple[int, Event] | None:
            for i, event in enumerate(events):
                if i not in self._taken and predicate(event):
                    return i, event
            return None

        index, event = self.out.wait_until(first_untaken, timeout, what, detail=self._diag)
        self._taken.add(index)
        return event

    def send(self, cmd: dict[str, Any]) -> None:
        """Write one JSON command line to the peer's stdin."""
        if self.proc.stdin is None or self.proc.poll() is not None:
            raise JsPeerError(f"js peer is not running: {self._diag()}")
        with self._send_lock:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()

    def dial(self, addr: str, timeout: float = 15.0) -> Event:
        self.send({"cmd": "dial", "addr": addr})
        return self.wait_for(
            lambda e: (
                (e["event"] == "dialed" and e.get("addr") == addr)
                or (e["event"] == "error" and e.get("cmd") == "dial")
            ),
            timeout,
        )

    def publish(self, topic: str, data: bytes, timeout: float = 10.0) -> Event:
        """Publish and return the ``published`` (or ``error``) event."""
        self.send({"cmd": "publish", "topic": topic, "data_b64": base64.b64encode(data).decode()})
        return self.wait_for(
            lambda e: e["event"] in ("published", "error") and e.get("topic") == topic,
            timeout,
        )

    def peers(self, timeout: float = 10.0) -> Event:
        self.send({"cmd": "peers"})
        return self.wait_for(lambda e: e["event"] == "peers", timeout)

    def wait_for_message(
        self, topic: str, data: bytes | None = None, timeout: float = 10.0
    ) -> Event:
        b64 = None if data is None else base64.b64encode(data).decode()
        return self.wait_for(
            lambda e: (
                e["event"] == "message"
                and e.get("topic") == topic
                and (b64 is None or e.get("data_b64") == b64)
            ),
            timeout,
        )

    def wait_for_subscriber(self, peer_id: str, topic: str, timeout: float = 10.0) -> Event:
        return self.wait_for(
            lambda e: (
                e["event"] == "subscription_change"
                and e.get("peer_id") == peer_id
                and topic in e.get("topics", [])
            ),
            timeout,
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """Ask the peer to stop (stdin EOF), then SIGTERM, then SIGKILL; every pipe is
        closed on the way out (the readers close stdout and stderr at their end)."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        self.out.join()
        self.err.join()
        return self.proc.returncode

    def __enter__(self) -> JsPeer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _diag(self) -> str:
        tail = "\n".join(self.err.snapshot()[-30:])
        last = self.out.snapshot()[-5:]
        return f"exit={self.proc.poll()}, last events={last}, stderr tail:\n{tail}"
