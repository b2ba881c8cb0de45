"""A clean start reports no healthy peer as unresponsive (issue 18).

Five nodes in five namespaces start together, each knowing every other's address (keys
made beforehand, fixed ports) and mDNS on, so most pairs dial each other at the same
moment and briefly hold two connections. Before the fix, the quieter twin was closed
~3 s later as if its data had gone unacknowledged, and ``peer_unresponsive
reason=tcp_unacknowledged`` fired on peers that were fine.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from tests.support.netns import LanParty, netns_skip_reason
from tests.support.procs import POLL_INTERVAL_S, NodeProcess, run_cli, write_character
from tests.support.waiting import wait_until

pytestmark = pytest.mark.netns

NAMES = ["Ame", "Bun", "Cho", "Dai", "Eri"]
PORT = 4101
HEARTBEAT_S = 2.0
RENEWALS_AFTER = 4
"""Renewals each node makes once everyone is connected: 8 s, past the 3 s after which
the liveness check closed a quiet twin, and twice its 1 s period over again."""


def test_five_nodes_start_with_no_peer_unresponsive(tmp_path: Path) -> None:
    if reason := netns_skip_reason():
        pytest.skip(reason)
    with LanParty(len(NAMES)) as lan:
        data = [tmp_path / f"data-{name.lower()}" for name in NAMES]
        ids = [peer_id_of(directory) for directory in data]
        addrs = [
            f"/ip4/{host.addr}/tcp/{PORT}/p2p/{pid}"
            for host, pid in zip(lan.hosts, ids, strict=True)
        ]
        nodes: list[NodeProcess] = []
        try:
            for i, (name, host) in enumerate(zip(NAMES, lan.hosts, strict=True)):
                nodes.append(
                    NodeProcess(
                        write_character(tmp_path, name),
                        data[i],
                        listen=(f"/ip4/{host.addr}/tcp/{PORT}",),
                        bootstrap=[a for j, a in enumerate(addrs) if j != i],
                        mdns=True,
                        prefix=host.exec_prefix,
                        extra=["--no-greet", "--heartbeat", str(HEARTBEAT_S), "--lease", "6"],
                    )
                )
            for node in nodes:
                node.wait_ready()
            everyone = set(ids)
            for node in nodes:
                node.wait_directory(
                    lambda seen: all(seen.get(p) == "online" for p in everyone),
                    30,
                    "everyone online",
                )
                node.wait_topic_peers(sorted(everyone - {node.peer_id}), timeout=30)
            clocks = [own_clock(node) for node in nodes]
            for node, since in zip(nodes, clocks, strict=True):
                wait_until(
                    functools.partial(renewed, node, since + RENEWALS_AFTER * HEARTBEAT_S * 1000),
                    RENEWALS_AFTER * HEARTBEAT_S + 20,
                    f"{node.name}: {RENEWALS_AFTER} more renewals",
                    poll=POLL_INTERVAL_S,
                )
            twins = {node.name: len(node.of("peer_connected")) - 4 for node in nodes}
            print(f"connections beyond one per peer, per node: {twins}")
            for node in nodes:
                assert node.of("peer_unresponsive") == [], (node.name, node.of("peer_unresponsive"))
                assert node.of("peer_disconnected") == [], node.name
                assert node.of("rejected") == [], node.name
        finally:
            for node in nodes:
                node.stop()


def peer_id_of(data_dir: Path) -> str:
    """Make the node's key now, so that every node can be told every address at start."""
    run_cli("keys", "generate", "--data-dir", str(data_dir))
    shown = run_cli("keys", "show", "--data-dir", str(data_dir))
    return next(line.split(": ", 1)[1] for line in shown.splitlines() if line.startswith("peer_id"))


def renewed(node: NodeProcess, after_ms: float) -> bool:
    return own_clock(node) >= after_ms


def own_clock(node: NodeProcess) -> int:
    """The node's last renewal of its own entry, on its own clock (ms)."""
    reply: dict[str, Any] = node.directory()
    return int(reply["own_clock"][0])
