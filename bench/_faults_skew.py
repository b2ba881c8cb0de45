"""One clock-skew scenario of ``bench/faults.py``: one node's wall clock off by a fixed amount.

The skewed node runs with libfaketime preloaded (:mod:`tests.support.faketime`, through
:meth:`DirectoryParty.start`'s ``clock_offset_s``), as the CI skew tests run theirs: only
what it believes the time is differs, its timers run at the normal rate. Its event times
(``ts``) are on its own clock, so its receipts carry no latency; everything else is read
the same way as in the loss scenarios.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _faults_common import TIMING, PresenceSamples

from tests.support.action_traffic import ActionTraffic, median, percentile
from tests.support.directory_party import DirectoryParty, everyone_sees
from tests.support.faketime import faketime_skip_reason
from tests.support.netns import LanParty
from tests.support.node_health import crashes
from tests.support.procs import NodeProcess
from tests.support.waiting import WaitTimeout

STALE = "stale_timestamp"


def offset_label(offset_s: int) -> str:
    sign = "+" if offset_s >= 0 else "-"
    size = abs(offset_s)
    return f"{sign}{size // 60} min" if size >= 300 and size % 60 == 0 else f"{sign}{size} s"


@dataclass
class SkewResult:
    offset_s: int
    online_after_s: float | None = None
    """Start of the watch → every other node shows the skewed one online (None: never)."""
    online_share: tuple[int, int] = (0, 0)
    """Samples, from then on, in which every other node showed it online, of all samples."""
    last_seen_as: list[str] = field(default_factory=list)
    """How each other node showed it in the last sample."""
    sees_others_after_s: float | None = None
    sees_others_share: tuple[int, int] = (0, 0)
    its_lines: tuple[int, int] = (0, 0)
    """Lines of the skewed node heard by the others, of those expected."""
    their_lines: tuple[int, int] = (0, 0)
    """Lines of the others heard by the skewed node, of those expected."""
    latencies_s: list[float] = field(default_factory=list)
    """Of the skewed node's lines, at the others (their clocks are right)."""
    clock_skew: list[dict[str, Any]] = field(default_factory=list)
    """The skewed node's own ``clock_skew`` events."""
    clock_skew_at_peers: int = 0
    status_clock: Any = None
    """``clock`` of the skewed node's ``status`` reply at the end, if it has one."""
    refusals_counted: int = 0
    """``stale_timestamp`` refusals counted by the other nodes (status ``rejected``)."""
    refusals_logged: int = 0
    """... and logged by them as ``rejected`` events."""
    own_side_mentions: int = 0
    """Events of the skewed node that mention ``stale_timestamp`` (a refusal it was told)."""
    crashes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def p50_ms(self) -> float:
        return median(self.latencies_s) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_s, 99) * 1000


def _share(rows: list[list[str]], start: int) -> tuple[int, int]:
    tail = rows[start:]
    return sum(all(s == "online" for s in row) for row in tail), len(tail)


def _first(rows: list[list[str]], times: list[float], since: float) -> tuple[float | None, int]:
    for i, row in enumerate(rows):
        if row and all(s == "online" for s in row):
            return times[i] - since, i
    return None, len(rows)


def run_skew(
    offset_s: int,
    *,
    nodes: int,
    every_s: float,
    watch_s: float,
    join_timeout: float,
    deliver_timeout: float,
    tmp: Path,
) -> SkewResult:
    result = SkewResult(offset_s)
    tmp.mkdir(parents=True, exist_ok=True)
    with LanParty(nodes) as lan:
        party = DirectoryParty(lan, tmp, TIMING)
        try:
            normal = party.start_all(lan.hosts[:-1])
            name = f"Skew{'plus' if offset_s >= 0 else 'minus'}{abs(offset_s)}"
            skewed = party.start(lan.hosts[-1], name, normal[0].addrs, clock_offset_s=offset_s)
            skewed.wait_ready()
            try:
                party.wait_agreement(
                    normal, join_timeout, everyone_sees({n.peer_id for n in normal})
                )
            except AssertionError as exc:
                result.error = f"join of the others: {str(exc).splitlines()[0]}"
                return result
            procs = [*normal, skewed]
            traffic = ActionTraffic(
                procs, every_s=every_s, tag=f"skew{offset_s:+d}", shifted=[skewed]
            )
            samples = PresenceSamples(party, procs)
            began = time.monotonic()
            traffic.run(watch_s, alongside=samples.sample)
            with contextlib.suppress(WaitTimeout):  # what arrived is counted below
                traffic.wait_delivered(deliver_timeout)

            times = [at for at, _ in samples.taken]
            others = [n.peer_id for n in normal]
            seen_as = samples.statuses_of(skewed.peer_id, others)
            result.online_after_s, first = _first(seen_as, times, began)
            result.online_share = _share(seen_as, first)
            result.last_seen_as = seen_as[-1] if seen_as else []
            sees = [
                [view[skewed.peer_id].get(p, "absent") for p in others] for _, view in samples.taken
            ]
            result.sees_others_after_s, first = _first(sees, times, began)
            result.sees_others_share = _share(sees, first)

            ok = [s for s in traffic.sent if s.ok]
            mine = [s for s in ok if s.sender == skewed.peer_id]
            theirs = [s for s in ok if s.sender != skewed.peer_id]
            heard_mine = 0
            for node in normal:
                d = traffic.delivery(node)
                missing = {s.text for s in d.missing}
                heard_mine += sum(s.text not in missing for s in mine)
            result.its_lines = (heard_mine, len(mine) * len(normal))
            at_skewed = traffic.delivery(skewed)
            result.their_lines = (at_skewed.received, len(theirs))
            result.latencies_s = _latencies_of(normal, skewed.peer_id, traffic)

            result.clock_skew = skewed.of("clock_skew")
            result.clock_skew_at_peers = sum(len(n.of("clock_skew")) for n in normal)
            result.status_clock = skewed.status().get("clock")
            for node in normal:
                rejected = node.control({"cmd": "status"}).get("rejected", {})
                result.refusals_counted += int(rejected.get(STALE, 0))
                result.refusals_logged += sum(
                    1 for e in node.of("rejected") if e.get("reason") == STALE
                )
            result.own_side_mentions = sum(
                STALE in json.dumps(e)
                for e in skewed.out.snapshot()
                if e.get("event") != "rejected"
            )
            result.crashes = crashes(procs)
        finally:
            party.close()
    return result


def _latencies_of(receivers: list[NodeProcess], sender: str, traffic: ActionTraffic) -> list[float]:
    """Latencies of ``sender``'s lines at ``receivers`` (send → ``action_received`` ts)."""
    asked = {s.text: s.asked_at for s in traffic.sent if s.ok and s.sender == sender}
    found = []
    for node in receivers:
        seen: set[str] = set()
        for event in node.of("action_received"):
            text = (event.get("body") or {}).get("text")
            if event.get("from") == sender and text in asked and text not in seen:
                seen.add(text)
                found.append(float(event["ts"]) - asked[text])
    return found


__all__ = ["SkewResult", "faketime_skip_reason", "offset_label", "run_skew"]
