"""Publish backpressure (``P2PHost.publish`` → ``wait_for_queue_room``, node/_libp2p/host.py).

py-libp2p 0.8.1 gives each peer an outgoing queue of 32 RPCs, fills it without waiting
and drops what does not fit; its ``publish()`` never blocks. Our publish waits while any
peer's queue holds ``PEER_QUEUE_HIGH_WATER`` (16) or more, so a burst to a peer slower
than the publisher arrives whole.

Defect these tests guard against: the wait removed (or never reached), which makes a
burst larger than the queue lose everything past the 32nd message, silently. Both tests
fail without it: a tight burst to a peer on the same trio loop (its sender task cannot
keep up), and a burst to a peer in its own process that is stuck (SIGSTOP) until our
queue to it is at the high-water mark, then resumes.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from node._libp2p import P2PHost, PubsubMessage, open_p2p_host
from node._libp2p.host import PEER_QUEUE_HIGH_WATER
from tests.support.procs import JsonLinesProcess

pytestmark = pytest.mark.timeout(120)

TOPIC = "roomverse-test/backpressure"
LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
QUEUE_CAPACITY = 32
"""py-libp2p 0.8.1's per-peer outgoing queue (``RpcQueue``); past it, messages drop."""
BURST = 10 * QUEUE_CAPACITY
END = BURST
"""The index of the end marker, published after the burst."""
PAYLOAD = 4096
"""Large enough that the burst (1.3 MB) far exceeds what yamux's 256 KiB window lets
through to a peer that does not read."""
CONNECT_S = 20.0
DELIVERY_S = 60.0
START_S = 60.0
POLL_S = 0.01

SUBSCRIBER = """
import json, secrets, sys, trio
from node._libp2p import open_p2p_host

def emit(event, **fields):
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\\n")
    sys.stdout.flush()

async def main(topic):
    async with open_p2p_host(secrets.token_bytes(32), ["/ip4/127.0.0.1/tcp/0"]) as host:
        messages = await host.subscribe(topic)
        emit("ready", peer_id=host.peer_id, addrs=host.listen_addrs())
        async for message in messages:
            emit("received", index=int.from_bytes(message.data[:4], "big"))

trio.run(main, sys.argv[1])
"""
"""A subscriber in its own process: one ``received`` line per message, in order."""


def message(index: int) -> bytes:
    return index.to_bytes(4, "big") + secrets.token_bytes(PAYLOAD - 4)


def index_of(msg: PubsubMessage) -> int:
    return int.from_bytes(msg.data[:4], "big")


async def connect(publisher: P2PHost, peer_id: str, addrs: list[str]) -> None:
    """Dial and wait until the subscriber's subscription has reached the publisher."""
    await publisher.dial(f"{addrs[0]}/p2p/{peer_id}", timeout=CONNECT_S)
    assert await publisher.wait_for_subscriber(TOPIC, peer_id, CONNECT_S), "no subscription"


async def publish_burst(publisher: P2PHost, done: trio.Event) -> None:
    """The burst, then (once every queue is written out) the end marker: the subscriber
    has everything it will ever get from the burst when the marker arrives."""
    try:
        for index in range(BURST):
            await publisher.publish(TOPIC, message(index))
    finally:
        done.set()
    assert await publisher.flush(DELIVERY_S), "the queues never drained"
    await publisher.publish(TOPIC, message(END))


@asynccontextmanager
async def publisher_host() -> AsyncIterator[P2PHost]:
    async with open_p2p_host(secrets.token_bytes(32), LOOPBACK) as host:
        await host.subscribe(TOPIC)
        yield host


async def test_a_burst_to_a_slower_peer_arrives_whole() -> None:
    """A burst of 10× the queue, published in a tight loop, to a peer on the same trio
    loop: without the wait, 32 of 320 arrive."""
    async with (
        publisher_host() as publisher,
        open_p2p_host(secrets.token_bytes(32), LOOPBACK) as slow,
    ):
        inbox = await slow.subscribe(TOPIC)
        await connect(publisher, slow.peer_id, slow.listen_addrs())
        got: list[int] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish_burst, publisher, trio.Event())
            with trio.fail_after(DELIVERY_S):
                while not got or got[-1] != END:
                    got.append(index_of(await inbox.receive()))
    assert got[:-1] == list(range(BURST)), (
        f"{len(got) - 1} of {BURST} arrived; publisher drops: {publisher.drops}"
    )
    assert publisher.drops.publish_timeouts == 0


def received(events: list[dict[str, Any]]) -> list[int]:
    return [e["index"] for e in events if e.get("event") == "received"]


def end_received(events: list[dict[str, Any]]) -> bool:
    return END in received(events)


async def test_a_burst_to_a_stuck_peer_waits_for_it_and_loses_nothing() -> None:
    """The subscriber's process is stopped (SIGSTOP: it reads nothing) while the burst
    starts, and resumed once our queue to it reaches the high-water mark (or, without
    backpressure, once the burst is over): every message must arrive, in order."""
    proc = JsonLinesProcess([sys.executable, "-c", SUBSCRIBER, TOPIC], name="subscriber")
    try:
        ready = await trio.to_thread.run_sync(
            lambda: proc.wait_for(lambda e: e.get("event") == "ready", START_S, "ready")
        )
        peer_id = str(ready["peer_id"])
        async with publisher_host() as publisher:
            await connect(publisher, peer_id, list(ready["addrs"]))
            burst_over = trio.Event()
            held_back = False
            async with trio.open_nursery() as nursery:
                os.kill(proc.proc.pid, signal.SIGSTOP)
                try:
                    nursery.start_soon(publish_burst, publisher, burst_over)
                    # Resume it once the publisher is held back by it (or done).
                    with trio.fail_after(DELIVERY_S):
                        while not burst_over.is_set() and not held_back:
                            queued = publisher.outgoing_queues().get(peer_id, 0)
                            held_back = queued >= PEER_QUEUE_HIGH_WATER
                            await trio.sleep(POLL_S)
                finally:
                    os.kill(proc.proc.pid, signal.SIGCONT)
                await trio.to_thread.run_sync(
                    proc.wait_until, end_received, DELIVERY_S, "the end marker"
                )
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(proc.stop)
    got = received(list(proc.events))
    assert got[:-1] == list(range(BURST)), (
        f"{len(got) - 1} of {BURST} arrived; publisher drops: {publisher.drops}"
    )
    assert held_back, "the stuck subscriber never filled our queue to it"
    assert publisher.drops.publish_timeouts == 0
