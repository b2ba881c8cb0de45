"""Real `roomverse` processes for tests, followed through their JSON event lines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from node.control.socket import control_request
from tests.support.line_reader import Event, LineReader, json_event, plain_line
from tests.support.waiting import wait_until

Predicate = Callable[[Event], bool]

REPO = Path(__file__).resolve().parents[2]
POLL_INTERVAL_S = 0.1
"""Between two polls of a condition only a request can answer (e.g. `roomverse status`)."""


class JsonLinesProcess:
    """A subprocess whose stdout is one JSON object per line; events are kept in order.

    Both streams are read by :class:`~tests.support.line_reader.LineReader`: :attr:`out`
    (stdout, parsed as events) and :attr:`err` (stderr, as text).
    """

    def __init__(self, argv: Sequence[str], *, prefix: Sequence[str] = (), name: str = "") -> None:
        self.name = name or Path(argv[0]).name
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [*prefix, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = LineReader(self.proc.stdout, json_event, label=self.name)
        self.err = LineReader(self.proc.stderr, plain_line, label=f"{self.name} (stderr)")
        self.events: list[Event] = self.out.items
        self.stderr_lines: list[str] = self.err.items

    def wait_for(self, predicate: Predicate, timeout: float, what: str = "event") -> Event:
        """The first event (old or new) matching ``predicate``; AssertionError on timeout,
        or at once when the process's output ends without one."""
        scanned = 0  # events before this index did not match: each is tried once

        def first_match(events: list[Event]) -> Event | None:
            nonlocal scanned
            for event in events[scanned:]:
                if predicate(event):
                    return event
                scanned += 1
            return None

        return self.out.wait_until(first_match, timeout, what, detail=self.diagnosis)

    def wait_until(self, check: Callable[[list[Event]], bool], timeout: float, what: str) -> None:
        """Wait until ``check(all events so far)`` holds."""
        self.out.wait_until(check, timeout, what, detail=self.diagnosis)

    def diagnosis(self) -> str:
        """For failures: the exit code, the last events, the end of stderr."""
        return (
            f"{self.name}: exit={self.proc.poll()}; last events: {self.out.snapshot()[-5:]}; "
            f"stderr tail: {self.err.snapshot()[-10:]}"
        )

    def of(self, event: str) -> list[Event]:
        return [e for e in self.out.snapshot() if e.get("event") == event]

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, then SIGKILL if needed; returns the exit code. Every pipe is
        closed on the way out (safe to call again, e.g. after :meth:`kill`)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._close_pipes()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        """After the process's end: close stdin, let the readers drain and close
        stdout and stderr."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self.out.join()
        self.err.join()


def roomverse_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "node", *args]


class NodeProcess(JsonLinesProcess):
    """`roomverse node ... --log-format json`, started the way a user starts it."""

    def __init__(
        self,
        character: Path,
        data_dir: Path,
        *,
        listen: Sequence[str] = ("/ip4/127.0.0.1/tcp/0",),
        bootstrap: Sequence[str] = (),
        mdns: bool = False,
        prefix: Sequence[str] = (),
        extra: Sequence[str] = (),
        verbose: int = 0,
    ) -> None:
        args = ["-v"] * verbose + ["node", "--character", str(character)]
        args += ["--data-dir", str(data_dir)]
        args += ["--log-format", "json", *extra]
        for addr in listen:
            args += ["--listen", addr]
        for addr in bootstrap:
            args += ["--bootstrap", addr]
        if not mdns:
            args.append("--no-mdns")
        super().__init__(roomverse_argv(*args), prefix=prefix, name=data_dir.name)
        self.character = character
        self.data_dir = data_dir
        self.ready: Event = {}

    def wait_ready(self, timeout: float = 30.0) -> Event:
        self.ready = self.wait_for(lambda e: e.get("event") == "ready", timeout, "ready")
        return self.ready

    @property
    def peer_id(self) -> str:
        return str(self.ready["peer_id"])

    @property
    def addrs(self) -> list[str]:
        return list(self.ready["addrs"])

    def act(self, *words: str) -> dict[str, Any]:
        out = run_cli("act", "--data-dir", str(self.data_dir), *words)
        return dict(json.loads(out))

    def status(self) -> dict[str, Any]:
        return dict(json.loads(run_cli("status", "--data-dir", str(self.data_dir))))

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        """Ask the node over its control socket directly (no CLI process: fast enough to
        take near-simultaneous readings of many nodes)."""
        return dict(control_request(self.data_dir, request))

    def directory(self, search: str | None = None) -> dict[str, Any]:
        return self.control({"cmd": "directory", "search": search})

    def presence(self) -> dict[str, str]:
        """PeerID → status (online, away, asleep, offline, left) as this node sees it."""
        return {row["peer_id"]: row["status"] for row in self.directory()["entries"]}

    def wait_directory(
        self, check: Callable[[dict[str, str]], bool], timeout: float, what: str
    ) -> float:
        """Poll :meth:`presence` until ``check`` holds; return the seconds it took."""
        start = time.monotonic()
        seen: dict[str, str] = {}

        def holds() -> bool:
            nonlocal seen
            seen = self.presence()
            return check(seen)

        wait_until(
            holds,
            timeout,
            f"{self.name}: {what}",
            poll=POLL_INTERVAL_S,
            detail=lambda: f"saw {seen}",
        )
        return time.monotonic() - start

    def wait_directory_summary(
        self, check: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> None:
        """Poll the ``directory`` reply (counts, digest, own clock) until ``check`` holds."""
        reply: dict[str, Any] = {}

        def holds() -> bool:
            nonlocal reply
            reply = self.directory()
            return check(reply)

        wait_until(
            holds,
            timeout,
            f"{self.name}: {what}",
            poll=POLL_INTERVAL_S,
            detail=lambda: f"saw {reply}",
        )

    def wait_topic_peers(self, peer_ids: Sequence[str], timeout: float = 20.0) -> None:
        """Wait until all ``peer_ids`` listen on the actions topic, as this node sees it."""
        listening: set[str] = set()

        def all_listen() -> bool:
            nonlocal listening
            listening = set(self.status()["topic_peers"]["roomverse/1/actions"])
            return set(peer_ids) <= listening

        wait_until(
            all_listen,
            timeout,
            f"{self.name}: {sorted(peer_ids)} on the actions topic",
            poll=POLL_INTERVAL_S,
            detail=lambda: f"listening: {sorted(listening)}",
        )

    def received_from(self, peer_id: str) -> list[Event]:
        return [e for e in self.of("action_received") if e.get("from") == peer_id]


class FakeEngineProcess(JsonLinesProcess):
    """`python -m node.testing.fake_openai`: an OpenAI-compatible engine on loopback."""

    def __init__(self, *, model: str = "fake-model", timeout: float = 30.0) -> None:
        argv = [sys.executable, "-m", "node.testing.fake_openai", "--model", model]
        super().__init__(argv, name="engine")
        first = self.wait_for(lambda e: "line" in e, timeout, "the engine's URL")
        self.base_url = str(first["line"]).strip()
        self.model = model

    def engine(self, **settings: Any) -> dict[str, Any]:
        """The character file's ``engine`` object for this engine."""
        return {
            "preset": "openai-compatible",
            "base_url": self.base_url,
            "model": self.model,
            "timeout_s": 10,
            **settings,
        }


def run_cli(*args: str, check: bool = True, timeout: float = 60.0) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        roomverse_argv(*args), capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
    )
    if check and done.returncode != 0:
        raise AssertionError(f"roomverse {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


NO_ENGINE: dict[str, Any] = {
    "preset": "openai-compatible",
    "base_url": "http://127.0.0.1:9/v1",
    "timeout_s": 2,
}
"""Tests that do not talk through an engine name one that refuses at once (the discard
port on loopback): never the embedded engine, which would fetch a model."""


def write_character(
    directory: Path,
    name: str,
    *,
    engine: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    **network: Any,
) -> Path:
    """A character file; autonomy and reactions are off unless ``extra`` turns them on
    (so that a test counts only the engine calls it makes happen)."""
    path = directory / f"{name.lower()}.json"
    config: dict[str, Any] = {
        "name": name,
        "persona": {"personality": f"{name} is a test character."},
        "engine": engine or NO_ENGINE,
        "autonomy": {"enabled": False},
        "reactions": {"enabled": False},
    }
    if network:
        config["network"] = network
    config.update(extra or {})
    path.write_text(json.dumps(config))
    return path


def start_character(
    tmp_path: Path, started: list[NodeProcess], name: str, **kw: Any
) -> NodeProcess:
    """Write a character file, start its node in ``tmp_path/data-<name>``, wait until
    ready; ``started`` collects it for the ``nodes`` fixture to stop."""
    node = NodeProcess(write_character(tmp_path, name), tmp_path / f"data-{name.lower()}", **kw)
    started.append(node)
    node.wait_ready()
    return node
