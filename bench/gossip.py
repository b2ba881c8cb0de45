"""Gossip benchmark: signed-action throughput and latency next to raw py-libp2p gossipsub.

    python bench/gossip.py [--count 2000] [--count-w1 500] [--rounds 2]
                           [--skip-node] [--skip-rss] [--ack tcp|gossip] [--meshsub 1.2|1.1]

Two OS processes on 127.0.0.1 (``bench/_gossip_worker.py``), a publisher and a receiver,
each with its own ``trio.run`` and ``node._libp2p`` host; both subscribe to the topic, as
nodes do. Windows 1 and 32: at most W messages unacknowledged; the receiver acks every
message over one plain TCP connection (the same ack path for every variant, outside
libp2p so that it costs the gossip path nothing; ``--ack gossip`` uses a second gossipsub
topic instead). Variants, each in fresh processes:

* ``raw``     ``P2PHost.publish`` of a 256-byte payload, no validator, no envelope;
* ``signed``  ``keys.seal`` per message (a speak action with 256 characters of text); a
  topic validator running ``keys.verify`` (transport peer + replay window) on both hosts,
  as nodes have, and the receiver's consumer verifies again and records the replay window;
* ``node``    two real nodes (``node.process.run_node``, SQLite in a temporary dir):
  ``CharacterNode.publish`` → the receiving node's validator, consumer, SQLite batch and
  ``action_received`` event (JSON lines to /dev/null).

Latency: publish call → receipt at the receiver (``time.time_ns()`` in both processes, one
machine, one clock). Throughput: acked messages / (last ack − first publish). CPU: user +
system CPU per message of each process (/proc), which other load on the machine
disturbs far less than throughput. With ``--rounds N`` the variants are interleaved N
times and medians are shown. Last, the RSS of one idle ``roomverse node`` process.

Prints, never asserts; always exits 0. Every wait is bounded (``--timeout`` per window).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from _gossip_common import VARIANTS, process_cpu_s
from _gossip_results import Event, IdleRss, VariantRun, print_report

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().with_name("_gossip_worker.py")
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


class Worker:
    """A child process whose stdout is JSON lines, read by a thread into a queue."""

    def __init__(self, argv: Sequence[str], *, name: str, cpu: int | None = None) -> None:
        self.name = name
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
            preexec_fn=pin if cpu is not None else None,
        )
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.stderr_tail: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                self.events.put(event)
        self.events.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail.append(line.decode(errors="replace").rstrip())
            del self.stderr_tail[:-20]

    def next_event(self, timeout: float) -> Event | None:
        """The next JSON event, or None on timeout or end of output."""
        try:
            return self.events.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def wait_for(self, kinds: set[str], timeout: float) -> Event | None:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            event = self.next_event(remaining)
            if event is None:
                return None
            if event.get("type") in kinds or event.get("event") in kinds:
                return event
        return None

    def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Wait for exit (bounded), then SIGTERM, then SIGKILL."""
        self.close_stdin()
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and self.proc.poll() is None:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout if sig is None else 5.0)
                return
            except subprocess.TimeoutExpired:
                continue

    def why(self) -> str:
        tail = " | ".join(self.stderr_tail[-3:])
        return f"{self.name} exit={self.proc.poll()} stderr: {tail or '-'}"


def run_variant(variant: str, args: argparse.Namespace) -> VariantRun:
    run = VariantRun(variant)
    worker = [sys.executable, str(WORKER)]
    common = ["--variant", variant, "--ack", args.ack, "--meshsub", args.meshsub]
    lifetime = str(args.timeout * 3 + READY_TIMEOUT_S * 4)
    receiver = Worker(
        [*worker, "receive", *common, "--max-seconds", lifetime],
        name=f"{variant} receiver",
        cpu=1 if args.pin else None,
    )
    publisher: Worker | None = None
    try:
        ready = receiver.wait_for({"ready"}, READY_TIMEOUT_S)
        if ready is None:
            run.error = f"receiver not ready in {READY_TIMEOUT_S:.0f}s ({receiver.why()})"
            return run
        plan = [
            *("--receiver", json.dumps(ready)),
            *("--plan", f"1:{args.count_w1},32:{args.count}"),
            *("--warmup", str(args.warmup)),
            *("--timeout", str(args.timeout)),
            *("--loss-timeout", str(args.loss_timeout)),
        ]
        publisher = Worker(
            [*worker, "publish", *common, *plan],
            name=f"{variant} publisher",
            cpu=0 if args.pin else None,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S * 2 + args.timeout * 3
        while (remaining := deadline - time.monotonic()) > 0:
            event = publisher.next_event(remaining)
            if event is None:
                run.error = f"publisher stopped early ({publisher.why()})"
                break
            if event.get("type") == "result":
                run.results[int(event["window"])] = event
            elif event.get("type") == "error":
                run.error = str(event.get("error"))
                break
            elif event.get("type") == "done":
                run.publisher_drops = event.get("drops")
                break
        else:
            run.error = "publisher timed out"
        publisher.stop()
        receiver.close_stdin()
        run.receiver = receiver.wait_for({"stats"}, STOP_TIMEOUT_S)
        if run.receiver is None and run.error is None:
            receiver.stop()
            run.error = f"receiver gave no stats ({receiver.why()})"
    finally:
        if publisher is not None:
            publisher.stop()
        receiver.stop()
    return run


def idle_node_rss(settle_s: float) -> IdleRss:
    """Start a real ``roomverse node``, wait for ``ready`` and ``settle_s``, read VmRSS."""
    with tempfile.TemporaryDirectory(prefix="rv-bench-idle-") as tmp:
        character = Path(tmp) / "idle.json"
        character.write_text(json.dumps({"name": "Idle"}), encoding="utf-8")
        node = Worker(
            [
                sys.executable,
                "-m",
                "node",
                "node",
                "--character",
                str(character),
                "--data-dir",
                str(Path(tmp) / "data"),
                "--no-mdns",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--log-format",
                "json",
            ],
            name="idle node",
        )
        try:
            if node.wait_for({"ready"}, READY_TIMEOUT_S) is None:
                return IdleRss(None, None, error=f"no ready event ({node.why()})")
            cpu_before, started = process_cpu_s(node.proc.pid), time.monotonic()
            time.sleep(settle_s)
            cpu_after, elapsed = process_cpu_s(node.proc.pid), time.monotonic() - started
            status = _proc_status(node.proc.pid)
            rss, hwm = status.get("VmRSS"), status.get("VmHWM")
            cpu = None
            if cpu_before is not None and cpu_after is not None and elapsed > 0:
                cpu = (cpu_after - cpu_before) / elapsed * 100
            return IdleRss(
                rss / 1024 if rss is not None else None,
                hwm / 1024 if hwm is not None else None,
                cpu,
            )
        finally:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
            node.stop()


def _proc_status(pid: int) -> dict[str, int]:
    """``VmRSS`` etc. in KiB from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if key.startswith("Vm") and len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0])
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=2000, help="messages at window 32")
    parser.add_argument("--count-w1", type=int, default=500, help="messages at window 1")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured messages first")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    parser.add_argument("--timeout", type=float, default=30.0, help="per window, seconds")
    parser.add_argument("--loss-timeout", type=float, default=2.0, help="unacked → lost, s")
    parser.add_argument("--settle", type=float, default=3.0, help="idle node: s after ready")
    parser.add_argument("--skip-node", action="store_true", help="no full-node variant")
    parser.add_argument("--skip-rss", action="store_true", help="no idle-node RSS")
    parser.add_argument("--pin", action="store_true", help="pin publisher/receiver to CPU 0/1")
    parser.add_argument(
        "--meshsub",
        choices=("1.2", "1.1"),
        default="1.2",
        help="1.2: as node._libp2p ships; 1.1: without /meshsub/1.2.0",
    )
    parser.add_argument(
        "--ack",
        choices=("tcp", "gossip"),
        default="tcp",
        help="ack path receiver -> publisher: plain TCP (default) or a raw gossipsub topic",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.rounds = max(1, args.rounds)
    if args.pin and (os.cpu_count() or 1) < 2:
        args.pin = False
    variants = [v for v in VARIANTS if not (v == "node" and args.skip_node)]
    started = time.monotonic()
    load_before = os.getloadavg()
    runs: list[VariantRun] = []
    for round_no in range(args.rounds):
        # Rotate the order so that drift (thermal, other load) hits every variant alike.
        shift = round_no % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            print(f"round {round_no + 1}/{args.rounds}: {variant} ...", file=sys.stderr)
            runs.append(run_variant(variant, args))
    rss = None if args.skip_rss else idle_node_rss(args.settle)
    load_after = os.getloadavg()
    print_report(runs, variants, args, rss, (load_before, load_after), time.monotonic() - started)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
    sys.exit(0)
