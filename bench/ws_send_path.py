"""What one WebSocket frame costs the server, by the way it reaches the socket.

    python3 bench/ws_send_path.py [--paths quart,asgi,trio,lean,fanout] [--viewers 1000]
                                  [--rate 100] [--duration 20] [--interval-ms 50]
                                  [--client-procs 2] [--pin]

``bench/firehose_load.py`` measures the whole firehose; this isolates its send path. For each
path (see ``bench/_ws_send_server.py``: quart-trio on hypercorn as the firehose serves
``/ws`` before issue 15, a bare ASGI app on hypercorn, trio streams, one non-blocking
write loop, and the firehose's own fan-out as it serves ``/ws`` now), a
server process fans ``--rate`` events/s out to ``--viewers`` lean clients
(``bench/_ws_lean_client.py``, in ``--client-procs`` processes) on 127.0.0.1, one frame
per viewer every ``--interval-ms`` holding everything new. The events are made in the
server, so the figures hold the send path alone: no libp2p, no verification, no store.

Prints, per path: the server's CPU per frame sent (all its CPU while publishing and
draining, divided by frames), its CPU % of one core, the clients' CPU %, and event
latency (made in the server → read by a viewer) p50/p99 over every (viewer, event), and
loss. Never asserts; exits 0. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _firehose_common import latency_cells, send_line, split
from gossip import Worker

BENCH = Path(__file__).resolve().parent
SERVER = BENCH / "_ws_send_server.py"
VIEWERS = BENCH / "_ws_send_viewers.py"
PATHS = ("quart", "asgi", "trio", "lean", "fanout")
READY_TIMEOUT_S = 60.0
DRAIN_S = 30.0


@dataclass
class Result:
    path: str
    events: int = 0
    lost: int = 0
    viewers_with_loss: int = 0
    closed: int = 0
    out_of_order: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0
    frames: int = 0
    client_cpu_s: float = 0.0
    wall_s: float = 0.0
    error: str | None = None


def run_path(path: str, args: argparse.Namespace) -> Result:
    result = Result(path)
    workers: list[Worker] = []
    with tempfile.TemporaryDirectory(prefix="rv-bench-ws-") as tmp:
        try:
            _run(result, Path(tmp), workers, args)
        except RuntimeError as exc:
            result.error = str(exc)
        finally:
            for worker in workers:
                worker.stop(timeout=10.0)
    return result


def _run(result: Result, tmp: Path, workers: list[Worker], args: argparse.Namespace) -> None:
    server_cpu, client_cpu = (0, 1) if args.pin else (None, None)
    events = int(args.rate * args.duration)
    server = Worker(
        [
            *(sys.executable, str(SERVER), "--path", result.path),
            *("--viewers", str(args.viewers), "--rate", str(args.rate)),
            *("--duration", str(args.duration), "--interval-ms", str(args.interval_ms)),
            *("--event-bytes", str(args.event_bytes)),
        ],
        name="server",
        cpu=server_cpu,
    )
    workers.append(server)
    ready = server.wait_for({"ready"}, READY_TIMEOUT_S)
    if ready is None:
        raise RuntimeError(f"server not ready ({server.why()})")
    clients = []
    for index, count in enumerate(split(args.viewers, args.client_procs)):
        out = tmp / f"viewers{index}.bin"
        argv = [sys.executable, str(VIEWERS), "--port", str(ready["port"])]
        argv += ["--viewers", str(count), "--events", str(events)]
        argv += ["--event-bytes", str(args.event_bytes), "--out", str(out)]
        argv += ["--deadline-s", str(READY_TIMEOUT_S + args.duration * 3 + DRAIN_S)]
        client = Worker(argv, name=f"viewers{index}", cpu=client_cpu)
        workers.append(client)
        clients.append((client, out))
        if (hello := client.wait_for({"ready"}, READY_TIMEOUT_S)) is None or hello["failed"]:
            raise RuntimeError(f"viewers{index} did not connect ({hello or client.why()})")
    if server.wait_for({"connected"}, READY_TIMEOUT_S) is None:
        raise RuntimeError(f"server never saw every viewer ({server.why()})")
    started = time.monotonic()
    send_line(server, "go")
    if server.wait_for({"published"}, args.duration * 3 + READY_TIMEOUT_S) is None:
        raise RuntimeError(f"server did not publish ({server.why()})")
    result.events = events
    for client, out in clients:
        done = client.wait_for({"done"}, READY_TIMEOUT_S + args.duration * 3 + DRAIN_S)
        if done is None:
            raise RuntimeError(f"{client.name} gave no result ({client.why()})")
        _tally(result, done, out, events)
    result.wall_s = time.monotonic() - started
    send_line(server, "stop")
    done = server.wait_for({"done"}, READY_TIMEOUT_S)
    if done is None:
        raise RuntimeError(f"server gave no figures ({server.why()})")
    result.server_cpu_s = float(done["cpu_s"])
    result.frames = int(done["frames"])


def _tally(result: Result, done: dict[str, Any], out: Path, events: int) -> None:
    latencies = array("d")
    with out.open("rb") as source:
        latencies.fromfile(source, int(done["deliveries"]))
    result.latencies_ms.extend(latencies)
    for received in done["received"]:
        if received < events:
            result.lost += events - received
            result.viewers_with_loss += 1
    result.closed += len(done["closed"])
    result.out_of_order += int(done["out_of_order"])
    result.client_cpu_s += float(done["cpu_s"])


def print_report(results: list[Result], args: argparse.Namespace) -> None:
    print()
    print(
        f"WebSocket send paths: {args.viewers} viewers in {args.client_procs} client"
        f" processes, {args.rate:g} events/s of {args.event_bytes} B for {args.duration:g} s,"
        f" a frame per viewer every {args.interval_ms:g} ms, loopback,"
        f" {os.cpu_count()} CPUs{', pinned (server CPU 0, viewers CPU 1)' if args.pin else ''}"
    )
    print(f"command: python3 bench/ws_send_path.py {' '.join(args.argv)}".rstrip())
    print()
    print(
        "| path | server CPU µs per frame | frames/s | server CPU % | clients CPU % |"
        " lost (viewers) | p50 ms | p90 | p99 | p99.9 | max |"
    )
    print("|" + "---|" * 11)
    for result in results:
        if result.error is not None:
            print(f"| {result.path} | error: {result.error} |")
            continue
        wall = result.wall_s or 1.0
        print(
            f"| {result.path} | {1e6 * result.server_cpu_s / max(result.frames, 1):.1f} |"
            f" {result.frames / wall:,.0f} | {100 * result.server_cpu_s / wall:.0f} |"
            f" {100 * result.client_cpu_s / wall:.0f} |"
            f" {result.lost} ({result.viewers_with_loss}) |"
            f" {latency_cells(result.latencies_ms)} |"
        )
        if result.out_of_order or result.closed:
            print(f"  {result.path}: {result.out_of_order} out of order, {result.closed} closed")


def parse_paths(text: str) -> list[str]:
    paths = [part.strip() for part in text.split(",") if part.strip()]
    if not paths or set(paths) - set(PATHS):
        raise argparse.ArgumentTypeError(f"a comma-separated list of {', '.join(PATHS)}")
    return paths


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="server CPU per WebSocket frame and latency, by send path",
        epilog="Prints a table; never asserts; exits 0.",
    )
    parser.add_argument("--paths", type=parse_paths, default=list(PATHS), metavar="P,P")
    parser.add_argument("--viewers", type=int, default=1000, help="(default 1000)")
    parser.add_argument("--rate", type=float, default=100.0, help="events/s (default 100)")
    parser.add_argument("--duration", type=float, default=20.0, help="s of events (20)")
    parser.add_argument(
        "--interval-ms", type=float, default=50.0, help="ms between a viewer's frames (50)"
    )
    parser.add_argument("--event-bytes", type=int, default=600, help="bytes per event (600)")
    parser.add_argument("--client-procs", type=int, default=2, metavar="K", help="(default 2)")
    parser.add_argument("--pin", action="store_true", help="server on CPU 0; viewers on CPU 1")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    results = []
    for path in args.paths:
        print(f"{path} ...", file=sys.stderr)
        results.append(run_path(path, args))
    print_report(results, args)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
    sys.exit(0)
