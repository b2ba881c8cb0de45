"""The viewers of ``bench/ws_send_path.py`` (lean clients, ``_ws_lean_client``). Run by
it, never by hand (``--help`` for the flags).

Connects ``--viewers`` to the server, says ``ready``, then reads until every viewer has
``--events`` events or ``--deadline-s`` passes. Each event is the server's fixed-size line
``SEQ TIME_NS xxx…``: its latency is the receive time minus TIME_NS (one clock, one
machine), written to ``--out`` as float64 milliseconds; a SEQ that is not the viewer's
next is counted. Says ``done`` with the counts.
"""

from __future__ import annotations

import argparse
import os
import time
from array import array
from pathlib import Path

from _gossip_common import emit, process_cpu_s
from _ws_lean_client import LeanViewers

SEQ_END, TIME_START, TIME_END = 10, 11, 30


class Tally:
    def __init__(self, viewers: int, event_bytes: int, events: int) -> None:
        self.event_bytes = event_bytes
        self.events = events
        self.next_seq = [0] * viewers
        self.out_of_order = 0
        self.frames = 0
        self.latencies_ms = array("d")
        self.complete = 0

    def on_frame(self, viewer: int, payload: bytes, now_ns: int) -> None:
        if payload.startswith(b"{"):  # the firehose's hello (path fanout), maybe more after
            _, _, payload = payload.partition(b"\n")
            if not payload:
                return
        self.frames += 1
        size = self.event_bytes
        expected = self.next_seq[viewer]
        for at in range(0, len(payload), size):
            seq = int(payload[at : at + SEQ_END])
            if seq != expected:
                self.out_of_order += 1
            expected = seq + 1
            self.latencies_ms.append((now_ns - int(payload[at + TIME_START : at + TIME_END])) / 1e6)
        if self.next_seq[viewer] < self.events <= expected:
            self.complete += 1
        self.next_seq[viewer] = expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--viewers", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--event-bytes", type=int, required=True)
    parser.add_argument("--deadline-s", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    viewers = LeanViewers()
    viewers.connect(args.viewers, "127.0.0.1", args.port, "/ws", timeout_s=30.0)
    emit({"event": "ready", "connected": len(viewers.connections), "failed": viewers.failed})
    tally = Tally(args.viewers, args.event_bytes, args.events)
    cpu_before = process_cpu_s(os.getpid()) or 0.0
    viewers.run(
        tally.on_frame,
        until=lambda: tally.complete >= len(viewers.connections),
        deadline=time.monotonic() + args.deadline_s,
    )
    cpu = (process_cpu_s(os.getpid()) or 0.0) - cpu_before
    with args.out.open("wb") as sink:
        tally.latencies_ms.tofile(sink)
    emit(
        {
            "event": "done",
            "received": [tally.next_seq[c.index] for c in viewers.connections],
            "closed": [c.closed for c in viewers.connections if c.closed],
            "out_of_order": tally.out_of_order,
            "frames": tally.frames,
            "deliveries": len(tally.latencies_ms),
            "cpu_s": cpu,
        }
    )
    viewers.close()


if __name__ == "__main__":
    main()
