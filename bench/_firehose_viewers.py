"""The viewers of ``bench/firehose.py``: N WebSocket viewers (trio-websocket) in one trio
process, each recording every event it receives and when.

Run by ``bench/firehose.py``, never by hand (``python bench/_firehose_viewers.py
--help``). Talks to its parent through stdout, one JSON object per line: ``ready`` once
every viewer has its hello, ``done`` with the per-viewer tallies at the end. Reads
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
import json
import os
import sys
import time
from array import array
from pathlib import Path

import trio
from _firehose_common import follow_stdin
from _gossip_common import emit, process_cpu_s
from trio_websocket import ConnectionClosed, HandshakeError, connect_websocket_url

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
        self.connected = 0
        self.all_connected = trio.Event()
        self.expect: int | None = None
        self.enough = trio.Event()
        self.complete = 0

    def frame(self, viewer: int, text: str, now_ns: int) -> None:
        lines = text.split("\n")
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
                self._check_enough()

    def expecting(self, count: int) -> None:
        self.expect = count
        self.complete = sum(c >= count for c in self.counts)
        self._check_enough()

    def gone(self) -> None:
        """A viewer closed or never connected: nobody waits for it."""
        self._check_enough()

    def _check_enough(self) -> None:
        waiting = len(self.counts) - len(self.closed) - len(self.failed)
        if self.expect is not None and self.complete >= waiting:
            self.enough.set()


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


async def view(
    index: int,
    url: str,
    tally: Tally,
    gate: trio.CapacityLimiter,
    connect_s: float,
    nursery: trio.Nursery,
) -> None:
    try:
        async with gate:
            with trio.fail_after(connect_s):
                ws = await connect_websocket_url(nursery, url)
                hello = await ws.get_message()
        assert isinstance(hello, str) and hello.startswith('{"type":"hello"'), hello[:80]
    except (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError) as exc:
        tally.failed[index] = f"{type(exc).__name__}: {exc}"[:200]
        tally.gone()
        return
    tally.connected += 1
    if tally.connected + len(tally.failed) == len(tally.counts):
        tally.all_connected.set()
    try:
        while True:
            text = await ws.get_message()
            tally.frame(index, str(text), time.time_ns())
    except ConnectionClosed as exc:
        code = None if exc.reason is None else exc.reason.code
        tally.closed.setdefault(index, f"closed {code}")
        tally.gone()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await ws.aclose()


async def run(args: argparse.Namespace) -> Tally:
    tally = Tally(args.viewers, args.check)
    gate = trio.CapacityLimiter(args.connect_concurrency)
    async with trio.open_nursery() as nursery:
        for index in range(args.viewers):
            nursery.start_soon(view, index, args.url, tally, gate, args.connect_timeout, nursery)
        with trio.move_on_after(args.connect_timeout * 4):
            await tally.all_connected.wait()
        emit(
            {
                "event": "ready",
                "connected": tally.connected,
                "failed": len(tally.failed),
                "errors": sorted(set(tally.failed.values()))[:3],
            }
        )
        count = await _expected_count()
        if count is not None:
            tally.expecting(count)
            with trio.move_on_after(args.drain):
                await tally.enough.wait()
        nursery.cancel_scope.cancel()
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


async def _expected_count() -> int | None:
    """The N of ``expect N`` on stdin (None if input ends first)."""
    count: list[int] = []
    async with trio.open_nursery() as nursery:

        def on_line(line: str) -> None:
            word, _, number = line.partition(" ")
            if word == "expect" and number.isdigit():
                count.append(int(number))
                nursery.cancel_scope.cancel()

        nursery.start_soon(follow_stdin, on_line)
    return count[0] if count else None


def main() -> int:
    parser = argparse.ArgumentParser(description="the viewers of bench/firehose.py")
    parser.add_argument("--url", required=True, help="ws://host:port/ws")
    parser.add_argument("--viewers", type=int, required=True)
    parser.add_argument("--out", required=True, help="where the deliveries go (binary)")
    parser.add_argument("--connect-concurrency", type=int, default=50)
    parser.add_argument("--connect-timeout", type=float, default=30.0)
    parser.add_argument("--drain", type=float, default=20.0, help="s to wait for stragglers")
    parser.add_argument("--check", action="store_true", help="JSON-decode every line")
    args = parser.parse_args()
    report(trio.run(run, args), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
