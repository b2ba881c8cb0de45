"""A LAN party: 4 nodes in 4 network namespaces on one bridge, mDNS only, no bootstrap."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.line_reader import Event
from tests.support.netns import LanParty, list_namespaces, netns_skip_reason
from tests.support.procs import NodeProcess, write_character

pytestmark = pytest.mark.netns

PARTY_DEADLINE_S = 15.0
"""The issue's bound: from the last node being ready to every action seen everywhere."""


def test_four_nodes_find_each_other_by_mdns_and_exchange_actions(tmp_path: Path) -> None:
    if reason := netns_skip_reason():
        pytest.skip(reason)
    names = ["Ayu", "Bo", "Cyd", "Dee"]
    nodes: list[NodeProcess] = []
    with LanParty(len(names)) as lan:
        party = lan.namespaces[0].name.rsplit("-", 1)[0]
        try:
            for name, host in zip(names, lan.hosts, strict=True):
                nodes.append(
                    NodeProcess(
                        write_character(tmp_path, name),
                        tmp_path / f"data-{name.lower()}",
                        listen=("/ip4/0.0.0.0/tcp/0",),
                        mdns=True,
                        prefix=host.exec_prefix,
                        extra=["--no-greet"],
                    )
                )
            for node in nodes:
                node.wait_ready()
            deadline = time.monotonic() + PARTY_DEADLINE_S
            ids = {node.peer_id for node in nodes}

            for node, host in zip(nodes, lan.hosts, strict=True):
                # Advertised addresses are the namespace's real address, never 0.0.0.0.
                assert node.addrs and all(f"/ip4/{host.addr}/" in a for a in node.addrs)
                others = ids - {node.peer_id}

                def discovered_all(events: list[Event], others: set[str] = others) -> bool:
                    return others <= {
                        e["peer_id"] for e in events if e.get("event") == "peer_discovered"
                    }

                node.wait_until(
                    discovered_all,
                    max(0.1, deadline - time.monotonic()),
                    "discovery of all three others",
                )
            for node in nodes:
                node.wait_topic_peers(
                    sorted(ids - {node.peer_id}), timeout=max(0.1, deadline - time.monotonic())
                )
            for node in nodes:
                node.act("speak", f"hello from {node.peer_id}")
            for node in nodes:
                expected = {(p, f"hello from {p}") for p in ids - {node.peer_id}}

                def heard_all(
                    events: list[Event], expected: set[tuple[str, str]] = expected
                ) -> bool:
                    return expected <= {
                        (e["from"], e["body"].get("text"))
                        for e in events
                        if e.get("event") == "action_received"
                    }

                node.wait_until(
                    heard_all,
                    max(0.1, deadline - time.monotonic()),
                    "speech from every other node",
                )
            for node in nodes:
                discovered = [e for e in node.of("peer_discovered") if e["peer_id"] in ids]
                assert {e["via"] for e in discovered} == {"mdns"}
                assert not node.of("rejected")
        finally:
            for node in nodes:
                node.stop()
    assert not [ns for ns in list_namespaces() if ns.startswith(party)]
