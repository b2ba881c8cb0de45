"""Real nodes in network namespaces, for directory tests and the directory benchmark.

:class:`DirectoryParty` starts one ``roomverse node`` per :class:`~tests.support.netns.LanParty`
host, mDNS off: every node bootstraps to the first one and finds the others through the
directory itself. It can cut the LAN in two with iptables and heal it, and it reads
every node's directory at (nearly) the same moment, to tell when they agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keys import TOPIC_DIRECTORY
from tests.support.faketime import faketime_prefix
from tests.support.netns import LanParty, Netns, iptables
from tests.support.procs import POLL_INTERVAL_S, NodeProcess, write_character
from tests.support.waiting import wait_until

TROUBLE_EVENTS = (
    "peer_unresponsive",
    "peer_disconnected",
    "dial_failed",
    "dropped",
    "directory_publish_failed",
    "rejected",
)


@dataclass(frozen=True, slots=True)
class Timing:
    heartbeat_s: float = 2.0
    lease_s: float = 6.0
    sync_interval_s: float = 1.0

    def flags(self) -> list[str]:
        return [
            "--heartbeat",
            str(self.heartbeat_s),
            "--lease",
            str(self.lease_s),
            "--sync-interval",
            str(self.sync_interval_s),
        ]


class DirectoryParty:
    """One node per LAN host; use inside ``with LanParty(n) as lan``."""

    def __init__(self, lan: LanParty, tmp_path: Path, timing: Timing) -> None:
        self.lan = lan
        self.tmp_path = tmp_path
        self.timing = timing
        self.nodes: list[NodeProcess] = []
        self._pool = ThreadPoolExecutor(max_workers=lan.n)

    def start(
        self,
        host: Netns,
        name: str,
        bootstrap: Sequence[str] = (),
        *,
        clock_offset_s: int = 0,
    ) -> NodeProcess:
        """Start a node on ``host``; ``clock_offset_s`` runs it with its wall clock that
        many seconds off (a PC without network time; :mod:`tests.support.faketime`)."""
        node = NodeProcess(
            write_character(self.tmp_path, name),
            self.tmp_path / f"data-{name.lower()}",
            listen=(f"/ip4/{host.addr}/tcp/0",),
            bootstrap=bootstrap,
            prefix=[*host.exec_prefix, *faketime_prefix(clock_offset_s)],
            extra=["--no-greet", *self.timing.flags()],
        )
        self.nodes.append(node)
        return node

    def start_all(self, hosts: Sequence[Netns]) -> list[NodeProcess]:
        """Start a node on each host (the first is everyone's bootstrap); wait until ready."""
        first = self.start(hosts[0], "N0")
        first.wait_ready()
        rest = [self.start(host, f"N{i}", first.addrs) for i, host in enumerate(hosts[1:], start=1)]
        for node in rest:
            node.wait_ready()
        return [first, *rest]

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        self._pool.shutdown()

    # -- reading everyone at once -------------------------------------------------------

    def read(self, nodes: Sequence[NodeProcess]) -> list[dict[str, Any]]:
        """Every node's ``directory`` reply, asked in parallel (one snapshot in time)."""
        return list(self._pool.map(lambda node: node.directory(), nodes))

    def wait_agreement(
        self,
        nodes: Sequence[NodeProcess],
        timeout: float,
        also: Callable[[list[dict[str, Any]]], bool] = lambda replies: True,
    ) -> tuple[float, list[dict[str, Any]]]:
        """Poll until every node reports the same digest (and ``also`` holds); return the
        seconds it took and the agreeing replies. AssertionError with the last view."""
        start = time.monotonic()
        replies: list[dict[str, Any]] = []

        def agreed() -> bool:
            nonlocal replies
            replies = self.read(nodes)
            return len({r["digest"] for r in replies}) == 1 and also(replies)

        wait_until(
            agreed,
            timeout,
            "every node to report the same digest",
            poll=POLL_INTERVAL_S,
            detail=lambda: self.diagnosis(nodes, replies),
        )
        return time.monotonic() - start, replies

    def diagnosis(self, nodes: Sequence[NodeProcess], replies: list[dict[str, Any]]) -> str:
        """Who lags behind whom: a row per node, how many seconds older its copy of each
        node's entry is than that node's own; then each node's connection count."""
        own = {
            row["peer_id"]: row["last_seen_ms"]
            for reply in replies
            for row in reply["entries"]
            if row["self"]
        }
        lines = [
            "lag (s), row = reader, column = entry of node i;"
            " then connected/directory-topic/mesh peers, digest, trouble events"
        ]
        for i, (node, reply) in enumerate(zip(nodes, replies, strict=True)):
            seen = {row["peer_id"]: row for row in reply["entries"]}
            lags = " ".join(
                f"{(own[p] - seen[p]['last_seen_ms']) / 1000:4.0f}" if p in seen else "   -"
                for p in own
            )
            status = self._pool.submit(node.control, {"cmd": "status"}).result()
            peers = (
                f"{len(status['peers'])}/{len(status['topic_peers'][TOPIC_DIRECTORY])}"
                f"/{len(status['mesh_peers'][TOPIC_DIRECTORY])}"
            )
            trouble = {name: len(node.of(name)) for name in TROUBLE_EVENTS if node.of(name)}
            queues = sorted(status["outgoing_queues"].values(), reverse=True)
            lines.append(f"{i:2} {lags} | {peers} {reply['digest'][:8]} q={queues} {trouble}")
        return "\n".join(lines)

    # -- partitions -----------------------------------------------------------------------

    def partition(self, left: Sequence[Netns], right: Sequence[Netns]) -> None:
        """Drop every packet between the two sides (both directions, on both sides)."""
        for side, other in ((left, right), (right, left)):
            for host in side:
                for peer in other:
                    assert peer.addr is not None
                    iptables(host, "-A", "INPUT", "-s", peer.addr, "-j", "DROP")
                    iptables(host, "-A", "OUTPUT", "-d", peer.addr, "-j", "DROP")

    def heal(self, hosts: Sequence[Netns]) -> None:
        for host in hosts:
            iptables(host, "-F", "INPUT")
            iptables(host, "-F", "OUTPUT")


PRESENT = ("online", "away", "asleep")


def everyone_sees(peer_ids: set[str], *statuses: str) -> Callable[[list[dict[str, Any]]], bool]:
    """``also`` for :meth:`DirectoryParty.wait_agreement`: every reply shows each peer
    with one of ``statuses`` (default: online)."""
    wanted = statuses or ("online",)

    def check(replies: list[dict[str, Any]]) -> bool:
        for reply in replies:
            seen = {row["peer_id"]: row["status"] for row in reply["entries"]}
            if any(seen.get(peer) not in wanted for peer in peer_ids):
                return False
        return True

    return check
