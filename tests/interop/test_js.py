"""Interop: a real js-libp2p 2.x peer joins the LAN party next to two RoomVerse nodes.

Three hosts on one bridge (``tests/netns.py``): nodes A and B (the real ``roomverse node``
CLI, mDNS on, no bootstrap) and the js-libp2p peer (``tests/interop/js/peer.mjs``, mDNS
on, subscribed to ``roomverse/1/actions`` and ``roomverse/1/contexts``). Nobody is told
anyone's address: everything below starts from multicast DNS.

1. A and B each discover the js peer by mDNS and connect to it; the js peer discovers
   A and B.
2. A speaks; the js peer receives a gossipsub message from A on the actions topic whose
   data is an envelope that ``keys.verify`` accepts, with A as its sender.
3. The js peer publishes bytes that are not an envelope; A and B both refuse them with a
   ``rejected`` event (reason ``malformed``, the js peer's id) and keep running: A
   speaks again and B receives it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest

from keys import TOPIC_ACTIONS, EnvelopeError, peer_id_from_str, verify
from node.clock import now_ms
from tests.support.jspeer import JsPeer, ensure_js_deps, js_skip_reason
from tests.support.line_reader import Event
from tests.support.netns import LanParty, netns_skip_reason
from tests.support.procs import NodeProcess, write_character

pytestmark = [pytest.mark.interop, pytest.mark.netns, pytest.mark.timeout(120)]

START_S = 30.0
"""A node or the js peer printing ``ready`` (python and node imports dominate)."""
DISCOVERY_S = 20.0
"""mDNS rounds are 1 s (js) and 2 s (ours); a few lost packets still fit."""
STEP_S = 15.0
"""One message across the party, or one subscription announced."""

NOT_AN_ENVELOPE = b"hi from js"


def start_node(stack: ExitStack, tmp_path: Path, name: str, prefix: list[str]) -> NodeProcess:
    character = write_character(tmp_path, name)
    node = NodeProcess(
        character,
        tmp_path / f"data-{name.lower()}",
        listen=("/ip4/0.0.0.0/tcp/0",),
        mdns=True,
        prefix=prefix,
    )
    stack.callback(node.stop)
    node.wait_ready(START_S)
    return node


def is_event(name: str, **fields: object) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        return event.get("event") == name and all(event.get(k) == v for k, v in fields.items())

    return match


def is_speech_from(sender: str, text: str) -> Callable[[Event], bool]:
    """A js ``message`` event carrying A's ``speak`` action (greetings and others skip)."""

    def match(event: Event) -> bool:
        if event.get("event") != "message" or event.get("topic") != TOPIC_ACTIONS:
            return False
        try:
            envelope = verify(
                base64.b64decode(event["data_b64"]),
                channel=TOPIC_ACTIONS,
                now_ms=now_ms(),
                transport_peer=peer_id_from_str(sender),
            )
        except (EnvelopeError, ValueError, KeyError):  # not A's envelope (e.g. js's own)
            return False
        return dict(envelope.body) == {"type": "speak", "text": text}

    return match


def test_js_libp2p_peer_joins_the_lan_party(tmp_path: Path) -> None:
    if reason := netns_skip_reason():
        pytest.skip(reason)
    js_dir = ensure_js_deps()
    if js_dir is None:
        pytest.skip(js_skip_reason())

    with ExitStack() as stack:
        lan = stack.enter_context(LanParty(3))
        host_a, host_b, host_js = lan.hosts
        js = stack.enter_context(
            JsPeer(js_dir, mdns=True, prefix=host_js.exec_prefix, ready_timeout=START_S)
        )
        a = start_node(stack, tmp_path, "Ann", host_a.exec_prefix)
        b = start_node(stack, tmp_path, "Ben", host_b.exec_prefix)
        ours = {a.peer_id: a, b.peer_id: b}
        assert js.peer_id not in ours

        # 1. discovery by mDNS, both ways, and connections
        for node in (a, b):
            found = node.wait_for(
                is_event("peer_discovered", peer_id=js.peer_id),
                DISCOVERY_S,
                "peer_discovered for the js peer",
            )
            assert found["via"] == "mdns", found
            assert any(addr.startswith(f"/ip4/{host_js.addr}/tcp/") for addr in found["addrs"])
            node.wait_for(
                is_event("peer_connected", peer_id=js.peer_id),
                STEP_S,
                "peer_connected to the js peer",
            )
        for peer_id, node in ours.items():
            found = js.wait_for(is_event("peer_discovered", peer_id=peer_id), DISCOVERY_S)
            own_host = host_a if node is a else host_b
            assert any(addr.startswith(f"/ip4/{own_host.addr}/tcp/") for addr in found["addrs"])

        # 2. our signed action reaches js and verifies there
        # both directions of the subscription exchange: A only publishes to peers it
        # knows listen (py-libp2p grafts them into its mesh when their subscription lands)
        for peer_id, node in ours.items():
            js.wait_for_subscriber(peer_id, TOPIC_ACTIONS, STEP_S)
            node.wait_topic_peers([js.peer_id], STEP_S)
        sent = a.act("speak", "hello js")
        assert sent["recipients"] >= 1, sent
        message = js.wait_for(is_speech_from(a.peer_id, "hello js"), STEP_S)
        envelope = verify(
            base64.b64decode(message["data_b64"]),
            channel=TOPIC_ACTIONS,
            now_ms=now_ms(),
            transport_peer=peer_id_from_str(a.peer_id),
        )
        assert envelope.sender_str == a.peer_id
        assert envelope.kind == "action"
        assert envelope.seq == sent["seq"]
        assert dict(envelope.body) == {"type": "speak", "text": "hello js"}
        assert message["from"] == a.peer_id
        assert message["signature_type"] == "signed"

        # 3. js's non-envelope is refused by both of ours, who keep running
        published = js.publish(TOPIC_ACTIONS, NOT_AN_ENVELOPE)
        assert published["event"] == "published", published
        assert published["recipients"] >= 2, published
        for node in (a, b):
            rejected = node.wait_for(
                is_event("rejected", peer_id=js.peer_id),
                STEP_S,
                "rejected for the js peer's message",
            )
            assert rejected["reason"] == "malformed", rejected
            assert rejected["channel"] == TOPIC_ACTIONS, rejected
            assert rejected["detail"], rejected
            assert not node.received_from(js.peer_id)

        a.act("speak", "still here")
        b.wait_for(
            lambda e: (
                e.get("event") == "action_received"
                and e.get("from") == a.peer_id
                and e.get("body") == {"type": "speak", "text": "still here"}
            ),
            STEP_S,
            "A's speech after the js garbage",
        )
        for node in (a, b):
            assert node.proc.poll() is None, f"{node.name} exited"
            assert node.status()["rejected"].get("malformed", 0) >= 1
