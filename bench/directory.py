"""Directory convergence benchmark: real nodes in network namespaces (needs root).

    python3 bench/directory.py [--nodes 10] [--heartbeat 5] [--lease 15] [--sync-interval 1]
                               [--partition-seconds 30] [--heals 3] [--sim]

Real ``roomverse node`` processes, one per namespace of a :class:`tests.netns.LanParty`,
mDNS off: every node bootstraps to the first and finds the rest through the directory
(:meth:`tests.directory_party.DirectoryParty.start_all`). Measured:

* after join: from the moment the last node printed ``ready`` until every node reports
  the same directory digest with every node ``online``;
* after heal, ``--heals`` times on the same nodes: the LAN is cut in two halves with
  iptables for ``--partition-seconds``; right after the cut every node sets a new status
  (away or asleep). That wait is the one fixed sleep here: it *is* the partition being
  simulated (long enough for each half to see the other's leases lapse). Then the LAN is
  healed, and the figure is the time until every node reports the same digest and shows
  every node with the status it last set (an entry at least as new as the acknowledged
  one). Past ``--heal-bound`` seconds the lag diagnosis is printed and the wait goes on,
  up to ``--heal-timeout``;
* anti-entropy traffic: the sum over nodes of the ``sync`` byte counters in each node's
  ``directory`` control reply (sync streams only; gossipsub heartbeats not counted).

Every wait polls a condition with a timeout. With ``--sim`` the simulated table of
``bench/directory_sim.py`` (rounds and bytes for 100 / 1,000 / 10,000 replicas; ~35 s,
peak 1.5 GB) is printed as well; it is the same as running that file on its own.

Prints, never asserts; exits 0 (also when skipped for want of root, ``ip`` or
``iptables``), 1 if a phase did not converge within its timeout.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.directory_party import DirectoryParty, Timing, everyone_sees  # noqa: E402
from tests.support.netns import LanParty, netns_skip_reason  # noqa: E402
from tests.support.procs import NodeProcess  # noqa: E402

STATUSES = ("away", "asleep")
Replies = list[dict[str, Any]]
Acked = dict[str, tuple[int, str]]
"""PeerID → (wall clock ms of the acknowledged entry, status it set)."""


@dataclass
class Heal:
    seconds: float | None = None
    """None: no agreement within the heal timeout."""
    partition_real: bool = True
    """Each half saw the other half offline when the partition ended."""
    sync: SyncTotals = field(default_factory=lambda: SyncTotals(0, 0, 0, 0))
    """Anti-entropy from the cut to agreement (the partition included)."""
    diagnosis: str | None = None
    """The lag table, when agreement took longer than the heal bound."""


@dataclass
class Figures:
    timing: Timing
    nodes: int
    partition_s: float
    join_s: float | None = None
    join_sync: SyncTotals | None = None
    heals: list[Heal] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SyncTotals:
    """A node's ``sync`` counters, summed over all nodes (both ends count an exchange)."""

    sent: int
    received: int
    ok: int
    failed: int

    @classmethod
    def of(cls, replies: Replies) -> SyncTotals:
        sync = [reply["sync"] for reply in replies]
        return cls(
            sum(s["bytes_sent"] for s in sync),
            sum(s["bytes_received"] for s in sync),
            sum(s["ok"] for s in sync),
            sum(s["failed"] for s in sync),
        )

    def __sub__(self, other: SyncTotals) -> SyncTotals:
        return SyncTotals(
            self.sent - other.sent,
            self.received - other.received,
            self.ok - other.ok,
            self.failed - other.failed,
        )


def shows_acked(acked: Acked) -> Callable[[Replies], bool]:
    """Every reply shows each node with the status it last set, from an entry at least as
    new as the acknowledged one (a lapsed lease reads ``offline`` and fails)."""

    def check(replies: Replies) -> bool:
        for reply in replies:
            rows = {row["peer_id"]: row for row in reply["entries"]}
            for peer, (wall_ms, status) in acked.items():
                row = rows.get(peer)
                if row is None or row["status"] != status or row["last_seen_ms"] < wall_ms:
                    return False
        return True

    return check


def partition_was_real(left: Sequence[NodeProcess], right: Sequence[NodeProcess]) -> bool:
    for side, other in ((left, right), (right, left)):
        seen = side[0].presence()
        if any(seen.get(node.peer_id) != "offline" for node in other):
            return False
    return True


def heal_cycle(
    party: DirectoryParty, nodes: list[NodeProcess], cycle: int, args: argparse.Namespace
) -> Heal:
    lan = party.lan
    half = len(nodes) // 2
    hosts = lan.hosts[: len(nodes)]
    left, right = nodes[:half], nodes[half:]
    before = SyncTotals.of(party.read(nodes))

    party.partition(hosts[:half], hosts[half:])
    cut_at = time.monotonic()
    acked: Acked = {}
    for i, node in enumerate(nodes):
        status = STATUSES[(cycle + i) % len(STATUSES)]
        reply = node.control({"cmd": "set_status", "status": status})
        if not reply.get("ok"):
            raise RuntimeError(f"{node.name}: set_status {status} refused: {reply}")
        acked[node.peer_id] = (int(reply["clock"][0]), status)
    # The partition itself: a fixed span on purpose, it is what is being simulated.
    time.sleep(max(0.0, cut_at + args.partition_seconds - time.monotonic()))
    heal = Heal(partition_real=partition_was_real(left, right))

    party.heal(hosts)
    healed_at = time.monotonic()
    try:
        _, replies = party.wait_agreement(nodes, args.heal_bound, shows_acked(acked))
    except AssertionError as exc:
        heal.diagnosis = str(exc)
        print(f"  heal {cycle + 1}: past the {args.heal_bound:g} s bound:\n{exc}", flush=True)
        left_s = max(0.0, args.heal_timeout - (time.monotonic() - healed_at))
        try:
            _, replies = party.wait_agreement(nodes, round(left_s, 1), shows_acked(acked))
        except AssertionError as final:
            print(f"  heal {cycle + 1}: gave up after {args.heal_timeout:g} s:\n{final}")
            return heal
    heal.seconds = time.monotonic() - healed_at
    heal.sync = SyncTotals.of(replies) - before
    return heal


def run_real(args: argparse.Namespace, figures: Figures) -> None:
    timing = figures.timing
    with (
        tempfile.TemporaryDirectory(prefix="rv-bench-directory-") as tmp,
        LanParty(args.nodes) as lan,
    ):
        party = DirectoryParty(lan, Path(tmp), timing)
        try:
            started = time.monotonic()
            nodes = party.start_all(lan.hosts)
            # start_all returns as soon as the last node's `ready` line is read
            print(f"{args.nodes} nodes ready in {time.monotonic() - started:.1f} s", flush=True)
            ids = {node.peer_id for node in nodes}
            try:
                took, replies = party.wait_agreement(nodes, args.join_timeout, everyone_sees(ids))
            except AssertionError as exc:
                figures.error = f"join: {exc}"
                print(f"join: {exc}", flush=True)
                return
            figures.join_s = took
            figures.join_sync = SyncTotals.of(replies)
            print(f"after join: {took:.1f} s", flush=True)

            for cycle in range(args.heals):
                heal = heal_cycle(party, nodes, cycle, args)
                figures.heals.append(heal)
                if heal.seconds is None:
                    figures.error = f"heal {cycle + 1}: no agreement in {args.heal_timeout:g} s"
                    return
                real = "" if heal.partition_real else " (partition not seen by both halves!)"
                print(f"after heal {cycle + 1}: {heal.seconds:.1f} s{real}", flush=True)
        finally:
            party.close()


def kib(count: int) -> str:
    return f"{count / 1024:,.1f} KiB"


def print_figures(figures: Figures, args: argparse.Namespace) -> None:
    t = figures.timing
    print(
        f"\ndirectory convergence, {figures.nodes} real nodes (heartbeat {t.heartbeat_s:g} s,"
        f" lease {t.lease_s:g} s, sync {t.sync_interval_s:g} s)"
    )
    join = "failed" if figures.join_s is None else f"{figures.join_s:.1f} s"
    print(f"  after join:  {join}")
    done = [h.seconds for h in figures.heals if h.seconds is not None]
    if figures.heals:
        each = " / ".join(
            f">{args.heal_timeout:g}" if h.seconds is None else f"{h.seconds:.1f}"
            for h in figures.heals
        )
        stats = f"median {statistics.median(done):.1f}, max {max(done):.1f}" if done else ""
        if stats and len(done) < len(figures.heals):
            stats += f" of the {len(done)} that converged"
        stats += "; " if stats else ""
        half = figures.nodes // 2
        print(
            f"  after heal:  {each} s ({stats}partition {figures.partition_s:g} s,"
            f" {half}|{figures.nodes - half})"
        )
        over = [i + 1 for i, h in enumerate(figures.heals) if h.diagnosis is not None]
        if over:
            print(f"  heals over the {args.heal_bound:g} s bound: {over} (diagnosis above)")
        if not all(h.partition_real for h in figures.heals):
            print("  warning: in some cycle a half still saw the other half present")
    if figures.join_sync is not None:
        j = figures.join_sync
        print(
            f"  sync traffic during join: {kib(j.sent)} sent, {kib(j.received)} received"
            f" (all nodes, from start to agreement; {j.ok} ok / {j.failed} failed exchange ends)"
        )
    if done:
        cycles = " / ".join(
            f"{kib(h.sync.sent)} ({h.sync.ok}/{h.sync.failed})"
            for h in figures.heals
            if h.seconds is not None
        )
        print(f"  sync traffic per cycle, cut to agreement, sent (ok/failed): {cycles}")
    if figures.error:
        print(f"  error: {figures.error.splitlines()[0]}")


def run_sim() -> None:
    import directory_sim  # bench/ is sys.path[0] when this file runs as a script

    print("\nsimulated replicas (bench/directory_sim.py):", flush=True)
    directory_sim.main([])


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # run the finally blocks: stop nodes, delete namespaces


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--heartbeat", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--lease", type=float, default=15.0, metavar="SECONDS")
    parser.add_argument("--sync-interval", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--partition-seconds", type=float, default=30.0)
    parser.add_argument("--heals", type=int, default=3)
    parser.add_argument("--join-timeout", type=float, default=30.0)
    parser.add_argument(
        "--heal-bound", type=float, default=15.0, help="print the lag diagnosis past this"
    )
    parser.add_argument("--heal-timeout", type=float, default=60.0)
    parser.add_argument(
        "--sim", action="store_true", help="also print bench/directory_sim.py's table"
    )
    args = parser.parse_args(argv)
    if args.nodes < 2:
        parser.error("--nodes must be at least 2")
    signal.signal(signal.SIGTERM, _terminate)

    figures = Figures(
        timing=Timing(
            heartbeat_s=args.heartbeat, lease_s=args.lease, sync_interval_s=args.sync_interval
        ),
        nodes=args.nodes,
        partition_s=args.partition_seconds,
    )
    code = 0
    if reason := netns_skip_reason("iptables"):
        print(f"real-node part skipped: {reason}")
    else:
        run_real(args, figures)
        print_figures(figures, args)
        code = 1 if figures.error else 0
    if args.sim:
        run_sim()
    else:
        print(
            "\nsimulated replicas (100 / 1,000 / 10,000): python3 bench/directory.py --sim,"
            " or python3 bench/directory_sim.py (~35 s, peak 1.5 GB)"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
