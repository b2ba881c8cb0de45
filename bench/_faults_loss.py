"""One loss scenario of ``bench/faults.py``: N nodes, random loss on every link for a while."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from _faults_common import TIMING, PresenceSamples, all_online, first_times

from tests.support.action_traffic import ActionTraffic, Delivery, median, percentile
from tests.support.directory_party import DirectoryParty, everyone_sees
from tests.support.netns import LanParty
from tests.support.node_health import crashes
from tests.support.packet_loss import RandomLoss


@dataclass
class LossResult:
    percent: float
    seconds: float
    deliveries: list[Delivery] = field(default_factory=list)
    sent: int = 0
    failed_sends: int = 0
    latencies_s: list[float] = field(default_factory=list)
    recovery_s: float | None = None
    """Loss end → every node shows every node online (None: not within the timeout)."""
    delivered_s: float | None = None
    """Loss end → every line heard by every node (0: all had arrived when the loss ended)."""
    not_online: tuple[int, int] = (0, 0)
    """Directory readings of another node as not online during the loss, of all readings."""
    dropped: int = 0
    unresponsive_start: int = 0
    """``peer_unresponsive`` events from start-up to the beginning of the loss."""
    unresponsive_loss: int = 0
    """... and from the beginning of the loss to the end of recovery."""
    crashes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def p50_ms(self) -> float:
        return median(self.latencies_s) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_s, 99) * 1000


def run_loss(
    percent: float,
    seconds: float,
    *,
    nodes: int,
    every_s: float,
    join_timeout: float,
    recover_timeout: float,
    tmp: Path,
) -> LossResult:
    result = LossResult(percent, seconds)
    tmp.mkdir(parents=True, exist_ok=True)
    with LanParty(nodes) as lan:
        party = DirectoryParty(lan, tmp, TIMING)
        try:
            procs = party.start_all(lan.hosts)
            ids = {node.peer_id for node in procs}
            try:
                party.wait_agreement(procs, join_timeout, everyone_sees(ids))
            except AssertionError as exc:
                result.error = f"join: {str(exc).splitlines()[0]}"
                return result
            before = {node.peer_id: len(node.of("peer_unresponsive")) for node in procs}
            traffic = ActionTraffic(procs, every_s=every_s, tag=f"loss{percent:g}")
            samples = PresenceSamples(party, procs)
            if percent > 0:
                with RandomLoss(lan.hosts, percent / 100) as loss:
                    traffic.run(seconds, alongside=samples.sample)
                result.dropped = loss.total_dropped()
            else:
                traffic.run(seconds, alongside=samples.sample)
            ended = time.monotonic()
            found = first_times(
                {
                    "all online": lambda: all_online(party.read(procs), ids),
                    "all delivered": traffic.all_delivered,
                },
                ended,
                recover_timeout,
            )
            result.recovery_s = found["all online"]
            result.delivered_s = found["all delivered"]
            result.deliveries = traffic.deliveries()
            result.sent = len(traffic.sent)
            result.failed_sends = len(traffic.failed())
            result.latencies_s = [s for d in result.deliveries for s in d.latencies_s]
            result.not_online = samples.not_online()
            result.unresponsive_start = sum(before.values())
            result.unresponsive_loss = sum(
                len(node.of("peer_unresponsive")) - before[node.peer_id] for node in procs
            )
            result.crashes = crashes(procs)
        finally:
            party.close()
    return result


__all__ = ["LossResult", "run_loss"]
