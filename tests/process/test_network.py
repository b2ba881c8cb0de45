"""Real nodes, separate processes started with the real CLI, on loopback."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack

from node.control.socket import control_request
from node.errors import ControlError
from tests.support.line_reader import Event
from tests.support.procs import NodeProcess, start_character
from tests.support.waiting import wait_until


def speeches(node: NodeProcess) -> list[tuple[str, str]]:
    return [
        (e["from"], e["body"]["text"])
        for e in node.of("action_received")
        if e["body"].get("type") == "speak"
    ]


def test_three_nodes_each_see_every_action_exactly_once(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    a = start_character(tmp_path, nodes, "Ann")
    b = start_character(tmp_path, nodes, "Ben", bootstrap=a.addrs)
    c = start_character(tmp_path, nodes, "Cat", bootstrap=a.addrs)
    everyone = [a, b, c]
    # Each node greets its neighbours; wait for greetings so the mesh is known to work.
    for node in everyone:
        node.wait_for(
            lambda e: e.get("event") == "action_received" and e["body"].get("name") == "wave",
            20,
            "a wave",
        )
    sent: list[tuple[str, str]] = []
    for round_ in range(3):
        for node in everyone:
            text = f"round {round_} from {node.data_dir.name}"
            node.act("speak", text)
            sent.append((node.peer_id, text))
    wait_all_heard(everyone, sent, "all speech")
    # Give stragglers (duplicates) the same chance to show up as the real messages had.
    for node in everyone:
        marker = f"marker from {node.data_dir.name}"
        node.act("speak", marker)
        sent.append((node.peer_id, marker))
    wait_all_heard(everyone, sent, "markers")
    for node in everyone:
        expected = Counter(s for s in sent if s[0] != node.peer_id)
        assert Counter(speeches(node)) == expected, "every action exactly once"
        ids = [(e["from"], e["seq"]) for e in node.of("action_received")]
        assert len(ids) == len(set(ids)), "no envelope delivered twice"
        assert not node.of("rejected")
        assert not node.of("dropped")


def wait_all_heard(everyone: list[NodeProcess], sent: list[tuple[str, str]], what: str) -> None:
    """Each node has heard (at least) everything the others said."""
    for node in everyone:
        expected = Counter(s for s in sent if s[0] != node.peer_id)

        def heard_all(
            events: list[Event],
            node: NodeProcess = node,
            expected: Counter[tuple[str, str]] = expected,
        ) -> bool:
            return Counter(speeches(node)) >= expected

        node.wait_until(heard_all, 20, what)


def publish_many(node: NodeProcess, texts: list[str]) -> None:
    """Fire publishes at the node's control socket from 16 threads at once."""

    def one(text: str) -> None:
        control_request(
            node.data_dir,
            {"cmd": "publish", "kind": "action", "body": {"type": "speak", "text": text}},
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, texts))


def test_burst_across_a_four_node_line_loses_nothing(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    a = start_character(tmp_path, nodes, "A1", extra=["--no-greet"])
    b = start_character(tmp_path, nodes, "B2", bootstrap=a.addrs, extra=["--no-greet"])
    c = start_character(tmp_path, nodes, "C3", bootstrap=b.addrs, extra=["--no-greet"])
    d = start_character(tmp_path, nodes, "D4", bootstrap=c.addrs, extra=["--no-greet"])
    line = [a, b, c, d]
    for left, right in itertools.pairwise(line):
        right.wait_topic_peers([left.peer_id])
        left.wait_topic_peers([right.peer_id])
    # Wait until the line is fully joined: a probe from each end reaches the other end.
    a.act("speak", "probe-a")
    d.act("speak", "probe-d")
    d.wait_for(lambda e: e.get("body", {}).get("text") == "probe-a", 30, "probe from A")
    a.wait_for(lambda e: e.get("body", {}).get("text") == "probe-d", 30, "probe from D")

    count = 200
    texts = {end.peer_id: [f"{end.data_dir.name}-{i}" for i in range(count)] for end in (a, d)}
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda end: publish_many(end, texts[end.peer_id]), (a, d)))

    for node in line:
        for end in (a, d):
            if end is node:
                continue
            want = set(texts[end.peer_id])

            def heard_all(
                events: list[Event],
                node: NodeProcess = node,
                end: NodeProcess = end,
                want: set[str] = want,
            ) -> bool:
                return want <= {t for f, t in speeches(node) if f == end.peer_id}

            node.wait_until(
                heard_all, 60, f"{count} actions from {end.data_dir.name} at {node.data_dir.name}"
            )
            got = [t for f, t in speeches(node) if f == end.peer_id]
            assert len(got) == count + 1  # + the probe, each exactly once
        assert not node.of("dropped")


def test_kill_9_then_restart_keeps_identity_sequence_and_database(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    """``kill -9`` mid-traffic, then a restart: same PeerID, sequence numbers never go
    backwards, the database passes ``PRAGMA integrity_check``, and every publish the node
    acknowledged (``publish`` answered with its ``seq``) is in its store.

    Defect guarded against: a node that answers a publish before the envelope is durably
    stored (or never stores it), so a crash loses actions it had confirmed."""
    a = start_character(tmp_path, nodes, "Steady", extra=["--no-greet"])
    victim = start_character(tmp_path, nodes, "Victim", bootstrap=a.addrs, extra=["--no-greet"])
    victim.wait_topic_peers([a.peer_id])
    victim.act("speak", "first")
    a.wait_for(lambda e: e.get("body", {}).get("text") == "first", 20, "first speech")
    peer_id = victim.peer_id

    # Mid-traffic: publishes in flight from both sides when the victim dies.
    with ThreadPoolExecutor(2) as pool:
        future = pool.submit(lambda: publish_many_tolerant(victim, 300))
        pool.submit(lambda: publish_many(a, [f"to-victim-{i}" for i in range(100)]))
        victim.wait_until(lambda events: len(events) > 40, 30, "traffic")
        victim.kill()
        acknowledged = future.result()
    assert acknowledged, "the victim acknowledged no publish before it was killed"

    before = max(e["seq"] for e in a.of("action_received") if e["from"] == peer_id)
    nodes.remove(victim)
    db = victim.data_dir / "character.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    again = start_character(tmp_path, nodes, "Victim", bootstrap=a.addrs, extra=["--no-greet"])
    assert again.peer_id == peer_id
    again.wait_topic_peers([a.peer_id])
    again.act("speak", "after restart")
    after = a.wait_for(
        lambda e: e.get("body", {}).get("text") == "after restart", 30, "speech after restart"
    )
    assert after["seq"] > before, "sequence numbers never go backwards"
    assert not a.of("rejected"), "a restarted node is not mistaken for a replayer"
    again.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = sent_speech(conn)
    missing = {seq: text for seq, text in acknowledged.items() if stored.get(seq) != text}
    assert not missing, (
        f"{len(missing)} of {len(acknowledged)} acknowledged publishes are not in the store "
        f"after the restart: {sorted(missing.items())[:5]}"
    )


def publish_many_tolerant(node: NodeProcess, count: int) -> dict[int, str]:
    """Publish until the node dies; returns what it acknowledged: seq → text."""
    acknowledged: dict[int, str] = {}
    for i in range(count):
        text = f"v{i}"
        try:
            reply = control_request(
                node.data_dir,
                {"cmd": "publish", "kind": "action", "body": {"type": "speak", "text": text}},
            )
        except ControlError:  # the node is gone (killed): nothing more is acknowledged
            break
        acknowledged[int(reply["seq"])] = text
    return acknowledged


def sent_speech(conn: sqlite3.Connection) -> dict[int, str]:
    """seq → text of every ``speak`` action the node stored as sent."""
    rows = conn.execute(
        "SELECT seq, body FROM envelopes WHERE direction = 'out' AND kind = 'action'"
    )
    bodies = {int(seq): msgpack.unpackb(body, raw=False) for seq, body in rows}
    return {seq: body["text"] for seq, body in bodies.items() if body.get("type") == "speak"}


GOSSIP_HISTORY_S = 5.0
"""py-libp2p's gossipsub keeps a message 5 heartbeats (1 s each) and offers it (IHAVE) to
peers that join meanwhile: a line older than that reaches a newcomer only by catch-up."""


def test_a_late_joiner_catches_up_on_the_last_minutes_once_even_from_a_gone_author(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    """CatchUp (``/roomverse/catchup/1.0.0``): lines gossip can no longer bring arrive
    once a peer that holds them is connected, each once, verified like gossip (here Ann's
    lines come from Ben: the relay is not the author), and are marked as caught up."""
    a = start_character(tmp_path, nodes, "Ann", extra=["--no-greet"])
    b = start_character(tmp_path, nodes, "Ben", bootstrap=a.addrs, extra=["--no-greet"])
    a.wait_topic_peers([b.peer_id])
    sent = [
        (a.peer_id, "Ann's first line"),
        (a.peer_id, "Ann's second line"),
        (b.peer_id, "Ben's line"),
    ]
    for author, text in sent:
        (a if author == a.peer_id else b).act("speak", text)
    said_at = time.monotonic()
    wait_all_heard([a, b], sent, "the lines said before Cat came")
    assert a.stop() == 0
    wait_until(
        lambda: time.monotonic() - said_at > GOSSIP_HISTORY_S + 1,
        GOSSIP_HISTORY_S + 2,
        "the lines to be older than gossip's history",
    )

    c = start_character(tmp_path, nodes, "Cat", bootstrap=b.addrs, extra=["--no-greet"])
    wait_all_heard([c], sent, "the lines said before Cat came, at Cat")
    c.act("speak", "Cat is here")
    sent.append((c.peer_id, "Cat is here"))
    wait_all_heard([b, c], sent, "Cat's line")

    caught_up = [e for e in c.of("action_received") if e.get("via") == "catch_up"]
    assert sorted(e["body"]["text"] for e in caught_up) == sorted(t for _, t in sent[:3])
    for node in (b, c):
        assert Counter(speeches(node)) == Counter(s for s in sent if s[0] != node.peer_id)
        assert not node.of("rejected")
    assert c.status()["catch_up"]["stored"] == 3
