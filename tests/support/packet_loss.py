"""Random packet loss on every link of a :class:`~tests.support.netns.LanParty`.

This kernel has no ``netem``; the loss is an iptables rule in each host namespace,
``INPUT -i eth0 -m statistic --mode random --probability P -j DROP``. Every packet on
the LAN enters exactly one host's ``eth0``, so each direction of each link loses ``P`` of
its packets, independently: a TCP segment and its acknowledgement are each lost with
``P``. Loopback (and the nodes' control sockets, which are Unix sockets) are untouched.

The rule is the only one this module adds, and :meth:`RandomLoss.lift` deletes exactly
that rule (nothing else a test put in INPUT, such as a partition, is flushed). Leaving
the ``with`` block lifts it even after a failure; deleting the namespaces, which
:class:`~tests.support.netns.LanParty` does on exit, would remove it in any case.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from tests.support.netns import Netns, NetnsError, iptables


class RandomLoss:
    """``probability`` of the packets arriving at each of ``hosts`` are dropped, while
    applied. Use as ``with RandomLoss(hosts, 0.2) as loss: ...``."""

    def __init__(self, hosts: Sequence[Netns], probability: float) -> None:
        if not 0.0 < probability < 1.0:
            raise ValueError("the loss probability is between 0 and 1, both excluded")
        self.hosts = list(hosts)
        self.probability = probability
        self.applied = False
        self.dropped: dict[str, int] = {}
        """Packets dropped per host namespace, read when the loss was lifted."""

    def _rule(self, host: Netns) -> list[str]:
        iface = host.iface or "eth0"
        return [
            "INPUT",
            "-i",
            iface,
            "-m",
            "statistic",
            "--mode",
            "random",
            "--probability",
            f"{self.probability:g}",
            "-j",
            "DROP",
        ]

    def apply(self) -> None:
        for host in self.hosts:
            iptables(host, "-A", *self._rule(host))
        self.applied = True

    def lift(self) -> None:
        """Read the drop counters, then delete the rule on every host (each host is
        tried, even if another fails; the first failure is raised afterwards)."""
        if not self.applied:
            return
        self.applied = False
        failure: NetnsError | None = None
        for host in self.hosts:
            with contextlib.suppress(NetnsError):
                self.dropped[host.name] = dropped_packets(host)
            try:
                iptables(host, "-D", *self._rule(host))
            except NetnsError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def __enter__(self) -> RandomLoss:
        self.apply()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.lift()


def dropped_packets(host: Netns) -> int:
    """Packets dropped so far by ``statistic`` rules in ``host``'s INPUT chain (evidence
    that the loss was real)."""
    out = iptables(host, "-L", "INPUT", "-v", "-x", "-n").stdout
    total = 0
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "DROP" and "statistic" in line:
            total += int(fields[0])
    return total


__all__ = ["RandomLoss", "dropped_packets"]
