"""Bridge benchmark (issue 13): what the bridge's HTTP face costs, beside a minimal FastAPI
app doing the same in the same run.

    python3 bench/bridge_http.py [--seconds 5] [--concurrency 8] [--chats 40]

Three processes on loopback: a character (Mina) whose engine is a fake OpenAI-compatible
server answering at once, ``roomverse bridge --character Mina`` bootstrapped to her, and
the baseline (``bench/_bridge_baseline.py`` under uvicorn). Printed: ``GET /manifest``
requests/s (``--concurrency`` clients for ``--seconds``) and ``POST /chat`` latency —
for the bridge a real visit turn (HTTP → libp2p visit stream → Mina's engine → back), for
the baseline a canned reply — with the ratio. The engine answers at once, so the bridge's
figure is its overhead plus the visit protocol's. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Final

import httpx
import trio

from node.testing import serve_fake_openai

REPO: Final = Path(__file__).resolve().parent.parent
READY_S: Final = 60.0
UVICORN: Final = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
NO_LIMITS: Final = [
    "--visits-per-minute",
    "1000000",
    "--chats-per-minute",
    "1000000",
    "--requests-per-minute",
    "1000000",
]


class Process:
    """A subprocess whose stdout (JSON events) and stderr lines are read in threads."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": f"{REPO}:{REPO / 'bench'}"}
        self._out = open(log, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            argv, stdout=self._out, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def wait_for(self, pattern: re.Pattern[str], what: str) -> re.Match[str]:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            for line in self.lines():
                found = pattern.search(line)
                if found:
                    return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"no {what}; log:\n" + "\n".join(self.lines()[-20:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()


@contextmanager
def running(argv: list[str], log: Path) -> Iterator[Process]:
    process = Process(argv, log)
    try:
        yield process
    finally:
        process.stop()


def event(process: Process, name: str) -> dict[str, Any]:
    found = process.wait_for(re.compile(rf'^\{{"event": "{name}".*$'), name)
    result: dict[str, Any] = json.loads(found.group(0))
    return result


async def hammer(url: str, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    """GET ``url`` from ``concurrency`` clients for ``seconds``: requests/s and latencies."""
    latencies: list[float] = []
    failures = 0
    deadline = trio.current_time() + seconds

    async def client() -> None:
        nonlocal failures
        async with httpx.AsyncClient(timeout=10) as http:
            while trio.current_time() < deadline:
                started = time.perf_counter()
                response = await http.get(url)
                if response.status_code != 200:
                    failures += 1
                latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(client)
    if failures:
        raise RuntimeError(f"{failures} of {len(latencies)} requests to {url} failed")
    return len(latencies) / (time.perf_counter() - started), latencies


async def chats(base: str, visitor_url: str, count: int, *, visit: bool) -> list[float]:
    """``count`` sequential POST /chat latencies; for the bridge, inside visits (a new one
    opened, untimed, whenever the last one is over: a visit has at most 64 lines)."""
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=120) as http:

        async def knock() -> str:
            first = await http.post(
                f"{base}/visit",
                json={"visitor": {"name": "Zundamon", "url": visitor_url}, "message": "やあ"},
            )
            first.raise_for_status()
            conversation: str = first.json()["conversation_id"]
            return conversation

        conversation = await knock() if visit else "baseline"
        for n in range(count):
            body = {"conversation_id": conversation, "message": f"line {n} なのだ"}
            started = time.perf_counter()
            response = await http.post(f"{base}/chat", json=body)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            if visit and response.json()["done"]:
                conversation = await knock()
    return latencies


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-bridge-"))
    async with serve_fake_openai(model="mina-model") as engine:
        character = tmp / "mina.json"
        character.write_text(
            json.dumps(
                {
                    "name": "Mina",
                    "persona": {"personality": "Curious and warm."},
                    "engine": {
                        "preset": "openai-compatible",
                        "base_url": engine.base_url,
                        "model": "mina-model",
                    },
                    "autonomy": {"enabled": False},
                    "visits": {"max_turns": 64, "per_visitor_per_hour": 120},
                }
            )
        )
        with ExitStack() as stack:
            node_argv = [sys.executable, "-m", "node", "node", "--character", str(character)]
            node_argv += ["--data-dir", str(tmp / "mina"), "--no-mdns", "--no-greet"]
            node_argv += ["--listen", "/ip4/127.0.0.1/tcp/0", "--log-format", "json"]
            mina = stack.enter_context(running(node_argv, tmp / "mina.log"))
            addrs = (await trio.to_thread.run_sync(event, mina, "ready"))["addrs"]
            await trio.to_thread.run_sync(event, mina, "engine_ready")
            bridge_argv = [sys.executable, "-m", "bridge", "--open", "--http", "127.0.0.1:0"]
            bridge_argv += ["--allow-private-urls", "--character", "Mina", "--no-mdns"]
            bridge_argv += ["--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", addrs[0]]
            bridge_argv += ["--data-dir", str(tmp / "bridge"), "--log-format", "json"]
            bridge = stack.enter_context(running([*bridge_argv, *NO_LIMITS], tmp / "bridge.log"))
            bridge_url = (await trio.to_thread.run_sync(event, bridge, "bridge_ready"))["url"]
            uvicorn_argv = [sys.executable, "-m", "uvicorn", "_bridge_baseline:app"]
            uvicorn_argv += ["--host", "127.0.0.1", "--port", "0", "--log-level", "info"]
            baseline = stack.enter_context(running(uvicorn_argv, tmp / "baseline.log"))
            found = await trio.to_thread.run_sync(baseline.wait_for, UVICORN, "uvicorn")
            baseline_url = found.group(1)
            async with httpx.AsyncClient(timeout=5) as http:
                for _ in range(int(READY_S * 10)):  # until Mina is in the bridge's directory
                    if (await http.get(f"{bridge_url}/manifest")).status_code == 200:
                        break
                    await trio.sleep(0.1)
                else:
                    raise RuntimeError("Mina never appeared at the bridge")

            rows = []
            for name, base in (("bridge", bridge_url), ("FastAPI + uvicorn", baseline_url)):
                rate, latencies = await hammer(f"{base}/manifest", args.seconds, args.concurrency)
                rows.append((name, rate, ms(latencies, 0.5), ms(latencies, 0.99)))
            chat_rows = []
            for name, base, visit in (
                ("bridge (a visit turn)", bridge_url, True),
                ("FastAPI + uvicorn (canned)", baseline_url, False),
            ):
                latencies = await chats(base, baseline_url, args.chats, visit=visit)
                chat_rows.append((name, ms(latencies, 0.5), ms(latencies, 0.99)))
    load = os.getloadavg()[0]
    print(f"bridge benchmark, {os.cpu_count()} cores, load {load:.1f} at the end")
    print(f"\nGET /manifest, {args.concurrency} clients for {args.seconds:g} s")
    print(f"  {'server':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, rate, p50, p99 in rows:
        print(f"  {name:<28} {rate:>8.0f} {p50:>8.1f} {p99:>8.1f}")
    print(f"  ratio bridge / baseline: {rows[0][1] / rows[1][1]:.2f}")
    print(f"\nPOST /chat, {args.chats} in a row (the engine answers at once)")
    print(f"  {'server':<28} {'p50 ms':>8} {'p99 ms':>8}")
    for name, p50, p99 in chat_rows:
        print(f"  {name:<28} {p50:>8.1f} {p99:>8.1f}")
    print(f"  ratio bridge / baseline (p50): {chat_rows[0][1] / chat_rows[1][1]:.1f}")
    print(
        f"to reproduce: python3 bench/bridge_http.py --seconds {args.seconds:g} "
        f"--concurrency {args.concurrency} --chats {args.chats}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--chats", type=int, default=40)
    trio.run(main, parser.parse_args())
