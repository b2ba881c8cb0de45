"""What a ``bench/gossip.py`` run produced, and how it is printed."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

LABELS = {
    "raw": "raw gossipsub (no envelope)",
    "signed": "signed envelope",
    "node": "full node (+SQLite, events)",
}
TARGET_RATIO = 0.9

Event = dict[str, Any]


@dataclass
class VariantRun:
    variant: str
    results: dict[int, Event] = field(default_factory=dict)
    receiver: Event | None = None
    publisher_drops: dict[str, int] | None = None
    error: str | None = None


@dataclass
class IdleRss:
    rss_mib: float | None
    hwm_mib: float | None
    cpu_pct: float | None = None
    error: str | None = None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def summarise(runs: list[VariantRun], variant: str, window: int) -> dict[str, Any]:
    rows = [r.results[window] for r in runs if r.variant == variant and window in r.results]
    return {
        "rounds": len(rows),
        "msgs": sum(int(r["acked"]) for r in rows),
        "count": sum(int(r["count"]) for r in rows),
        "lost": sum(int(r["lost"]) + int(r["unfinished"]) for r in rows),
        "rate": _median([float(r["msg_per_s"]) for r in rows]),
        "p50": _median([float(r["p50_ms"]) for r in rows if r["p50_ms"] is not None]),
        "p99": _median([float(r["p99_ms"]) for r in rows if r["p99_ms"] is not None]),
        "pub_cpu": _median([float(r["publisher_cpu_us"]) for r in rows if r["publisher_cpu_us"]]),
        "rx_cpu": _median([float(r["receiver_cpu_us"]) for r in rows if r["receiver_cpu_us"]]),
        "wire": rows[0]["wire_bytes"] if rows else None,
        "all_rates": [float(r["msg_per_s"]) for r in rows],
    }


def print_report(
    runs: list[VariantRun],
    variants: Sequence[str],
    args: argparse.Namespace,
    rss: IdleRss | None,
    load: tuple[tuple[float, ...], tuple[float, ...]],
    elapsed_s: float,
) -> None:
    print()
    print("RoomVerse gossip bench")
    print(f"  command: {' '.join(['python', 'bench/gossip.py', *args.argv])}")
    print(
        f"  python {platform.python_version()}, libp2p {_version('libp2p')}, "
        f"trio {_version('trio')}, {os.cpu_count()} CPUs, {platform.machine()}, "
        f"load avg {load[0][0]:.2f} before / {load[1][0]:.2f} after"
    )
    wires = {v: summarise(runs, v, 32)["wire"] for v in variants}
    print(
        "  2 processes on 127.0.0.1, 256-byte application payload; wire bytes: "
        + ", ".join(f"{v} {wires[v]}" for v in variants if wires[v] is not None)
    )
    ack = {
        "tcp": "a plain TCP connection (outside libp2p)",
        "gossip": "a second, raw gossipsub topic",
    }[args.ack]
    print(
        "  latency = publish call -> receipt at the receiver (time.time_ns() in both "
        "processes, one clock)"
    )
    print(f"  window W = at most W unacked; the receiver acks each message over {ack}")
    print(
        "  both hosts subscribe to the topic, as nodes do; gossipsub offers "
        + (
            "meshsub 1.2/1.1/1.0 as node._libp2p ships "
            "(IDONTWANT only for relayed messages >= 1 KiB)"
            if args.meshsub == "1.2"
            else "meshsub 1.1/1.0 only (EXPERIMENT: /meshsub/1.2.0 left out, no IDONTWANT)"
        )
    )
    print("  node: receipt = the receiver node's action_received event (after its SQLite commit)")
    print(
        f"  counts: window 1 x {args.count_w1}, window 32 x {args.count}, "
        f"warm-up {args.warmup}; {args.rounds} round(s), median shown"
        + ("; publisher pinned to CPU 0, receiver to CPU 1" if args.pin else "")
    )
    print()
    header = f"  {'variant':<30}{'window':>7}{'msgs':>8}{'lost':>6}{'msg/s':>10}"
    header += f"{'p50 ms':>9}{'p99 ms':>9}{'pub CPU':>9}{'rx CPU':>8}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for window in (1, 32):
        for variant in variants:
            s = summarise(runs, variant, window)
            print(
                f"  {LABELS[variant]:<30}{window:>7}{s['msgs']:>8}{s['lost']:>6}"
                f"{_fmt(s['rate']):>10}{_fmt(s['p50'], 2):>9}{_fmt(s['p99'], 2):>9}"
                f"{_fmt(s['pub_cpu'], 0):>9}{_fmt(s['rx_cpu'], 0):>8}"
            )
    print("  (lost: not acked within --loss-timeout, or not sent/acked before --timeout)")
    print("  (pub/rx CPU: user+system CPU µs per message in the publisher/receiver process)")
    print()
    for variant in variants:
        if variant == "raw":
            continue
        for window in (1, 32):
            base = summarise(runs, "raw", window)
            mine = summarise(runs, variant, window)
            print(f"  ratio {variant}/raw, window {window:>2}: {_ratios(base, mine)}")
    if args.rounds > 1:
        print()
        print("  per-round msg/s:")
        for window in (1, 32):
            for variant in variants:
                rates = summarise(runs, variant, window)["all_rates"]
                print(
                    f"    {LABELS[variant]:<30} w{window:<3}"
                    + " ".join(f"{r:>8,.0f}" for r in rates)
                )
    problems = [r for r in runs if r.error]
    drops = [r for r in runs if _has_drops(r)]
    if problems or drops:
        print()
        for r in problems:
            print(f"  ! {r.variant}: {r.error}")
        for r in drops:
            print(f"  ! {r.variant}: drops publisher={r.publisher_drops} receiver={_rx(r)}")
    print()
    if rss is None:
        print("  idle node RSS: skipped")
    elif rss.error:
        print(f"  idle node RSS: failed: {rss.error}")
    else:
        print(
            f"  idle node RSS: {_fmt(rss.rss_mib)} MiB VmRSS (peak {_fmt(rss.hwm_mib)} MiB), "
            f"CPU {_fmt(rss.cpu_pct)} % over the {args.settle:.0f} s after `ready` "
            "(python -m node node --no-mdns, no peers)"
        )
    print(f"  bench wall time {elapsed_s:.0f} s")


def _ratios(base: dict[str, Any], mine: dict[str, Any]) -> str:
    parts = []
    if base["rate"] and mine["rate"] is not None:
        ratio = mine["rate"] / base["rate"]
        verdict = "meets" if ratio >= TARGET_RATIO else "below"
        parts.append(f"throughput {ratio:.2f} ({verdict} target {TARGET_RATIO})")
    else:
        parts.append("throughput -")
    if base["pub_cpu"] and base["rx_cpu"] and mine["pub_cpu"] and mine["rx_cpu"]:
        cpu = (base["pub_cpu"] + base["rx_cpu"]) / (mine["pub_cpu"] + mine["rx_cpu"])
        parts.append(f"CPU-cost {cpu:.2f} (raw CPU/msg ÷ this CPU/msg, both processes)")
    return "; ".join(parts)


def _rx(run: VariantRun) -> Any:
    return (run.receiver or {}).get("drops")


def _has_drops(run: VariantRun) -> bool:
    counters = [run.publisher_drops or {}, _rx(run) or {}]
    rejected = (run.receiver or {}).get("rejected") or {}
    return any(v for c in counters for v in c.values()) or bool(rejected)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"
