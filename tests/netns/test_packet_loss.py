"""Five nodes through random packet loss on every link (issue 18); a clean start is
``test_clean_start.py``.

Five ``roomverse node`` processes in five namespaces on one bridge, mDNS off (each knows
only N0's address and finds the rest through the directory); heartbeat 5 s, lease 15 s,
anti-entropy every second, as in the partition test. Loss is an iptables ``statistic``
rule on each namespace's INPUT (:class:`~tests.support.packet_loss.RandomLoss`): each
direction of each link loses that share of its packets. While it lasts, every node says
a tagged line every 2 s over its control socket; after 20 % loss every node must have
heard every line of the others, exactly once; after 40 %, the network must recover and
every line said during the loss must arrive once it ends (catch-up, ``node.catch_up``,
brings what gossip lost).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.action_traffic import ActionTraffic, median, percentile
from tests.support.directory_party import DirectoryParty, Timing, everyone_sees
from tests.support.netns import LanParty, netns_skip_reason
from tests.support.node_health import crashes
from tests.support.packet_loss import RandomLoss
from tests.support.procs import NodeProcess

pytestmark = pytest.mark.netns

N = 5
TIMING = Timing(heartbeat_s=5.0, lease_s=15.0, sync_interval_s=1.0)
JOIN_TIMEOUT_S = 30.0
SAY_EVERY_S = 2.0
CONVERGE_AFTER_LOSS_S = 15.0
"""The issue's bound: from the end of the loss to every node showing all five online."""
DELIVER_AFTER_HEAVY_LOSS_S = 30.0
"""After 40 % loss: everything must have arrived within this (catch-up runs on every new
connection and every 10 s ±25 %)."""


@dataclass
class Lan:
    lan: LanParty
    party: DirectoryParty
    nodes: list[NodeProcess]

    @property
    def ids(self) -> set[str]:
        return {node.peer_id for node in self.nodes}


@pytest.fixture
def five(tmp_path: Path) -> Iterator[Lan]:
    """Five nodes, started clean and agreeing that all five are online."""
    if reason := netns_skip_reason("iptables"):
        pytest.skip(reason)
    with LanParty(N) as lan:
        party = DirectoryParty(lan, tmp_path, TIMING)
        try:
            nodes = party.start_all(lan.hosts)
            party.wait_agreement(nodes, JOIN_TIMEOUT_S, everyone_sees({n.peer_id for n in nodes}))
            yield Lan(lan, party, nodes)
        finally:
            party.close()


def speak_through_loss(five: Lan, probability: float, seconds: float) -> ActionTraffic:
    """Every node speaks every 2 s while ``probability`` loss lasts ``seconds``; checks
    the loss was real on every host and every request was acknowledged."""
    traffic = ActionTraffic(five.nodes, every_s=SAY_EVERY_S, tag=f"loss{probability:g}")
    with RandomLoss(five.lan.hosts, probability) as loss:
        traffic.run(seconds)
    print(f"{probability:.0%} loss: {loss.total_dropped()} packets dropped, {loss.dropped}")
    assert all(count > 0 for count in loss.dropped.values()), loss.dropped
    assert len(loss.dropped) == N, "every host's rule was read and removed"
    assert not traffic.failed(), traffic.failed()[:5]
    assert len(traffic.sent) >= N * int(seconds / SAY_EVERY_S)
    return traffic


def exactly_once(traffic: ActionTraffic) -> None:
    for d in traffic.deliveries():
        assert (d.received, d.duplicates) == (d.expected, 0), f"{d.node}: {d}"
    latencies = [s for d in traffic.deliveries() for s in d.latencies_s]
    print(
        f"{len(traffic.sent)} lines, {len(latencies)} receipts: latency p50"
        f" {median(latencies) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms,"
        f" max {max(latencies) * 1000:.0f} ms"
    )


@pytest.mark.timeout(200)
def test_20_percent_loss_for_60_s_delivers_every_action_and_the_directory_converges(
    five: Lan,
) -> None:
    traffic = speak_through_loss(five, 0.20, 60.0)
    ended = time.monotonic()

    def left() -> float:
        return max(0.1, ended + CONVERGE_AFTER_LOSS_S - time.monotonic())

    traffic.wait_delivered(left())
    five.party.wait_agreement(five.nodes, left(), everyone_sees(five.ids))
    print(f"converged {time.monotonic() - ended:.1f} s after the loss ended")
    exactly_once(traffic)
    assert crashes(five.nodes) == []


@pytest.mark.timeout(150)
def test_after_40_percent_loss_for_30_s_everything_said_arrives_without_a_crash(
    five: Lan,
) -> None:
    """No crash, no duplicate, the directory agrees again, every line said during the loss
    arrives once it ends (before catch-up, one sent into a connection the liveness check
    then closed as dead was lost for good about 4 runs in 10: gossip offers a message for
    3 s only), and every line said afterwards reaches everyone."""
    during = speak_through_loss(five, 0.40, 30.0)
    ended = time.monotonic()
    five.party.wait_agreement(five.nodes, CONVERGE_AFTER_LOSS_S, everyone_sees(five.ids))
    during.wait_delivered(DELIVER_AFTER_HEAVY_LOSS_S)
    print(f"everything said during the loss arrived {time.monotonic() - ended:.1f} s after it")
    caught_up = sum(
        1 for node in five.nodes for e in node.of("action_received") if e.get("via") == "catch_up"
    )
    print(f"{caught_up} of the receipts came by catch-up")
    after = ActionTraffic(five.nodes, every_s=SAY_EVERY_S, tag="after-loss")
    after.run(3 * SAY_EVERY_S)
    after.wait_delivered(DELIVER_AFTER_HEAVY_LOSS_S)
    print(f"recovered {time.monotonic() - ended:.1f} s after the loss ended")
    exactly_once(during)
    exactly_once(after)
    assert crashes(five.nodes) == []
