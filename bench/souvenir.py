"""Souvenir benchmark (issue 14): what lending a tool across two nodes adds to one call,
beside calling the same MCP server directly over stdio, in the same run.

    python3 bench/souvenir.py [--calls 200] [--warmup 10] [--unsandboxed]

One process, two libp2p hosts on loopback (TCP port 0, Noise, Yamux): Kai lends the real
``mcp-server-time`` plugin (``get_current_time``) through ``open_plugins`` (sandboxed:
bwrap + setpriv + prlimit, which needs root; ``--unsandboxed`` lets it run without the
sandbox where that is unavailable, and the output says which ran), and the real
:class:`SouvenirService` answers ``/roomverse/mcp/1.0.0`` in an open visit; Mina calls it
with :meth:`SouvenirService.exchange`. Timed per call:

- (a) the lender's ``Plugins.call``: the tool's own time through our plugin runner;
- (b) Mina's ``exchange``: the round trip over the network, signed envelopes both ways,
  the capability check, the lender's footprint, and the tool;
- (c) (b) less the tool's own time *inside that same call* (the lender's ``Plugins.call``
  is timed by a wrapper around it): the overhead of lending, per call;
- (d) a plain ``mcp`` ``ClientSession`` over stdio to an unsandboxed ``mcp-server-time``
  with no RoomVerse code at all: the baseline of "calling the server directly".

The four are interleaved call by call (a, b, d, a, b, d, ...) so that load from other
work on the machine falls on all of them alike. Warm-up calls are not counted. Every
call has a timeout and the whole run a deadline (``--max-seconds``); calls run one at a
time. Prints, never asserts.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Final, TextIO

import trio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

REPO: Final = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # bench/ is sys.path[0] when this file runs as a script

from keys import PROTO_MCP, Identity, seal  # noqa: E402
from node import (  # noqa: E402
    MCP_BODIES,
    Approvals,
    EventLog,
    Footprints,
    P2PHost,
    Quotas,
    SouvenirService,
    SouvenirSettings,
    Store,
    ToolAnswer,
    ToolRequest,
    now_ms,
    open_p2p_host,
    open_plugins,
)

LISTEN: Final = "/ip4/127.0.0.1/tcp/0"
VISIT: Final = "5e" * 16
TOOL: Final = "get_current_time"
ARGUMENTS: Final[Mapping[str, Any]] = {"timezone": "Asia/Tokyo"}
COMMAND: Final = ("mcp-server-time", "--local-timezone", "Asia/Tokyo")
CALL_METHOD: Final = "tools/call"
"""MCP's method name for a tool call (what ``ToolRequest.method`` carries)."""
CALL_TIMEOUT_S: Final = 30.0
RESULT_CAP: Final = 32 * 1024


class BenchFailed(Exception):
    """The benchmark could not measure: said in one line, not a traceback."""


@dataclass
class TimedLender:
    """Kai's plugins as the service sees them, timing each ``call`` (the tool's own time
    inside a remote call, subtracted from that call's round trip)."""

    plugins: Any
    last_s: float = 0.0

    def lent(self) -> Any:
        return self.plugins.lent()

    def find(self, name: str) -> Any:
        return self.plugins.find(name)

    async def call(
        self, name: str, arguments: dict[str, Any], *, timeout_s: float, max_result_bytes: int
    ) -> Any:
        started = time.perf_counter()
        try:
            return await self.plugins.call(
                name, arguments, timeout_s=timeout_s, max_result_bytes=max_result_bytes
            )
        finally:
            self.last_s = time.perf_counter() - started

    def describe(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.plugins.describe()
        return result


@dataclass
class Figures:
    direct: list[float] = field(default_factory=list)
    remote: list[float] = field(default_factory=list)
    overhead: list[float] = field(default_factory=list)
    plain: list[float] = field(default_factory=list)


def sealer(identity: Identity) -> Any:
    """What a node's ``seal`` does for ``mcp`` envelopes: sign with a growing seq."""
    numbers = itertools.count(1)

    async def seal_next(kind: str, channel: str, body: Mapping[str, Any]) -> bytes:
        return seal(
            identity,
            kind=kind,
            channel=channel,
            seq=next(numbers),
            ts_ms=now_ms(),
            body=body,
            bodies=MCP_BODIES,
        )

    return seal_next


async def no_publish(kind: str, body: Mapping[str, Any]) -> None:
    return None  # the borrower's public souvenir action is not part of the round trip


def service(host: P2PHost, identity: Identity, store: Store, calls: int) -> SouvenirService:
    rejected: list[str] = []
    return SouvenirService(
        me=identity.peer_id_str,
        host=host,
        seal=sealer(identity),
        publish=no_publish,
        footprints=Footprints(store.db, lambda text: text),
        approvals=Approvals(events=None, timeout_s=5),
        events=EventLog("json", io.StringIO()),
        reject=lambda peer, channel, error: rejected.append(error.reason),
        partner_card=lambda peer: None,
        # The default quotas (6 a visit, 20 an hour) are a visit's; the bench makes more.
        quotas=Quotas(per_visit=calls, per_hour=calls),
    )


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


async def run(
    args: argparse.Namespace, tmp: Path, devnull: TextIO
) -> tuple[Figures, dict[str, Any]]:
    total = args.warmup + args.calls
    figures = Figures()
    kai_id, mina_id = Identity.generate(), Identity.generate()
    settings = SouvenirSettings(
        name="time",
        command=COMMAND,
        tools=((TOOL, "lend"),),
        unsandboxed=args.unsandboxed,
    )
    request_ids = itertools.count(1)
    async with AsyncExitStack() as stack:
        kai_store, mina_store = Store(tmp / "kai.db"), Store(tmp / "mina.db")
        stack.callback(kai_store.close)
        stack.callback(mina_store.close)
        kai_host = await stack.enter_async_context(open_p2p_host(kai_id.seed, [LISTEN]))
        mina_host = await stack.enter_async_context(open_p2p_host(mina_id.seed, [LISTEN]))
        kai = service(kai_host, kai_id, kai_store, total)
        mina = service(mina_host, mina_id, mina_store, total)
        kai_host.set_stream_handler(PROTO_MCP, kai.serve)
        plugins = await stack.enter_async_context(
            open_plugins([settings], tmp / "kai-data", events=None)
        )
        [plugin] = plugins.describe()
        if plugin["state"] != "running":
            hint = "" if args.unsandboxed else " (no root or no bubblewrap? see --unsandboxed)"
            raise BenchFailed(f"the time plugin is {plugin['state']}: {plugin['last_exit']}{hint}")
        lender = TimedLender(plugins)
        kai.lender = lender
        await mina_host.dial(f"{kai_host.listen_addrs()[0]}/p2p/{kai_id.peer_id_str}")
        await stack.enter_async_context(kai.visit(VISIT, mina_id.peer_id_str, "Mina", True))

        params = StdioServerParameters(command=COMMAND[0], args=list(COMMAND[1:]))
        read, write = await stack.enter_async_context(stdio_client(params, errlog=devnull))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()

        async def direct() -> float:
            started = time.perf_counter()
            outcome = await plugins.call(
                TOOL, dict(ARGUMENTS), timeout_s=CALL_TIMEOUT_S, max_result_bytes=RESULT_CAP
            )
            elapsed = time.perf_counter() - started
            if outcome.is_error:
                raise BenchFailed(f"direct call failed: {outcome.text}")
            return elapsed

        async def remote() -> tuple[float, float]:
            request = ToolRequest(next(request_ids), CALL_METHOD, TOOL, dict(ARGUMENTS))
            lender.last_s = -1.0
            started = time.perf_counter()
            answer = await mina.exchange(kai_id.peer_id_str, VISIT, request)
            elapsed = time.perf_counter() - started
            if not isinstance(answer, ToolAnswer) or answer.is_error or lender.last_s < 0:
                raise BenchFailed(f"remote call failed: {answer}")
            return elapsed, elapsed - lender.last_s

        async def plain() -> float:
            started = time.perf_counter()
            result = await session.call_tool(TOOL, dict(ARGUMENTS))
            elapsed = time.perf_counter() - started
            if getattr(result, "is_error", True):
                raise BenchFailed(f"plain stdio call failed: {result}")
            return elapsed

        deadline = trio.current_time() + args.max_seconds
        rounds = 0
        for n in range(total):
            if trio.current_time() > deadline:
                print(f"deadline of {args.max_seconds:g} s reached after {n} rounds", flush=True)
                break
            with trio.fail_after(CALL_TIMEOUT_S):
                a = await direct()
            with trio.fail_after(CALL_TIMEOUT_S):
                b, c = await remote()
            with trio.fail_after(CALL_TIMEOUT_S):
                d = await plain()
            rounds += 1
            if n >= args.warmup:
                figures.direct.append(a)
                figures.remote.append(b)
                figures.overhead.append(c)
                figures.plain.append(d)
        if kai.counters.lent_ok != rounds:  # every remote call ran on the plugin
            print(f"note: lender counters {kai.counters.to_json()}", flush=True)
        return figures, plugin


def report(args: argparse.Namespace, figures: Figures, plugin: dict[str, Any]) -> None:
    load = os.getloadavg()[0]
    print(
        f"souvenir benchmark, {os.cpu_count()} cores, load {load:.1f} at the end; "
        f"python {platform.python_version()}, mcp {_version('mcp')}, "
        f"mcp-server-time {_version('mcp-server-time')}, libp2p {_version('libp2p')}"
    )
    if plugin["sandboxed"]:
        allowed = " (--unsandboxed was given, but not needed)" if args.unsandboxed else ""
        print(f"lender's plugin: sandboxed{allowed}: {plugin['sandbox']}")
    else:
        print(f"lender's plugin: {plugin['sandbox']}")
    print(
        f"{len(figures.remote)} calls of {TOOL}{dict(ARGUMENTS)} each way, "
        f"{args.warmup} warm-up rounds not counted, interleaved, one at a time"
    )
    rows = (
        ("(d) plain mcp ClientSession, stdio, unsandboxed", figures.plain),
        ("(a) Plugins.call on the lender (the tool's time)", figures.direct),
        ("(b) exchange from the borrower over libp2p", figures.remote),
        ("(c) overhead = (b) - the tool's time in that call", figures.overhead),
    )
    print(f"  {'':<52} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, values in rows:
        if not values:
            print(f"  {name:<52} {'-':>8} {'-':>8} {'-':>8}")
            continue
        mean = statistics.fmean(values) * 1000
        print(f"  {name:<52} {ms(values, 0.5):>8.2f} {ms(values, 0.99):>8.2f} {mean:>8.2f}")
    if figures.remote and figures.plain:
        ratio = ms(figures.remote, 0.5) / ms(figures.plain, 0.5)
        print(f"  ratio (b) / (d) at p50: {ratio:.1f}")
    flag = " --unsandboxed" if args.unsandboxed else ""
    print(
        f"to reproduce: python3 bench/souvenir.py --calls {args.calls} --warmup {args.warmup}{flag}"
    )


async def main(args: argparse.Namespace, devnull: TextIO) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-souvenir-") as tmp:
        figures, plugin = await run(args, Path(tmp), devnull)
    report(args, figures, plugin)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="counted calls of each kind")
    parser.add_argument("--warmup", type=int, default=10, help="rounds not counted")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="deadline of the run")
    parser.add_argument(
        "--unsandboxed",
        action="store_true",
        help="allow the lender's plugin to run without the sandbox (no root, no bwrap)",
    )
    parsed = parser.parse_args()
    if parsed.calls < 1 or parsed.warmup < 0:
        sys.exit("--calls must be at least 1 and --warmup at least 0")
    try:
        with open(os.devnull, "w") as stderr_sink:  # the plain server's stderr (d)
            trio.run(main, parsed, stderr_sink)
    except* BenchFailed as failed:
        leaf: BaseException = failed
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        sys.exit(f"souvenir benchmark not run: {leaf}")
