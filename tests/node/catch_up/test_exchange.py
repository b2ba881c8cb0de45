"""One catch-up exchange between two hosts (in memory) with real stores: the asker gets
exactly what it lacks of the server's recent public envelopes, and neither side is
hurt by a peer that breaks the protocol."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import msgpack

from keys import TOPIC_ACTIONS, Identity, Verified, seal, verify
from node.catch_up.service import OFFER_WINDOW_MS, Absorbed, CatchUp
from node.catch_up.wire import MAX_ENVELOPES, PROTO_CATCH_UP
from node.clock import now_ms
from node.events import EventLog
from node.storage.store import Store
from node.testing.memory_host import MemoryHost, MemoryNetwork
from node.testing.memory_stream import MemoryStream
from node.wire.frames import END_OF_MESSAGE, frame


def action(author: Identity, seq: int, text: str) -> Verified:
    raw = seal(
        author,
        kind="action",
        channel=TOPIC_ACTIONS,
        seq=seq,
        ts_ms=now_ms(),
        body={"type": "speak", "text": text},
    )
    return verify(raw, channel=TOPIC_ACTIONS, now_ms=now_ms())


@dataclass
class Side:
    identity: Identity
    host: MemoryHost
    store: Store
    catch_up: CatchUp
    events: io.StringIO


@asynccontextmanager
async def side(network: MemoryNetwork, tmp_path: Path, name: str) -> AsyncIterator[Side]:
    identity = Identity.generate()
    store = Store(tmp_path / f"{name}.db")
    out = io.StringIO()

    async def accept(envelopes: Sequence[tuple[str, bytes]], relay: str) -> Absorbed:
        verified = [verify(raw, channel=channel, now_ms=now_ms()) for channel, raw in envelopes]
        cursors = await store.record_received(verified, [], now_ms())
        stored = sum(cursor is not None for cursor in cursors)
        return Absorbed(stored=stored, duplicates=len(verified) - stored)

    try:
        async with network.open_host(identity) as host:
            catch_up = CatchUp(host, store, identity.peer_id, accept, EventLog("json", out))
            host.set_stream_handler(PROTO_CATCH_UP, catch_up.serve)
            yield Side(identity, host, store, catch_up, out)
    finally:
        store.close()


@asynccontextmanager
async def connected_pair(tmp_path: Path) -> AsyncIterator[tuple[Side, Side]]:
    """Ann serves, Ben asks; Ben has dialled Ann."""
    network = MemoryNetwork()
    async with side(network, tmp_path, "ann") as ann, side(network, tmp_path, "ben") as ben:
        await ben.host.dial(f"{ann.host.listen_addrs()[0]}/p2p/{ann.host.peer_id}")
        yield ann, ben


async def held_by(store: Store) -> list[tuple[bytes, int]]:
    return [(e.sender, e.seq) for e in await store.newest_held(kinds=("action",), limit=10_000)]


async def test_the_asker_gets_what_it_lacks_of_the_last_minutes_oldest_first(
    tmp_path: Path,
) -> None:
    cat = Identity.generate()
    async with connected_pair(tmp_path) as (ann, ben):
        now = now_ms()
        old = action(cat, 1, "said long ago")
        await ann.store.record_received([old], [], now - OFFER_WINDOW_MS - 1000)
        both_have = action(cat, 2, "both heard this")
        await ann.store.record_received([both_have], [], now)
        await ben.store.record_received([both_have], [], now)
        ben_own = action(ben.identity, 1, "ben said this himself")
        await ann.store.record_received([ben_own], [], now)
        lost = [action(cat, 3, "lost on the way to ben")]
        await ann.store.record_received(lost, [], now)
        for seq in (1, 2):
            lost.append(action(ann.identity, seq, f"ann's line {seq}"))
            await ann.store.record_sent(lost[-1], now)

        absorbed = await ben.catch_up.ask(ann.host.peer_id)

        assert absorbed == Absorbed(stored=3)
        got = (await held_by(ben.store))[:3]
        assert got == [(e.sender, e.seq) for e in reversed(lost)], "oldest first, nothing else"
        assert (ann.catch_up.counters.served, ben.catch_up.counters.stored) == (3, 3)
        assert '"event": "caught_up"' in ben.events.getvalue()
        # A second exchange finds nothing more to send.
        assert await ben.catch_up.ask(ann.host.peer_id) == Absorbed()
        assert ann.catch_up.counters.served == 3


async def test_an_answer_holds_at_most_its_cap_and_the_next_exchange_brings_the_rest(
    tmp_path: Path,
) -> None:
    cat = Identity.generate()
    async with connected_pair(tmp_path) as (ann, ben):
        count = MAX_ENVELOPES + 20
        await ann.store.record_received(
            [action(cat, seq, f"line {seq}") for seq in range(count)], [], now_ms()
        )
        assert await ben.catch_up.ask(ann.host.peer_id) == Absorbed(stored=MAX_ENVELOPES)
        assert await ben.catch_up.ask(ann.host.peer_id) == Absorbed(stored=20)
        assert sorted(seq for _, seq in await held_by(ben.store)) == list(range(count))


async def test_a_malformed_request_is_refused_and_the_server_keeps_serving(
    tmp_path: Path,
) -> None:
    async with connected_pair(tmp_path) as (ann, ben):
        await ann.store.record_sent(action(ann.identity, 1, "hello"), now_ms())
        stream = await ben.host.open_stream(ann.host.peer_id, PROTO_CATCH_UP, timeout=5)
        await stream.send_all(frame(msgpack.packb({"v": 1, "held": "everything"})))
        assert await stream.receive_some() == b"", "the server gives up without answering"
        await stream.aclose()
        assert ann.catch_up.counters.failed == 1
        assert "held is a list" in (ann.catch_up.counters.last_error or "")
        assert await ben.catch_up.ask(ann.host.peer_id) == Absorbed(stored=1)


async def test_an_answer_on_a_channel_catch_up_does_not_carry_fails_the_exchange(
    tmp_path: Path,
) -> None:
    network = MemoryNetwork()
    async with (
        side(network, tmp_path, "ben") as ben,
        network.open_host(Identity.generate()) as rogue,
    ):
        rogue.set_stream_handler(PROTO_CATCH_UP, answer_on_the_visit_channel)
        await ben.host.dial(f"{rogue.listen_addrs()[0]}/p2p/{rogue.peer_id}")
        assert await ben.catch_up.ask(rogue.peer_id) is None
        assert ben.catch_up.counters.failed == 1
        assert "does not carry" in (ben.catch_up.counters.last_error or "")
        assert await held_by(ben.store) == []


async def answer_on_the_visit_channel(stream: MemoryStream) -> None:
    await stream.receive_some()
    answer = msgpack.packb(["/roomverse/visit/1.0.0", b"x"])
    await stream.send_all(frame(answer) + END_OF_MESSAGE)
