"""What the firehose benchmarks (``bench/firehose_load.py``, ``bench/ws_send_path.py``) and
their processes share: commands to and from child processes, viewers over processes,
percentiles."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from gossip import Worker


async def follow_stdin(on_line: Callable[[str], None]) -> None:
    """Call ``on_line`` with each line the parent writes; return when it closes stdin
    (or goes away). A non-blocking read, so cancelling it is immediate."""
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:
        buffer = b""
        while chunk := await stdin.receive_some(4096):
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                on_line(line.decode("utf-8", "replace").strip())


def send_line(worker: Worker, line: str) -> None:
    """Write a command line to a child's stdin (a child that is gone is not an error)."""
    assert worker.proc.stdin is not None
    with contextlib.suppress(OSError):
        worker.proc.stdin.write(line.encode() + b"\n")
        worker.proc.stdin.flush()


def split(total: int, parts: int) -> list[int]:
    """``total`` viewers over ``parts`` processes, as evenly as can be (no empty part)."""
    parts = max(1, min(parts, total))
    return [total // parts + (i < total % parts) for i in range(parts)]


PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(ordered: Sequence[float], p: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100.0))]


def latency_cells(latencies_ms: Sequence[float]) -> str:
    """``p50 | p90 | p99 | p99.9 | max`` of ``latencies_ms``, as Markdown table cells."""
    ordered = sorted(latencies_ms)
    cells = [percentile(ordered, q) for q in PERCENTILES]
    cells.append(max(ordered, default=float("nan")))
    return " | ".join(f"{cell:.1f}" for cell in cells)
