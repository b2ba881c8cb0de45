"""The network side of ``bench/firehose_load.py``: one real character node that publishes
actions to the firehose over libp2p, paced, and says when it published each.

Run by ``bench/firehose_load.py``, never by hand (``python bench/_firehose_publisher.py
--help``). Talks to its parent through stdout, one JSON object per line; reads ``go`` on
stdin to start publishing; stdin closing stops it. Every wait is bounded.

The node is a plain :func:`node.process.run_node` (SQLite, validators, the directory),
with no engine, bootstrapped to the firehose only. Publish time is taken with
``time.time_ns()`` just before ``CharacterNode.publish`` (seq, seal, store, gossip), so a
viewer's latency includes the whole node path; the seal's own ``ts`` is milliseconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import trio
from _firehose_common import follow_stdin
from _gossip_common import (
    action_body,
    devnull,
    emit,
    node_config,
    process_cpu_s,
    run_node_until_stopped,
)

from keys import TOPIC_ACTIONS
from node import CharacterNode, EventLog


async def publish(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="rv-bench-fh-") as tmp, devnull() as sink:
        base = node_config("BenchSpeaker", Path(tmp) / "speaker")
        network = dataclasses.replace(base.network, bootstrap=(args.bootstrap,))
        config = dataclasses.replace(base, network=network)
        async with trio.open_nursery() as nursery:
            node: CharacterNode = await nursery.start(
                run_node_until_stopped, config, EventLog("json", sink), nursery.cancel_scope
            )
            go = trio.Event()
            nursery.start_soon(_follow_stdin, go, nursery.cancel_scope)
            subscribed = await node.host.wait_for_subscriber(
                TOPIC_ACTIONS, args.firehose, args.wait
            )
            if not subscribed:
                emit({"event": "error", "error": "the firehose never subscribed to actions"})
                return
            emit({"event": "ready", "peer_id": node.identity.peer_id_str})
            await go.wait()
            emit(await _paced(node, args.rate, int(args.rate * args.duration)))


async def _follow_stdin(go: trio.Event, scope: trio.CancelScope) -> None:
    """``go`` starts the publishing; end of input stops the node."""
    await follow_stdin(lambda line: go.set() if line == "go" else None)
    scope.cancel()


async def _paced(node: CharacterNode, rate: float, count: int) -> dict[str, object]:
    """Publish ``count`` actions at ``rate``/s, on a fixed schedule (a late one is not
    made up by bunching: each goes at its slot or as soon after as it can)."""
    published: list[tuple[int, int]] = []
    call_ns: list[int] = []
    recipients_zero = 0
    late = 0
    cpu_before = process_cpu_s(os.getpid())
    start = trio.current_time()
    for index in range(count):
        slot = start + index / rate
        if trio.current_time() > slot + 1 / rate:
            late += 1
        await trio.sleep_until(slot)
        before = time.time_ns()
        envelope, recipients = await node.publish("action", action_body(index))
        call_ns.append(time.time_ns() - before)
        published.append((envelope.seq, before))
        recipients_zero += recipients == 0
    elapsed = trio.current_time() - start
    cpu_after = process_cpu_s(os.getpid())
    call_ns.sort()
    return {
        "event": "done",
        "published": published,
        "elapsed_s": elapsed,
        "late": late,
        "no_recipients": recipients_zero,
        "publish_call_ms_p50": call_ns[len(call_ns) // 2] / 1e6 if call_ns else None,
        "publish_call_ms_p99": call_ns[int(len(call_ns) * 0.99)] / 1e6 if call_ns else None,
        "cpu_s": None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="the publishing node of bench/firehose_load.py")
    parser.add_argument("--bootstrap", required=True, help="the firehose's /p2p/ multiaddr")
    parser.add_argument("--firehose", required=True, help="the firehose's PeerID")
    parser.add_argument("--rate", type=float, default=100.0, help="actions per second")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of publishing")
    parser.add_argument("--wait", type=float, default=30.0, help="s for the firehose to subscribe")
    args = parser.parse_args()
    trio.run(publish, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
