"""Firehose benchmark: WebSocket viewers on loopback, events from the network.

    python3 bench/firehose_load.py [--viewers 100,1000,2000] [--rate 100] [--duration 30]
                              [--client-procs 2] [--pin] [--check]

Each run (one per ``--viewers`` value) starts fresh processes, all on 127.0.0.1:

* the firehose, ``python -m firehose`` (its own process, so its RSS and CPU are its own);
* a character node (``bench/_firehose_publisher.py``, ``node.process.run_node``, no
  engine) bootstrapped to the firehose, publishing 256-character ``speak`` actions at
  ``--rate``/s over libp2p gossipsub: the events come from the network, through the
  firehose's validator, SQLite store and hub;
* the viewers: ``--client-procs`` processes of lean WebSocket clients
  (``bench/_firehose_viewers.py``), plus one probe viewer alone in its own process,
  connected last (so, in the fan-out order, last).

Latency = publish call in the node → frame read off the viewer's socket (both
``time.time_ns()``, one machine, one clock), over every (viewer, event) delivery. Loss =
events published − events a viewer received, for every viewer the firehose did not close.
RSS of the firehose: before the viewers, after they connect, peak (VmHWM) and at the
end. CPU: user + system seconds of each process while the node publishes, as % of one
core; on a 2-core machine the clients compete with the firehose for CPU, which the
figures show (``--pin``: the firehose alone on CPU 0, everything else on CPU 1). The
firehose's own ``/api/stats`` splits a viewer's latency: ``ingest_lag_ms`` (sealed in
the node → reached the hub) and ``loop_lag_ms`` (how late its event loop runs).
Prints, never asserts; exits 0. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _firehose_common import latency_cells, percentile, send_line, split
from _gossip_common import process_cpu_s
from gossip import Worker, _proc_status

BENCH = Path(__file__).resolve().parent
PUBLISHER = BENCH / "_firehose_publisher.py"
VIEWERS = BENCH / "_firehose_viewers.py"
READY_TIMEOUT_S = 60.0
RSS_SAMPLE_S = 0.25


@dataclass
class Run:
    """What one run measured."""

    viewers: int
    client_procs: int
    published: int = 0
    publish_s: float = 0.0
    late: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    probe_ms: list[float] = field(default_factory=list)
    lost: int = 0
    viewers_with_loss: int = 0
    closed: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    disorder: int = 0
    frames: int = 0
    lines: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)
    rss_kib: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    publish_call_ms: tuple[float | None, float | None] = (None, None)
    firehose_cpu_total_s: float = 0.0
    """Firehose CPU from the first publish until every viewer had everything."""
    total_s: float = 0.0
    error: str | None = None


class RssSampler:
    """VmRSS of one process every ``RSS_SAMPLE_S``, in a thread, until stopped (the peak
    is also read from VmHWM at the end; the samples are the check on it)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            rss = _proc_status(self.pid).get("VmRSS")
            if rss is not None:
                self.samples.append(rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(RSS_SAMPLE_S * 4)


def loopback_p2p(addrs: Sequence[str]) -> str:
    for addr in addrs:
        if addr.startswith("/ip4/127.0.0.1/") and "/p2p/" in addr:
            return addr
    raise RuntimeError(f"the firehose has no loopback /p2p/ address: {addrs}")


def cpu_snapshot(workers: dict[str, Worker]) -> dict[str, float]:
    out = {}
    for name, worker in workers.items():
        seconds = process_cpu_s(worker.proc.pid)
        if seconds is not None:
            out[name] = seconds
    return out


def firehose_argv(data_dir: Path, max_per_ip: int) -> list[str]:
    return [
        *(sys.executable, "-m", "firehose", "--http", "127.0.0.1:0"),
        *("--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--log-format", "json"),
        *("--data-dir", str(data_dir), "--max-per-ip", str(max_per_ip)),
    ]


def run_once(viewers: int, args: argparse.Namespace) -> Run:
    run = Run(viewers, len(split(viewers, args.client_procs)))
    with tempfile.TemporaryDirectory(prefix="rv-bench-firehose-") as tmp:
        workers: dict[str, Worker] = {}
        try:
            _run(run, Path(tmp), workers, args)
        except RuntimeError as exc:
            run.error = str(exc)
        finally:
            for name, worker in workers.items():
                if name == "firehose" and worker.proc.poll() is None:
                    worker.proc.send_signal(signal.SIGTERM)
                worker.stop(timeout=10.0)
    return run


def _run(run: Run, tmp: Path, workers: dict[str, Worker], args: argparse.Namespace) -> None:
    server_cpu, client_cpu = (0, 1) if args.pin else (None, None)
    firehose = Worker(
        firehose_argv(tmp / "firehose", run.viewers + 16), name="firehose", cpu=server_cpu
    )
    workers["firehose"] = firehose
    ready = firehose.wait_for({"firehose_ready"}, READY_TIMEOUT_S)
    if ready is None:
        raise RuntimeError(f"firehose not ready ({firehose.why()})")
    url, pid = str(ready["url"]), firehose.proc.pid
    ws_url = url.replace("http://", "ws://") + "/ws"
    publisher = Worker(
        [
            *(sys.executable, str(PUBLISHER)),
            *("--bootstrap", loopback_p2p(ready["addrs"]), "--firehose", str(ready["peer_id"])),
            *("--rate", str(args.rate), "--duration", str(args.duration)),
        ],
        name="publisher",
        cpu=client_cpu,
    )
    workers["publisher"] = publisher
    if publisher.wait_for({"ready"}, READY_TIMEOUT_S) is None:
        raise RuntimeError(f"publisher not ready ({publisher.why()})")
    run.rss_kib["before viewers"] = _proc_status(pid).get("VmRSS", 0)

    outputs: dict[str, Path] = {}
    groups = [(f"viewers{i}", n) for i, n in enumerate(split(run.viewers, args.client_procs))]
    for name, count in [*groups, ("probe", 1)]:
        outputs[name] = tmp / f"{name}.bin"
        argv = [sys.executable, str(VIEWERS), "--url", ws_url, "--viewers", str(count)]
        argv += ["--out", str(outputs[name]), "--drain", str(args.drain)]
        argv += ["--check"] if args.check else []
        workers[name] = Worker(argv, name=name, cpu=client_cpu)
        if name != "probe":
            continue
        # The probe connects last: every other viewer first.
        for other, _ in groups:
            _wait_viewers_ready(workers[other], run)
        _wait_viewers_ready(workers[name], run)
    run.rss_kib["viewers connected"] = _proc_status(pid).get("VmRSS", 0)

    sampler = RssSampler(pid)
    before = cpu_snapshot(workers)
    started = time.monotonic()
    send_line(publisher, "go")
    done = publisher.wait_for({"done", "error"}, args.duration * 3 + READY_TIMEOUT_S)
    after = cpu_snapshot(workers)
    run.publish_s = time.monotonic() - started
    if done is None or done.get("event") != "done":
        sampler.stop()
        raise RuntimeError(f"publisher did not finish ({done or publisher.why()})")
    published = {int(seq): int(ns) for seq, ns in done["published"]}
    run.published = len(published)
    run.late = int(done.get("late", 0))
    run.publish_call_ms = (done.get("publish_call_ms_p50"), done.get("publish_call_ms_p99"))
    run.cpu_s = {name: after[name] - before[name] for name in after if name in before}
    for name in outputs:
        send_line(workers[name], f"expect {run.published}")
    for name in outputs:
        result = workers[name].wait_for({"done"}, args.drain + READY_TIMEOUT_S)
        if result is None:
            raise RuntimeError(f"{name} gave no result ({workers[name].why()})")
        _tally(run, name, result, outputs[name], published)
    run.total_s = time.monotonic() - started
    run.firehose_cpu_total_s = cpu_snapshot({"firehose": firehose}).get("firehose", 0.0) - (
        before.get("firehose", 0.0)
    )
    sampler.stop()
    status = _proc_status(pid)
    run.rss_kib["peak"] = max([status.get("VmHWM", 0), *sampler.samples])
    run.rss_kib["end"] = status.get("VmRSS", 0)
    with urllib.request.urlopen(url + "/api/stats", timeout=10) as reply:
        run.stats = dict(json.load(reply))


def _wait_viewers_ready(worker: Worker, run: Run) -> None:
    ready = worker.wait_for({"ready"}, READY_TIMEOUT_S * 2)
    if ready is None:
        raise RuntimeError(f"{worker.name} never connected ({worker.why()})")
    run.failed += int(ready.get("failed", 0))
    if ready.get("failed"):
        print(f"{worker.name}: {ready['failed']} failed: {ready.get('errors')}", file=sys.stderr)


def _tally(
    run: Run, name: str, result: dict[str, Any], data: Path, published: dict[int, int]
) -> None:
    deliveries = int(result["deliveries"])
    seqs, received = array("q"), array("q")
    with data.open("rb") as source:
        seqs.fromfile(source, deliveries)
        received.fromfile(source, deliveries)
    sink = run.probe_ms if name == "probe" else run.latencies_ms
    sink.extend(
        (r - published[s]) / 1e6 for s, r in zip(seqs, received, strict=True) if s in published
    )
    closed = {int(k): str(v) for k, v in result["closed"].items()}
    for reason in closed.values():
        run.closed[reason] = run.closed.get(reason, 0) + 1
    for index, count in enumerate(result["counts"]):
        if index not in closed and count < run.published:
            run.lost += run.published - count
            run.viewers_with_loss += 1
    run.disorder += int(result["disorder"])
    run.frames += int(result["frames"])
    run.lines += int(result["lines"])


def print_report(runs: list[Run], args: argparse.Namespace, loads: tuple[Any, Any]) -> None:
    print()
    print(
        f"firehose: {args.rate:g} events/s for {args.duration:g} s from a node over libp2p,"
        f" loopback, {os.cpu_count()} CPUs, load {loads[0][0]:.2f} → {loads[1][0]:.2f}"
        f"{', pinned (firehose CPU 0, the rest CPU 1)' if args.pin else ''}"
    )
    print(f"command: python3 bench/firehose_load.py {' '.join(args.argv)}".rstrip())
    print()
    print(
        "| viewers (+1 probe) | client procs | events | lost | closed by firehose |"
        " p50 ms | p90 | p99 | p99.9 | max | probe p50 / p99 ms | events per frame |"
        " CPU % firehose / clients / node | firehose RSS MiB: idle / connected / peak / end |"
    )
    print("|" + "---|" * 14)
    for run in runs:
        if run.error is not None:
            print(f"| {run.viewers} | {run.client_procs} | error: {run.error} |")
            continue
        probe = sorted(run.probe_ms)
        window = run.publish_s or 1.0
        clients = sum(v for k, v in run.cpu_s.items() if k.startswith("viewers"))
        cpu = (
            f"{100 * run.cpu_s.get('firehose', 0) / window:.0f} / {100 * clients / window:.0f}"
            f" / {100 * run.cpu_s.get('publisher', 0) / window:.0f}"
        )
        rss = " / ".join(
            f"{run.rss_kib.get(k, 0) / 1024:.0f}"
            for k in ("before viewers", "viewers connected", "peak", "end")
        )
        closed = ", ".join(f"{n} {why}" for why, n in run.closed.items()) or "0"
        print(
            f"| {run.viewers} | {run.client_procs} | {run.published} | {run.lost}"
            f" ({run.viewers_with_loss} viewers) | {closed} | {latency_cells(run.latencies_ms)} |"
            f" {percentile(probe, 50):.1f} / {percentile(probe, 99):.1f} |"
            f" {run.lines / max(run.frames, 1):.2f} | {cpu} | {rss} |"
        )
    print()
    for run in runs:
        if run.error is not None:
            continue
        drops = run.stats.get("libp2p_drops", {})
        per_frame = 1e6 * run.firehose_cpu_total_s / max(run.frames, 1)
        print(
            f"{run.viewers} viewers: {run.frames / max(run.total_s, 1e-9):,.0f} frames/s over"
            f" {run.total_s:.1f} s, firehose CPU {per_frame:.0f} µs per frame (all of its"
            f" CPU, the node's receive path included);"
            f" {len(run.latencies_ms)} deliveries, {run.failed} failed"
            f" connects, {run.disorder} out of order; node published {run.published} in"
            f" {run.publish_s:.1f} s ({run.late} late), publish call p50/p99"
            f" {_ms(run.publish_call_ms[0])}/{_ms(run.publish_call_ms[1])} ms; firehose"
            f" stats: dropped_viewers={run.stats.get('dropped_viewers')}"
            f" out_of_order={run.stats.get('out_of_order')} libp2p_drops={drops}"
            f" ingest_lag_ms={run.stats.get('ingest_lag_ms')}"
            f" loop_lag_ms={run.stats.get('loop_lag_ms')} fanout={run.stats.get('fanout')}"
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def parse_viewers(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of viewer counts ≥ 1")
    return counts


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="WebSocket viewers of a real firehose on loopback, fed from the network",
        epilog="Prints a table; never asserts; exits 0. Targets (2 cores): 1,000 viewers"
        " p99 ≤ 100 ms and 0 loss; 2,000 viewers 0 loss.",
    )
    parser.add_argument(
        "--viewers",
        type=parse_viewers,
        default=[100, 1000, 2000],
        metavar="N,N",
        help="one run per count (default 100,1000,2000); a probe viewer is added to each",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="events/s (default 100)")
    parser.add_argument("--duration", type=float, default=30.0, help="s of publishing (30)")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=2,
        metavar="K",
        help="processes the viewers are spread over (default 2)",
    )
    parser.add_argument(
        "--drain", type=float, default=20.0, help="s the viewers wait for stragglers (20)"
    )
    parser.add_argument(
        "--pin", action="store_true", help="firehose on CPU 0; node and viewers on CPU 1"
    )
    parser.add_argument(
        "--check", action="store_true", help="viewers JSON-decode every line (slower clients)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.pin and (os.cpu_count() or 1) < 2:
        args.pin = False
    load_before = os.getloadavg()
    runs = []
    for count in args.viewers:
        print(f"{count} viewers ...", file=sys.stderr)
        runs.append(run_once(count, args))
    print_report(runs, args, (load_before, os.getloadavg()))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
    sys.exit(0)
