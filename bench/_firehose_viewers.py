"""The viewers of ``bench/firehose_load.py``: N WebSocket viewers in one process (the lean
clients of ``_ws_lean_client``: plain sockets and one epoll, so that on a small machine
the viewers leave as much CPU as they can to the firehose), each recording every event
it receives and when.

Run by ``bench/firehose_load.py``, never by hand (``python bench/_firehose_viewers.py
--help``). Talks to its parent through stdout, one JSON object per line: ``ready`` once
every viewer is connected, ``done`` with the per-viewer tallies at the end. Reads
``expect N`` on stdin (N events were published: stop once every viewer has them, or
after ``--drain`` seconds); end of input stops it too.

Each delivery (seq, receive time in ``time.time_ns()``) is written to ``--out`` as two
int64 arrays, for the parent to join with the publish times. To keep the clients' own
CPU low, an event line is not JSON-decoded: its cursor and seq are read at their fixed
places in the server's compact encoding (``{"type":"event","cursor":N,...,"seq":N,``;
inside a JSON string a quote is always escaped, so ``,"seq":`` cannot occur before the
real key). ``--check`` decodes every line fully instead, to validate the shortcut.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import time
from array import array
from pathlib import Path
from urllib.parse import urlsplit

from _gossip_common import emit, process_cpu_s
from _ws_lean_client import LeanViewers

EVENT_PREFIX = '{"type":"event","cursor":'
CLOSING_PREFIX = '{"type":"closing"'
SEQ_KEY = ',"seq":'


class Tally:
    """What every viewer of this process received."""

    def __init__(self, viewers: int, check: bool) -> None:
        self.check = check
        self.seqs = array("q")
        self.received_ns = array("q")
        self.counts = [0] * viewers
        self.last_cursor = [0] * viewers
        self.disorder = [0] * viewers
        """Events whose cursor was not above the viewer's previous one."""
        self.closed: dict[int, str] = {}
        self.failed: dict[int, str] = {}
        self.frames = 0
        self.lines = 0
        self.max_lines = 0
        self.expect: int | None = None
        self.complete = 0

    def frame(self, viewer: int, payload: bytes, now_ns: int) -> None:
        lines = payload.decode().split("\n")
        self.frames += 1
        self.lines += len(lines)
        self.max_lines = max(self.max_lines, len(lines))
        for line in lines:
            parsed = _decode(line) if self.check else _scan(line)
            if parsed is None:
                if line.startswith(CLOSING_PREFIX):
                    self.closed[viewer] = str(json.loads(line).get("reason"))
                continue
            cursor, seq = parsed
            if cursor <= self.last_cursor[viewer]:
                self.disorder[viewer] += 1
            self.last_cursor[viewer] = cursor
            self.counts[viewer] += 1
            self.seqs.append(seq)
            self.received_ns.append(now_ns)
            if self.counts[viewer] == self.expect:
                self.complete += 1

    def expecting(self, count: int) -> None:
        self.expect = count
        self.complete = sum(c >= count for c in self.counts)


def _scan(line: str) -> tuple[int, int] | None:
    if not line.startswith(EVENT_PREFIX):
        return None
    start = len(EVENT_PREFIX)
    end = line.index(",", start)
    at = line.index(SEQ_KEY, end) + len(SEQ_KEY)
    return int(line[start:end]), int(line[at : line.index(",", at)])


def _decode(line: str) -> tuple[int, int] | None:
    if not line.strip():
        return None
    obj = json.loads(line)
    if obj.get("type") != "event":
        return None
    scanned = _scan(line)
    assert scanned == (obj["cursor"], obj["seq"]), (scanned, line[:120])
    return int(obj["cursor"]), int(obj["seq"])


class Parent:
    """``expect N`` from the parent on stdin, read without ever blocking."""

    def __init__(self) -> None:
        self._fd = sys.stdin.fileno()
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        fcntl.fcntl(self._fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._buffer = b""
        self.expect: int | None = None
        self.gone = False

    def poll(self) -> None:
        try:
            chunk = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        if not chunk:
            self.gone = True
            return
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        for line in lines:
            word, _, number = line.decode(errors="replace").strip().partition(" ")
            if word == "expect" and number.isdigit():
                self.expect = int(number)


def run(args: argparse.Namespace) -> Tally:
    url = urlsplit(args.url)
    viewers = LeanViewers()
    viewers.connect(
        args.viewers, url.hostname or "127.0.0.1", url.port or 80, url.path, args.connect_timeout
    )
    tally = Tally(args.viewers, args.check)
    tally.failed = dict(viewers.failed)
    emit(
        {
            "event": "ready",
            "connected": len(viewers.connections),
            "failed": len(tally.failed),
            "errors": sorted(set(tally.failed.values()))[:3],
        }
    )
    parent = Parent()
    drain_until: list[float] = []

    def enough() -> bool:
        if not drain_until:
            parent.poll()
            if parent.gone:
                return True
            if parent.expect is None:
                return False
            tally.expecting(parent.expect)
            drain_until.append(time.monotonic() + args.drain)
        return tally.complete >= viewers.open or time.monotonic() > drain_until[0]

    viewers.run(tally.frame, until=enough, deadline=time.monotonic() + args.max_seconds)
    for conn in viewers.connections:
        if conn.closed is not None:
            tally.closed.setdefault(conn.index, conn.closed)
    viewers.close()
    return tally


def report(tally: Tally, out: Path) -> None:
    with out.open("wb") as sink:
        tally.seqs.tofile(sink)
        tally.received_ns.tofile(sink)
    emit(
        {
            "event": "done",
            "counts": tally.counts,
            "disorder": sum(tally.disorder),
            "closed": tally.closed,
            "failed": len(tally.failed),
            "frames": tally.frames,
            "lines": tally.lines,
            "max_lines": tally.max_lines,
            "deliveries": len(tally.seqs),
            "cpu_s": process_cpu_s(os.getpid()),
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="the viewers of bench/firehose_load.py")
    parser.add_argument("--url", required=True, help="ws://host:port/ws")
    parser.add_argument("--viewers", type=int, required=True)
    parser.add_argument("--out", required=True, help="where the deliveries go (binary)")
    parser.add_argument("--connect-timeout", type=float, default=30.0)
    parser.add_argument("--drain", type=float, default=20.0, help="s to wait for stragglers")
    parser.add_argument("--check", action="store_true", help="JSON-decode every line")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="a bound on it all")
    args = parser.parse_args()
    report(run(args), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
