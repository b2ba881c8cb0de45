"""What a party costs in memory: the whole party, each extra character, the firehose, the
shared model; beside the baseline of a character in a process of its own.

    python3 bench/party_memory.py [--characters 6] [--model qwen2.5-coder-1.5b]

Runs ``roomverse party`` as a user does (a child process, ``--log-format json``) with
``--characters`` characters (the samples, then copies of them under other names), reads
the party's resident memory (VmRSS) after each character joins (its ``party_joined``
events), the firehose child's, and then the process's after the embedded model loaded
(``engine_ready``). Without ``--model`` the characters use a fake OpenAI-compatible engine
on loopback and no model is loaded. Baseline, in the same run: one ``roomverse node`` on
its own (same character, same fake engine), its RSS once ready.

Prints, never asserts. All traffic stays on loopback (mDNS off).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "configs").glob("*.json"))
READY_S = 600.0
"""Long enough for a first-run model download."""
TARGET_EXTRA_MB = 30.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1000
    raise RuntimeError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def write_characters(into: Path, count: int) -> list[Path]:
    """The samples, then copies of them renamed (Mina 2, Kai 2, ...), ``count`` in all."""
    paths = []
    for index in range(count):
        sample = SAMPLES[index % len(SAMPLES)]
        config = json.loads(sample.read_text(encoding="utf-8"))
        round_ = index // len(SAMPLES)
        if round_:
            config["name"] = f"{config['name']} {round_ + 1}"
        path = into / f"character-{index}.json"
        path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
        paths.append(path)
    return paths


class Events:
    """A child's JSON event lines, read as they come."""

    def __init__(self, argv: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        self.seen: list[dict[str, Any]] = []

    def until(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while not done(self.seen):
            if time.monotonic() > deadline:
                raise TimeoutError("the process did not get there in time")
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the process exited ({self.proc.wait()})")
            if line.startswith("{"):
                self.seen.append(json.loads(line))

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e.get("event") == event]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def fake_engine() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.testing.fake_openai", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def measure_party(work: Path, count: int, model: str | None, engine_url: str) -> dict[str, Any]:
    files = write_characters(work, count)
    argv = [sys.executable, "-m", "node", "party", "--data-dir", str(work / "party")]
    argv += ["--http", "127.0.0.1:0", "--log-format", "json", "--characters", *map(str, files)]
    argv += ["--model", model] if model else ["--engine-url", engine_url, "--engine-model", "fake"]
    party = Events(argv)
    try:
        wanted = {"party_joined": count, "firehose_ready": 1, "engine_ready": 1 if model else 0}
        party.until(
            lambda seen: all(
                sum(e.get("event") == name for e in seen) >= n for name, n in wanted.items()
            ),
            READY_S,
        )
        joined = [float(e["rss_mb"]) for e in party.of("party_joined")]
        firehose = [rss_mb(child) for child in children(party.proc.pid)]
        return {
            "joined": joined,
            "firehose": sum(firehose),
            "engine": party.of("engine_ready")[0]["rss_mb"] if model else None,
            "now": rss_mb(party.proc.pid),
        }
    finally:
        party.stop()


def measure_alone(work: Path, engine_url: str) -> float:
    argv = [sys.executable, "-m", "node", "node", "--character", str(SAMPLES[0])]
    argv += ["--data-dir", str(work / "alone"), "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"]
    argv += ["--engine-url", engine_url, "--engine-model", "fake", "--log-format", "json"]
    node = Events(argv)
    try:
        node.until(lambda seen: any(e.get("event") == "engine_ready" for e in seen), READY_S)
        return rss_mb(node.proc.pid)
    finally:
        node.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--characters", type=int, default=6)
    parser.add_argument("--model", help="load this embedded model too (e.g. qwen2.5-coder-1.5b)")
    args = parser.parse_args()
    if args.characters < 2:
        parser.error("--characters must be at least 2")
    engine, url = fake_engine()
    try:
        with tempfile.TemporaryDirectory(prefix="party-memory-") as scratch:
            party = measure_party(Path(scratch), args.characters, args.model, url)
            alone = measure_alone(Path(scratch), url)
    finally:
        engine.terminate()
        engine.wait()
    joined = party["joined"]
    extra = (joined[-1] - joined[0]) / (len(joined) - 1)
    print(f"party of {args.characters} characters, one process (VmRSS, MB)")
    print(f"  after the first character joined     {joined[0]:8.1f}")
    for n, value in enumerate(joined[1:], start=2):
        print(f"  after character {n:<2} joined            {value:8.1f}")
    print(f"  each extra character (mean)           {extra:8.1f}   target <= {TARGET_EXTRA_MB:.0f}")
    if party["engine"] is not None:
        print(f"  with the model {args.model} loaded  {party['engine']:8.1f}")
    print(f"  party process now                     {party['now']:8.1f}")
    print(f"  firehose (its own process)            {party['firehose']:8.1f}")
    print(f"  whole party                           {party['now'] + party['firehose']:8.1f}")
    print("baseline: a character in a process of its own (roomverse node, ready)")
    print(f"  one node                              {alone:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
