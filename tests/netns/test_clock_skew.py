"""Clocks that disagree (issue 18): nodes in network namespaces, some under ``faketime``.

Clocks are set off with libfaketime preloaded into the node (:mod:`tests.support.faketime`).

* Nodes 90 s ahead and 90 s behind are ``online`` on every node for a whole lease cycle
  (leases are read on the reader's clock), their actions are accepted, and each is told
  its clock is off while the others are not.
* A node 10 minutes ahead has everything it sends refused: it says ``clock_skew`` on its
  own side with the offset (and ``roomverse status`` says so), it reads the reason in the
  peers' sync refusals, and each peer logs one clear refusal, not one per message.

mDNS is off: nodes find each other through the first node (and the directory).
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.directory_party import DirectoryParty, Timing, everyone_sees
from tests.support.faketime import faketime_skip_reason
from tests.support.line_reader import Event
from tests.support.netns import LanParty, netns_skip_reason
from tests.support.procs import POLL_INTERVAL_S, REPO, NodeProcess, roomverse_argv
from tests.support.waiting import wait_until

pytestmark = pytest.mark.netns

TIMING = Timing(heartbeat_s=2.0, lease_s=6.0, sync_interval_s=1.0)
SKEW_S = 90
FAR_S = 600
JOIN_S = 30.0


def skipped() -> None:
    if reason := netns_skip_reason() or faketime_skip_reason():
        pytest.skip(reason)


def test_nodes_90_s_ahead_and_behind_are_online_everywhere_and_heard(tmp_path: Path) -> None:
    skipped()
    with LanParty(5) as lan:
        party = DirectoryParty(lan, tmp_path, TIMING)
        try:
            first = party.start(lan.hosts[0], "N0")
            first.wait_ready()
            plan = [("N1", 0), ("N2", 0), ("Ahead", SKEW_S), ("Behind", -SKEW_S)]
            rest = [
                party.start(host, name, first.addrs, clock_offset_s=offset)
                for host, (name, offset) in zip(lan.hosts[1:], plan, strict=True)
            ]
            for node in rest:
                node.wait_ready()
            nodes = [first, *rest]
            honest, (ahead, behind) = nodes[:3], nodes[3:]
            ids = {node.peer_id for node in nodes}
            party.wait_agreement(nodes, JOIN_S, everyone_sees(ids))

            # A full lease cycle, and then some: every reading of every node shows all
            # five online, until both skewed nodes have renewed for longer than a lease.
            lease_ms = int(TIMING.lease_s * 1000)
            heartbeat_ms = int(TIMING.heartbeat_s * 1000)
            started = {n.peer_id: n.directory()["own_clock"][0] for n in (ahead, behind)}
            readings = 0

            def a_lease_cycle_passed_with_everyone_online() -> bool:
                nonlocal readings
                replies = party.read(nodes)
                readings += 1
                for node, reply in zip(nodes, replies, strict=True):
                    shown = {row["peer_id"]: row["status"] for row in reply["entries"]}
                    assert all(shown.get(p) == "online" for p in ids), (node.name, shown)
                own = {
                    row["peer_id"]: reply["own_clock"][0]
                    for reply in replies[3:]
                    for row in reply["entries"]
                    if row["self"]
                }
                return all(own[p] - started[p] >= lease_ms + heartbeat_ms for p in started)

            wait_until(
                a_lease_cycle_passed_with_everyone_online,
                4 * TIMING.lease_s + JOIN_S,
                "a lease cycle of the skewed nodes' renewals",
                poll=POLL_INTERVAL_S,
            )
            assert readings >= 10, readings

            # Their actions are accepted everywhere.
            for node in (ahead, behind):
                node.act("speak", f"the time is wrong at {node.name}")
            for node in nodes:
                for sender in (ahead, behind):
                    if node is not sender:
                        node.wait_for(
                            functools.partial(
                                spoke, sender=sender, text=f"the time is wrong at {sender.name}"
                            ),
                            15,
                            f"speech from {sender.name}",
                        )

            # Each skewed node is told its clock is off, with the offset; nobody else is.
            for node, state in ((ahead, "ahead"), (behind, "behind")):
                said = node.wait_for(lambda e: e.get("event") == "clock_skew", 30, "clock_skew")
                assert said["state"] == state and not said["refused"], said
                assert SKEW_S - 5 <= abs(said["offset_s"]) <= SKEW_S + 5, said
                side = "ahead of" if state == "ahead" else "behind"
                assert (
                    f"your clock is {abs(said['offset_s'])} s {side} your peers"
                    in (said["message"])
                )
                clock = node.status()["clock"]
                assert clock["state"] == state and clock["peers"] >= 3, clock
            for node in honest:
                assert node.of("clock_skew") == [], node.of("clock_skew")
                assert node.status()["clock"]["state"] == "ok"
            for node in nodes:
                assert node.of("rejected") == [], (node.name, node.of("rejected"))
                assert node.of("peer_unresponsive") == [], node.name
        finally:
            party.close()


def spoke(event: Event, sender: NodeProcess, text: str) -> bool:
    return (
        event.get("event") == "action_received"
        and event.get("from") == sender.peer_id
        and event.get("body", {}).get("text") == text
    )


def test_a_node_ten_minutes_ahead_is_told_and_its_peers_say_so_once(tmp_path: Path) -> None:
    skipped()
    with LanParty(4) as lan:
        party = DirectoryParty(lan, tmp_path, TIMING)
        try:
            honest = party.start_all(lan.hosts[:3])
            party.wait_agreement(honest, JOIN_S, everyone_sees({n.peer_id for n in honest}))
            everyone = [addr for node in honest for addr in node.addrs]
            wrong = party.start(lan.hosts[3], "Wrong", everyone, clock_offset_s=FAR_S)
            wrong.wait_ready()

            # On its own side: the verdict, with the offset, once.
            said = wrong.wait_for(
                lambda e: e.get("event") == "clock_skew", 60, "clock_skew on the wrong clock"
            )
            assert said["state"] == "ahead" and said["refused"], said
            assert FAR_S - 10 <= said["offset_s"] <= FAR_S + 10, said
            assert said["peers"] == 3, said
            # ... and the reason, from the peers that refused its syncs.
            told = wrong.wait_for(
                lambda e: e.get("event") == "sync_refused", 30, "a sync refusal from a peer"
            )
            assert told["reason"] == "stale_timestamp", told
            assert "your clock is" in told["detail"] and "ahead of mine" in told["detail"]

            # The refusals go on (every heartbeat, every sync): let them pile up.
            for node in honest:
                wait_until(
                    functools.partial(refused_often, node),
                    60,
                    f"{node.name} refusing the wrong clock ten times",
                    poll=POLL_INTERVAL_S,
                    detail=functools.partial(rejected_counts, node),
                )
            for node in honest:
                about = [e for e in node.of("rejected") if e["peer_id"] == wrong.peer_id]
                assert len(about) == 1, about  # one clear line, not a flood
                (line,) = about
                assert line["reason"] == "stale_timestamp"
                assert "their clock is" in line["detail"] and "ahead of ours" in line["detail"]
                assert FAR_S - 10 <= line["ahead_s"] <= FAR_S + 10, line
                assert node.of("sync_refused") == []  # its refusals only say its clock is off
                assert node.of("clock_skew") == []  # their own clocks are fine
                assert wrong.peer_id not in node.presence()  # never admitted

            # The wrong node logs each peer once too, and says clock_skew once.
            per_peer = Counter(e["peer_id"] for e in wrong.of("rejected"))
            assert per_peer and set(per_peer.values()) == {1}, per_peer
            assert len(wrong.of("clock_skew")) == 1
            # `roomverse status` says it: in its JSON, and on the terminal.
            shown = status_with_warning(wrong)
            match = re.search(r"your clock is (\d+) s ahead of your peers", shown["stderr"])
            assert match is not None, shown["stderr"]
            assert FAR_S - 10 <= int(match.group(1)) <= FAR_S + 10
            assert shown["clock"]["state"] == "ahead" and shown["clock"]["refused"]
        finally:
            party.close()


def refused_often(node: NodeProcess) -> bool:
    return int(node.status()["rejected"].get("stale_timestamp", 0)) >= 10


def rejected_counts(node: NodeProcess) -> str:
    return f"rejected: {node.status()['rejected']}"


def status_with_warning(node: NodeProcess) -> dict[str, Any]:
    """``roomverse status`` as its owner runs it: the JSON reply and what stderr says."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        roomverse_argv("status", "--data-dir", str(node.data_dir)),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=REPO,
        check=True,
    )
    reply: dict[str, Any] = json.loads(done.stdout)
    return {**reply, "stderr": done.stderr}
