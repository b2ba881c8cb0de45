"""The directory on real nodes (separate CLI processes on loopback).

Heartbeat 1 s, lease 3 s, sync every second, so lease behaviour shows in seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from node.errors import ControlError
from tests.support.procs import NodeProcess, run_cli, start_character

FAST = ("--heartbeat", "1", "--lease", "3", "--sync-interval", "1")
LEASE_S, HEARTBEAT_S = 3.0, 1.0
LEFT_S = 20.0
"""Generous: on a loaded runner the goodbye can take seconds; `left` itself is the proof."""


def all_present(*peers: NodeProcess, status: str = "online") -> Callable[[dict[str, str]], bool]:
    ids = {p.peer_id for p in peers}
    return lambda seen: all(seen.get(pid) == status for pid in ids)


def test_directory_lifecycle_on_three_nodes(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    a = start_character(tmp_path, nodes, "Ann", extra=FAST)
    b = start_character(tmp_path, nodes, "Ben", bootstrap=a.addrs, extra=FAST)
    c = start_character(tmp_path, nodes, "Cat", bootstrap=a.addrs, extra=FAST)
    everyone = (a, b, c)
    for node in everyone:
        node.wait_directory(all_present(*everyone), 20, "everyone online")

    # Ben and Cat only know Ann's address; they find each other through the directory.
    c.wait_for(
        lambda e: e.get("event") == "peer_connected" and e["peer_id"] == b.peer_id,
        20,
        "Cat connected to Ben",
    )
    assert any(
        e["peer_id"] == b.peer_id and e["via"] == "directory" for e in c.of("peer_discovered")
    )

    # A status change reaches everyone, and is logged as a directory_changed event.
    assert json.loads(run_cli("away", "--data-dir", str(b.data_dir)))["status"] == "away"
    for node in (a, c):
        node.wait_directory(all_present(b, status="away"), 10, "Ben away")
        node.wait_for(
            lambda e: (
                e.get("event") == "directory_changed"
                and e["peer_id"] == b.peer_id
                and e["presence"] == "away"
            ),
            5,
            "directory_changed for Ben",
        )

    # The CLI lists, searches and prints JSON.
    table = run_cli("directory", "--data-dir", str(a.data_dir))
    assert "Ben" in table and "away" in table and b.peer_id in table
    found = json.loads(
        run_cli("directory", "--data-dir", str(a.data_dir), "--search", "cat", "--json")
    )
    assert [row["name"] for row in found["entries"]] == ["Cat"]
    assert found["entries"][0]["addrs"][0].endswith(f"/p2p/{c.peer_id}")

    # A clean stop says `left`: only its goodbye can (without it, Cat would read as
    # offline once its lease lapsed, never as left), so the wait need not be tight.
    c.stop()
    for node in (a, b):
        node.wait_directory(all_present(c, status="left"), LEFT_S, "Cat left")

    # kill -9 says nothing: the lease lapses, and Ben reads as offline.
    b.kill()
    waited = a.wait_directory(
        all_present(b, status="offline"), LEASE_S + 2 * HEARTBEAT_S, "Ben offline"
    )
    assert waited <= LEASE_S + 2 * HEARTBEAT_S

    # Ann restarts with nobody around: the last known directory is there at once, and
    # the status her owner chose survives the clean stop (which said `left`).
    run_cli("asleep", "--data-dir", str(a.data_dir))
    a.stop()
    again = NodeProcess(a.character, a.data_dir, extra=FAST)
    nodes.append(again)
    again.wait_ready()
    restored = again.of("directory_restored")
    assert restored and restored[0]["entries"] == 3
    seen = again.presence()
    assert seen[c.peer_id] == "left"
    assert seen[b.peer_id] == "offline"
    assert seen[a.peer_id] == "asleep"


def test_status_commands_refuse_bad_input(tmp_path: Path, nodes: list[NodeProcess]) -> None:
    a = start_character(tmp_path, nodes, "Ann", extra=FAST)
    with pytest.raises(ControlError, match="status must be one of online, away, asleep"):
        a.control({"cmd": "set_status", "status": "left"})
    with pytest.raises(ControlError, match="search"):
        a.control({"cmd": "directory", "search": 5})
    assert a.presence() == {a.peer_id: "online"}
