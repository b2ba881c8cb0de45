"""Faults benchmark: packet loss and clock skew on real nodes in network namespaces (root).

    python3 bench/faults.py [--nodes 5] [--loss 0:30,5:30,20:60,40:30] [--skew 90,-90,600]
                            [--every 2] [--watch 40] [--recover-timeout 60]

Real ``roomverse node`` processes, one per namespace of a
:class:`tests.support.netns.LanParty`, mDNS off (each knows only the first node's
address and finds the rest through the directory), heartbeat 5 s, lease 15 s,
anti-entropy every second — the CI tests' timing (``tests/netns/test_packet_loss.py``).
A fresh LAN for every scenario.

* Loss, ``PERCENT:SECONDS`` each (0 = the baseline): iptables ``statistic`` DROP on
  every namespace's INPUT, so each direction of each link loses that share of its
  packets. While it lasts every node says a tagged line every ``--every`` seconds (over
  its control socket) and every directory is read once a second. Then, until
  ``--recover-timeout``: when every line had reached every node, and when every node's
  directory showed every node online again. Latency = the moment the line was asked
  for → the receiver's ``action_received`` time (one machine, one clock).
* Skew, seconds each: one node of the LAN runs under ``faketime`` with its wall clock
  that far off, for ``--watch`` seconds of the same traffic: is it online at every peer
  (and from when), does it see them online, are its lines accepted, does it log
  ``clock_skew`` (its own side), how many ``stale_timestamp`` refusals the peers count
  and log, and whether it was told on its side.

Prints, never asserts. Exits 1 with a message when not root or ``ip``/``iptables`` are
missing (the skew rows are skipped, with the reason, when ``faketime`` is missing).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _faults_loss import LossResult, run_loss  # noqa: E402
from _faults_report import crash_details, loss_table, skew_table  # noqa: E402
from _faults_skew import SkewResult, faketime_skip_reason, offset_label, run_skew  # noqa: E402

from tests.support.netns import netns_skip_reason  # noqa: E402

DEFAULT_LOSS = "0:30,5:30,20:60,40:30"
DEFAULT_SKEW = "90,-90,600"


def parse_loss(text: str) -> list[tuple[float, float]]:
    """``0:30,20:60`` → [(0.0, 30.0), (20.0, 60.0)] (percent, seconds); empty: none."""
    scenarios = []
    for item in filter(None, text.split(",")):
        percent, _, seconds = item.partition(":")
        p, s = float(percent), float(seconds or 30)
        if not 0 <= p < 100 or s <= 0:
            raise argparse.ArgumentTypeError(f"bad loss scenario {item!r} (PERCENT:SECONDS)")
        scenarios.append((p, s))
    return scenarios


def parse_skew(text: str) -> list[int]:
    return [int(item) for item in filter(None, text.split(","))]


def reproduce(args: argparse.Namespace) -> str:
    argv = [
        "python3",
        "bench/faults.py",
        "--nodes",
        str(args.nodes),
        "--loss",
        ",".join(f"{p:g}:{s:g}" for p, s in args.loss),
        # "=": a list that starts with a minus must not read as an option
        "--skew=" + ",".join(str(o) for o in args.skew),
        "--every",
        f"{args.every:g}",
        "--watch",
        f"{args.watch:g}",
        "--recover-timeout",
        f"{args.recover_timeout:g}",
    ]
    return shlex.join(argv)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # run the finally blocks: stop nodes, delete namespaces


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument(
        "--loss", type=parse_loss, default=parse_loss(DEFAULT_LOSS), metavar="P:S,..."
    )
    parser.add_argument(
        "--skew", type=parse_skew, default=parse_skew(DEFAULT_SKEW), metavar="SECONDS,..."
    )
    parser.add_argument("--every", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--watch", type=float, default=40.0, metavar="SECONDS")
    parser.add_argument("--join-timeout", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("--recover-timeout", type=float, default=60.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    if args.nodes < 2:
        parser.error("--nodes must be at least 2")
    if reason := netns_skip_reason("iptables"):
        print(f"bench/faults.py {reason}: run it as root with iproute2 and iptables installed")
        return 1
    signal.signal(signal.SIGTERM, _terminate)

    started = time.monotonic()
    loss: list[LossResult] = []
    skew: list[SkewResult] = []
    with tempfile.TemporaryDirectory(prefix="rv-bench-faults-") as tmp:
        for i, (percent, seconds) in enumerate(args.loss):
            print(f"loss {percent:g} % for {seconds:g} s ...", flush=True)
            result = run_loss(
                percent,
                seconds,
                nodes=args.nodes,
                every_s=args.every,
                join_timeout=args.join_timeout,
                recover_timeout=args.recover_timeout,
                tmp=Path(tmp) / f"loss{i}",
            )
            loss.append(result)
            print("\n".join(loss_table([result], args.nodes, args.recover_timeout)[-1:]))
        skew_skipped = faketime_skip_reason() if args.skew else None
        for i, offset in enumerate([] if skew_skipped else args.skew):
            print(f"clock {offset_label(offset)} ...", flush=True)
            outcome = run_skew(
                offset,
                nodes=args.nodes,
                every_s=args.every,
                watch_s=args.watch,
                join_timeout=args.join_timeout,
                deliver_timeout=15.0,
                tmp=Path(tmp) / f"skew{i}",
            )
            skew.append(outcome)
            print("\n".join(skew_table([outcome], args.nodes, args.watch)[-1:]))

    print()
    if loss:
        print("\n".join(loss_table(loss, args.nodes, args.recover_timeout)))
        print()
    if skew:
        print("\n".join(skew_table(skew, args.nodes, args.watch)))
        print()
    if skew_skipped:
        print(f"clock skew scenarios skipped: {skew_skipped}\n")
    if details := crash_details(loss, skew):
        print("crashes:\n" + "\n".join(details) + "\n")
    print(f"took {time.monotonic() - started:.0f} s; to reproduce: {reproduce(args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
