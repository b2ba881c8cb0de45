"""One side of ``bench/gossip.py``: a publisher or a receiver, each in its own process.

Run by ``bench/gossip.py``, never by hand (``python bench/_gossip_worker.py --help``).
Talks to its parent through stdout, one JSON object per line; stdin closing tells a
receiver to report and stop. Every wait is bounded.

Variants (both hosts subscribe to the topic, as nodes do):

* ``raw``: ``P2PHost.publish`` of a 256-byte payload, no validator, no envelope;
* ``signed``: ``keys.seal`` per message; both hosts run the node's topic validator
  (``keys.verify`` with transport peer and replay window, through the node's own
  :class:`node.wire.gate.EnvelopeGate`), the consumer admits it through the same gate, as
  :class:`node.character.CharacterNode`
  does;
* ``node``: two real nodes (``node.process.run_node``, SQLite in a temporary data dir):
  ``CharacterNode.publish`` (seq, seal, self-verify, store, publish) on one side, the
  node's own validator + consumer (verify, store, ``action_received`` event) on the other.

The receiver acks every message, batched (one write carries every receipt waiting at
that moment), over one plain TCP connection (``--ack tcp``) or on a second, raw
gossipsub topic (``--ack gossip``); the publisher keeps at most ``window`` messages
unacknowledged. Latency is publish call → receipt at the receiver, both read with
``time.time_ns()`` (one machine, one clock); the receipt time travels back in the ack.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import trio
from _gossip_common import VARIANTS, Offer
from _gossip_publisher import Plan, parse_plan, publish
from _gossip_receiver import receive

from node import MESHSUB_PROTOCOLS


def main() -> int:
    parser = argparse.ArgumentParser(description="one side of bench/gossip.py")
    parser.add_argument("role", choices=("publish", "receive"))
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--ack", choices=("tcp", "gossip"), default="tcp", help="ack path")
    parser.add_argument(
        "--meshsub",
        choices=("1.2", "1.1"),
        default="1.2",
        help="1.1: leave /meshsub/1.2.0 (IDONTWANT) out of what the hosts offer",
    )
    parser.add_argument("--max-seconds", type=float, default=300.0, help="receiver lifetime")
    parser.add_argument("--receiver", help="the receiver's ready line, JSON (publish)")
    parser.add_argument("--plan", default="1:500,32:2000", help="window:count,... (publish)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=30.0, help="per window, seconds")
    parser.add_argument("--loss-timeout", type=float, default=2.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.meshsub == "1.1":
        # An experiment, not how nodes run: read at host creation by open_p2p_host.
        v12, v11, v10 = MESHSUB_PROTOCOLS
        if not str(v12).startswith("/meshsub/1.2"):
            parser.error(f"unexpected MESHSUB_PROTOCOLS {MESHSUB_PROTOCOLS}")
        Offer.meshsub = (v11, v10)
    if args.role == "receive":
        trio.run(receive, args.variant, args.ack, args.max_seconds)
        return 0
    if not args.receiver:
        parser.error("publish needs --receiver")
    ready = json.loads(args.receiver)
    plan = Plan(
        addr=str(ready["addr"]),
        ack_port=int(ready["ack_port"]),
        ack_mode=args.ack,
        receiver_pid=int(ready["pid"]) if ready.get("pid") else None,
        windows=parse_plan(args.plan),
        warmup=args.warmup,
        timeout_s=args.timeout,
        loss_timeout_s=args.loss_timeout,
    )
    trio.run(publish, args.variant, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
