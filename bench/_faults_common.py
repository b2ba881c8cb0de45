"""What the fault scenarios of ``bench/faults.py`` share: timing, presence samples, waits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.directory_party import DirectoryParty, Timing
from tests.support.procs import NodeProcess
from tests.support.waiting import WaitTimeout, wait_until

TIMING = Timing(heartbeat_s=5.0, lease_s=15.0, sync_interval_s=1.0)
"""As the CI tests (partition, packet loss): renewals every 5 s, leases of 15 s."""
SAMPLE_EVERY_S = 1.0
Replies = list[dict[str, Any]]


@dataclass
class PresenceSamples:
    """Every node's directory, read about once a second (all nodes at once)."""

    party: DirectoryParty
    nodes: Sequence[NodeProcess]
    taken: list[tuple[float, dict[str, dict[str, str]]]] = field(default_factory=list)
    """(monotonic time, reader PeerID → {subject PeerID → status})."""
    _last: float = 0.0

    def sample(self) -> None:
        """Take a sample unless one was taken less than a second ago."""
        now = time.monotonic()
        if now - self._last < SAMPLE_EVERY_S:
            return
        self._last = now
        replies = self.party.read(self.nodes)
        view = {
            node.peer_id: {row["peer_id"]: row["status"] for row in reply["entries"]}
            for node, reply in zip(self.nodes, replies, strict=True)
        }
        self.taken.append((now, view))

    def not_online(self) -> tuple[int, int]:
        """(readings of another node as not online, all readings of another node)."""
        bad = total = 0
        ids = [node.peer_id for node in self.nodes]
        for _, view in self.taken:
            for reader, seen in view.items():
                for subject in ids:
                    if subject != reader:
                        total += 1
                        bad += seen.get(subject) != "online"
        return bad, total

    def statuses_of(self, subject: str, readers: Sequence[str]) -> list[list[str]]:
        """Per sample, how each of ``readers`` showed ``subject`` (``absent`` if not at all)."""
        return [[view[r].get(subject, "absent") for r in readers] for _, view in self.taken]


def all_online(replies: Replies, ids: set[str]) -> bool:
    for reply in replies:
        seen = {row["peer_id"]: row["status"] for row in reply["entries"]}
        if any(seen.get(peer) != "online" for peer in ids):
            return False
    return True


def first_times(
    checks: dict[str, Callable[[], bool]], since: float, timeout: float, poll: float = 0.1
) -> dict[str, float | None]:
    """Poll every check until each has held once (or ``timeout`` passes); return, per
    check, the seconds from ``since`` (monotonic) to the first time it held (None: never)."""
    found: dict[str, float | None] = dict.fromkeys(checks)

    def all_found() -> bool:
        for name, check in checks.items():
            if found[name] is None and check():
                found[name] = max(0.0, time.monotonic() - since)
        return all(value is not None for value in found.values())

    with contextlib.suppress(WaitTimeout):  # what held by then is the answer
        wait_until(all_found, timeout, ", ".join(checks), poll=poll)
    return found


__all__ = ["SAMPLE_EVERY_S", "TIMING", "PresenceSamples", "Replies", "all_online", "first_times"]
