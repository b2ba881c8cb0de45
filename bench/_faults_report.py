"""The tables ``bench/faults.py`` prints (Markdown, ready for the README)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from _faults_common import TIMING
from _faults_loss import LossResult
from _faults_skew import SkewResult, offset_label


def _s(value: float | None, timeout: float) -> str:
    return f"> {timeout:g} s" if value is None else f"{value:.1f} s"


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.0f}"


def _of(pair: tuple[int, int]) -> str:
    return f"{pair[0]}/{pair[1]}"


def loss_table(results: Sequence[LossResult], nodes: int, recover_timeout: float) -> list[str]:
    lines = [
        f"Random loss on every link, {nodes} real nodes (heartbeat {TIMING.heartbeat_s:g} s,"
        f" lease {TIMING.lease_s:g} s, anti-entropy {TIMING.sync_interval_s:g} s); every node"
        " says a line every 2 s while the loss lasts",
        "",
        "| loss | for | delivered / expected, per node | p50 / p99 ms | all delivered"
        " after the end | all online again after | readings not online during |"
        " packets dropped | `peer_unresponsive` to join / after | crashed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {r.percent:g} % | {r.seconds:g} s | error: {r.error} |")
            continue
        per_node = " ".join(f"{d.received}/{d.expected}" for d in r.deliveries)
        dups = sum(d.duplicates for d in r.deliveries)
        if dups:
            per_node += f" (+{dups} duplicates)"
        if r.failed_sends:
            per_node += f" ({r.failed_sends} sends failed)"
        bad, total = r.not_online
        lines.append(
            f"| {r.percent:g} % | {r.seconds:g} s | {per_node} | {_ms(r.p50_ms)} / {_ms(r.p99_ms)}"
            f" | {_s(r.delivered_s, recover_timeout)} | {_s(r.recovery_s, recover_timeout)}"
            f" | {bad}/{total} | {r.dropped:,} | {r.unresponsive_start} / {r.unresponsive_loss}"
            f" | {'yes' if r.crashes else 'no'} |"
        )
    return lines


def _clock(reading: Any) -> str:
    if not isinstance(reading, dict):
        return "–"
    offset = reading.get("offset_s")
    state = reading.get("state", "?")
    return f"{state} {offset:+.0f} s" if isinstance(offset, int | float) else str(state)


def _skew_event(events: list[dict[str, Any]]) -> str:
    if not events:
        return "no"
    first = events[0]
    offset = first.get("offset_s")
    said = f"{offset:+.0f} s" if isinstance(offset, int | float) else first.get("state", "yes")
    return f"yes ({said}; {len(events)} event{'s' if len(events) > 1 else ''})"


def skew_table(results: Sequence[SkewResult], nodes: int, watch_s: float) -> list[str]:
    lines = [
        f"One node's wall clock off (`faketime`), {nodes} real nodes, watched for {watch_s:g} s"
        " while every node says a line every 2 s",
        "",
        "| its clock | online at every peer (from, samples) | it sees the others online"
        " (from, samples) | its lines accepted | others' lines at it | p50 / p99 ms |"
        " `clock_skew` on its side | its `status` clock | `stale_timestamp` at peers"
        " counted / logged | told on its side | crashed |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        label = offset_label(r.offset_s)
        if r.error:
            lines.append(f"| {label} | error: {r.error} |")
            continue
        online = (
            "never (last: " + ", ".join(r.last_seen_as) + ")"
            if r.online_after_s is None
            else f"{r.online_after_s:.0f} s, {_of(r.online_share)}"
        )
        sees = (
            "never"
            if r.sees_others_after_s is None
            else f"{r.sees_others_after_s:.0f} s, {_of(r.sees_others_share)}"
        )
        lines.append(
            f"| {label} | {online} | {sees} | {_of(r.its_lines)} | {_of(r.their_lines)}"
            f" | {_ms(r.p50_ms)} / {_ms(r.p99_ms)} | {_skew_event(r.clock_skew)}"
            f" | {_clock(r.status_clock)} | {r.refusals_counted} / {r.refusals_logged}"
            f" | {r.own_side_mentions or 'no'} | {'yes' if r.crashes else 'no'} |"
        )
    return lines


def crash_details(loss: Sequence[LossResult], skew: Sequence[SkewResult]) -> list[str]:
    lines = []
    for r in loss:
        lines += [f"{r.percent:g} % loss: {c}" for c in r.crashes]
    for s in skew:
        lines += [f"clock {offset_label(s.offset_s)}: {c}" for c in s.crashes]
    return lines


__all__ = ["crash_details", "loss_table", "skew_table"]
