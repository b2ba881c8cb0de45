"""Ten nodes in network namespaces: partition, heal, kill -9, a late joiner (issue 3).

mDNS is off: every node knows only N0's address and finds the rest through the
directory. Heartbeat 5 s, lease 15 s, anti-entropy every second.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.support.directory_party import PRESENT, DirectoryParty, Timing, everyone_sees
from tests.support.netns import LanParty, netns_skip_reason
from tests.support.procs import NodeProcess

pytestmark = pytest.mark.netns

N = 10
PARTITION_S = 30.0
HEAL_BOUND_S = 15.0
TIMING = Timing(heartbeat_s=5.0, lease_s=15.0, sync_interval_s=1.0)
STATUSES = ("away", "asleep", "online")


def test_ten_nodes_partition_heal_kill_and_late_joiner(tmp_path: Path) -> None:
    if reason := netns_skip_reason("iptables"):
        pytest.skip(reason)
    with LanParty(N + 1) as lan:
        party = DirectoryParty(lan, tmp_path, TIMING)
        try:
            nodes = party.start_all(lan.hosts[:N])
            ids = {node.peer_id for node in nodes}
            party.wait_agreement(nodes, 30, everyone_sees(ids))

            # -- partition 5|5 for 30 s while both halves keep changing entries ----------
            left, right = nodes[:5], nodes[5:]
            party.partition(lan.hosts[:5], lan.hosts[5:N])
            acked, history = change_entries_for(PARTITION_S, party, left, right)
            # The partition was real: each half saw the other's leases lapse.
            for side, other in ((left, right), (right, left)):
                seen = side[0].presence()
                assert all(seen[node.peer_id] == "offline" for node in other), seen

            # -- heal: identical digests within 15 s, every acknowledged update present --
            party.heal(lan.hosts[:N])
            took, replies = party.wait_agreement(
                nodes, HEAL_BOUND_S, lambda replies: all_acked_present(replies, acked)
            )
            check_set(replies, ids, acked, history)
            print(f"healed in {took:.1f} s")

            # -- kill -9: offline everywhere within lease + 2 heartbeats ------------------
            victim, survivors = nodes[-1], nodes[:-1]
            killed_at = time.monotonic()
            victim.kill()
            bound = TIMING.lease_s + 2 * TIMING.heartbeat_s
            party.wait_agreement(survivors, bound, everyone_sees({victim.peer_id}, "offline"))
            assert time.monotonic() - killed_at <= bound + 1.0  # +1: the reading itself

            # -- a late joiner converges ---------------------------------------------------
            late = party.start(lan.hosts[N], "Late", nodes[0].addrs)
            late.wait_ready()
            live = [*survivors, late]
            party.wait_agreement(
                live,
                HEAL_BOUND_S,
                lambda replies: (
                    everyone_sees({n.peer_id for n in live}, *PRESENT)(replies)
                    and everyone_sees({victim.peer_id}, "offline")(replies)
                ),
            )
            for node in live:
                assert not [e for e in node.of("rejected") if "directory" in e["channel"]]
        finally:
            party.close()


Acked = dict[str, tuple[list[int], str]]
MIN_ROUNDS = 3


def change_entries_for(
    seconds: float, party: DirectoryParty, *halves: list[NodeProcess]
) -> tuple[Acked, dict[str, list[str]]]:
    """Change every node's status in rounds until ``seconds`` passed; after each round,
    wait until each half agrees inside itself. Returns the last acknowledged (clock,
    status) per node and every status each node was given."""
    acked: Acked = {}
    history: dict[str, list[str]] = defaultdict(lambda: ["online"])
    start = time.monotonic()
    rounds = 0
    # At least MIN_ROUNDS rounds and at least ``seconds``: a loaded machine makes the
    # partition last longer, never the test weaker. Bounded all the same.
    while rounds < MIN_ROUNDS or time.monotonic() - start < seconds:
        assert time.monotonic() - start < 6 * seconds, f"only {rounds} rounds in {6 * seconds}s"
        for i, node in enumerate(n for half in halves for n in half):
            status = STATUSES[(rounds + i) % len(STATUSES)]
            reply = node.control({"cmd": "set_status", "status": status})
            acked[node.peer_id] = (reply["clock"], status)
            history[node.peer_id].append(status)
        for half in halves:
            party.wait_agreement(
                half, 15, lambda replies: all_acked_present(replies, acked, reachable_only=True)
            )
        # Pace the rounds by the nodes' own heartbeat (each renews its entry once), so
        # the load is a busy network's, not a flood.
        for node in (n for half in halves for n in half):
            clock = acked[node.peer_id][0]

            def renewed(summary: dict[str, Any], c: list[int] = clock) -> bool:
                own_clock: list[int] = summary["own_clock"]
                return own_clock > c

            node.wait_directory_summary(renewed, 10, "a heartbeat")
        rounds += 1

    return acked, history


def all_acked_present(
    replies: list[dict[str, Any]], acked: Acked, *, reachable_only: bool = False
) -> bool:
    """Every reply shows each acknowledged update (or a newer entry with the same status);
    with ``reachable_only``, peers whose lease lapsed (across a partition) are skipped."""
    for reply in replies:
        for row in reply["entries"]:
            done = acked.get(row["peer_id"])
            if done is None or (reachable_only and row["status"] == "offline"):
                continue
            clock, status = done
            if row["status"] != status or row["last_seen_ms"] < clock[0]:
                return False
    return True


def check_set(
    replies: list[dict[str, Any]], ids: set[str], acked: Acked, history: dict[str, list[str]]
) -> None:
    """Jepsen's set checker, for the directory: every acknowledged update is present
    everywhere (nothing lost), and nothing is present that nobody wrote."""
    for reply in replies:
        rows = {row["peer_id"]: row for row in reply["entries"]}
        assert set(rows) == ids, "unexpected or missing peers"
        for peer, (clock, status) in acked.items():
            row = rows[peer]
            assert row["status"] == status, f"lost update: {peer} is {row['status']}, not {status}"
            assert row["last_seen_ms"] >= clock[0], f"lost update: {peer} has an older entry"
            assert row["status"] in history[peer], f"{peer} has a status nobody wrote"
