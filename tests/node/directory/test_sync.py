"""``/roomverse/sync/1.0.0`` sessions over an in-memory stream pair (no libp2p).

Both sides are real :class:`DirectoryService` replicas with their own SQLite store; the
messages are real signed envelopes in real frames. What the libp2p stream adds (Noise
authentication of the peer) is covered by the node tests.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from keys import PROTO_SYNC, Identity, canonical, seal
from node.clock import now_ms
from node.config import CharacterConfig
from node.directory.replica import DirectoryService, DirectorySettings
from node.directory.sync import SyncResult, run_sync
from node.events import EventLog
from node.storage.store import Store
from node.wire.clock_skew import ClockSkew
from node.wire.frames import END_OF_MESSAGE, ByteStream, frame
from node.wire.rejections import RejectionLog
from registry_crdt import DIRECTORY_BODIES, Clock, Delta, Digest, Status, make_entry, to_bodies
from registry_crdt.testing import identities, sample_card

LEASE_MS = 60_000


class Side:
    def __init__(
        self, identity: Identity, service: DirectoryService, clock_skew: ClockSkew
    ) -> None:
        self.identity = identity
        self.service = service
        self.clock_skew = clock_skew
        self._seq = itertools.count(1)

    async def seal(self, channel: str, body: Mapping[str, Any]) -> bytes:
        return seal(
            self.identity,
            kind="directory",
            channel=channel,
            seq=next(self._seq),
            ts_ms=self.service.clock_ms(),
            body=body,
            bodies=DIRECTORY_BODIES,
        )

    def events(self) -> str:
        stream = self.service.events._stream
        assert isinstance(stream, io.StringIO)
        return stream.getvalue()


@asynccontextmanager
async def open_side(
    tmp_path: Path, name: str, seed: int, *, skew_ms: int = 0
) -> AsyncIterator[Side]:
    """A replica whose wall clock reads ``skew_ms`` ahead of the real one."""
    (identity,) = identities(1, seed=seed)
    store = Store(tmp_path / f"{name}.db")
    events = EventLog("json", io.StringIO())
    clock_skew = ClockSkew(events, wall_ms=lambda: now_ms() + skew_ms)

    async def gossip(bodies: list[dict[str, Any]]) -> None:
        return None

    service = DirectoryService(
        identity,
        CharacterConfig(name=name),
        store,
        events,
        RejectionLog(events, clock_skew=clock_skew),
        settings=DirectorySettings(),
        gossip=gossip,
        public_addrs=lambda: [f"/ip4/127.0.0.1/tcp/4001/p2p/{identity.peer_id_str}"],
        clock_ms=lambda: now_ms() + skew_ms,
    )
    try:
        await service.write_own()
        yield Side(identity, service, clock_skew)
    finally:
        store.close()


def others(count: int, seed: int) -> list[bytes]:
    """Entries of ``count`` other characters, as their wire bytes."""
    now = now_ms()
    entries = []
    for i, identity in enumerate(identities(count, seed=seed)):
        card = sample_card(identity.peer_id_str)
        clock_ms = now - 1000 + i
        entries.append(
            make_entry(
                identity,
                card,
                [],
                Status.ONLINE,
                Clock(clock_ms, 0),
                LEASE_MS,
                now,
            ).raw
        )
    return entries


async def sync_pair(a: Side, b: Side, *, full: bool = False) -> tuple[SyncResult, SyncResult]:
    left, right = trio.testing.memory_stream_pair()
    results: dict[str, SyncResult] = {}

    async def opener() -> None:
        results["open"] = await run_sync(
            "open",
            left,
            b.identity.peer_id_str,
            a.service,
            a.seal,
            full_digest=full,
            clock_skew=a.clock_skew,
        )

    async def server() -> None:
        results["serve"] = await run_sync(
            "serve",
            right,
            a.identity.peer_id_str,
            b.service,
            b.seal,
            clock_skew=b.clock_skew,
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(opener)
        nursery.start_soon(server)
    return results["open"], results["serve"]


@pytest.mark.parametrize("full", [False, True], ids=["summary", "full-digest"])
async def test_sync_makes_two_replicas_identical(tmp_path: Path, full: bool) -> None:
    async with open_side(tmp_path, "a", 1) as a, open_side(tmp_path, "b", 2) as b:
        entries = others(40, seed=3)
        await a.service.absorb(entries[:25], "gossip", b"")
        await b.service.absorb(entries[15:], "gossip", b"")
        opened, served = await sync_pair(a, b, full=full)
        assert opened.failure is None and served.failure is None
        assert a.service.digest() == b.service.digest()
        assert len(a.service.directory) == 42  # 40 others and both sides
        # Each side received exactly what it lacked: the other's own entry and the rest.
        assert opened.entries_received == 1 + 15
        assert served.entries_received == 1 + 15
        assert '"via": "sync"' in a.events() and '"via": "sync"' in b.events()


def events_named(side: Side, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in side.events().splitlines()]
    return [line for line in lines if line["event"] == name]


@pytest.mark.parametrize("who_opens", ["fast", "right"])
async def test_a_node_whose_clock_is_minutes_off_is_told_why_its_syncs_fail(
    tmp_path: Path, who_opens: str
) -> None:
    """Issue 18: a clock 10 minutes ahead gets every envelope refused (stale_timestamp).
    The refusing side says so in a refusal, which the other side reads whatever its
    clock and reports as ``sync_refused``; each side logs the refusal once, not per try."""
    async with (
        open_side(tmp_path, "fast", 1, skew_ms=600_000) as fast,
        open_side(tmp_path, "right", 2) as right,
    ):
        opener, server = (fast, right) if who_opens == "fast" else (right, fast)
        for _ in range(3):
            opened, served = await sync_pair(opener, server)
            assert (opened.failure, served.failure) == ("refused_by_peer", "stale_timestamp")
        (told,) = events_named(opener, "sync_refused")
        assert told["reason"] == "stale_timestamp"
        side = "ahead of" if opener is fast else "behind"
        assert f"your clock is 600 s {side} mine" in told["detail"]
        assert abs(told["offset_s"]) == 600
        (refused,) = events_named(server, "rejected")
        assert refused["reason"] == "stale_timestamp" and abs(refused["ahead_s"]) == 600
        assert server.service.sync.by_reason == {"stale_timestamp": 3}
        assert opener.service.sync.by_reason == {"refused_by_peer": 3}
        # Both judged the clocks from what they received; only one peer each, so each
        # says the other is off, with the right sign.
        assert fast.clock_skew.reading().state == "ahead"
        assert right.clock_skew.reading().state == "behind"
        reading = fast.clock_skew.reading()
        assert reading.offset_s is not None and 599 < reading.offset_s < 602
        assert reading.refused
        # Nothing was taken in either way.
        assert len(fast.service.directory) == len(right.service.directory) == 1


async def test_a_refusal_is_never_answered_with_a_refusal(tmp_path: Path) -> None:
    async with open_side(tmp_path, "a", 1) as a:
        (peer,) = identities(1, seed=9)
        body = {"type": "refusal", "reason": "schema", "detail": "no"}
        result = await rogue_then_serve(a, [frame(envelope(peer, body)), END_OF_MESSAGE], peer)
        assert result.failure == "refused_by_peer"
        assert result.bytes_sent == 0
        (told,) = events_named(a, "sync_refused")
        assert (told["reason"], told["detail"]) == ("schema", "no")


async def test_sync_traffic_grows_with_the_difference_not_the_directory(
    tmp_path: Path,
) -> None:
    async with open_side(tmp_path, "a", 1) as a, open_side(tmp_path, "b", 2) as b:
        await sync_pair(a, b)
        common = others(400, seed=4)
        await a.service.absorb(common, "gossip", b"")
        await b.service.absorb(common, "gossip", b"")
        in_sync, _ = await sync_pair(a, b)
        assert in_sync.messages == 2  # summary, then an empty digest: done
        (extra,) = others(1, seed=5)
        await a.service.absorb([extra], "gossip", b"")
        one_off, _ = await sync_pair(a, b)
        assert a.service.digest() == b.service.digest()
        snapshot = len(a.service.directory.snapshot())
        assert in_sync.bytes_sent + in_sync.bytes_received < snapshot / 50
        assert one_off.bytes_sent + one_off.bytes_received < snapshot / 10


async def rogue_then_serve(side: Side, frames: list[bytes], peer: Identity) -> SyncResult:
    """Feed ``frames`` to a serving side as if ``peer`` sent them; return its result."""
    ours, theirs = trio.testing.memory_stream_pair()
    for data in frames:
        await theirs.send_all(data)
    await theirs.send_eof()  # keeps reading open: the serving side's replies pile up unread
    return await run_sync("serve", ours, peer.peer_id_str, side.service, side.seal)


def envelope(identity: Identity, body: dict[str, Any], channel: str = PROTO_SYNC) -> bytes:
    return seal(
        identity,
        kind="directory",
        channel=channel,
        seq=1,
        ts_ms=now_ms(),
        body=body,
        bodies=DIRECTORY_BODIES,
    )


@pytest.mark.parametrize(
    ("make_frames", "reason"),
    [
        (lambda me, other: [frame(b"\x81\xa1v\x01"), END_OF_MESSAGE], "malformed"),
        (
            lambda me, other: [
                frame(envelope(other, {"type": "delta", "entries": []})),
                END_OF_MESSAGE,
            ],
            "sender_mismatch",
        ),
        (
            lambda me, other: [
                frame(envelope(me, {"type": "delta", "entries": []})),
                END_OF_MESSAGE,
            ],
            "sync_protocol",
        ),
        (
            lambda me, other: [
                frame(envelope(me, {"type": "delta", "entries": []}, "roomverse/1/directory")),
                END_OF_MESSAGE,
            ],
            "bad_signature",  # the channel is part of what is signed
        ),
        (lambda me, other: [(10**6).to_bytes(4, "big") + b"x" * 10], "frame_too_large"),
        (lambda me, other: [frame(b"\x00" * 5)[:7]], "truncated_frame"),
        (lambda me, other: [], "stream_failed"),
        (lambda me, other: [END_OF_MESSAGE], "sync_protocol"),
    ],
    ids=[
        "not-an-envelope",
        "signed-by-another",
        "starts-with-a-delta",
        "gossip-envelope-on-sync",
        "oversize-frame",
        "truncated",
        "silent",
        "empty-message",
    ],
)
async def test_bad_sync_input_is_refused_with_a_reason(
    tmp_path: Path, make_frames: Any, reason: str
) -> None:
    async with open_side(tmp_path, "a", 1) as a:
        (peer, stranger) = identities(2, seed=9)
        before = a.service.digest()
        result = await rogue_then_serve(a, make_frames(peer, stranger), peer)
        assert result.failure == reason
        assert a.service.sync.failed == 1
        assert a.service.sync.by_reason == {reason: 1}
        assert a.service.digest() == before  # nothing taken in


async def test_a_forged_entry_inside_a_sync_is_refused_and_the_rest_taken(
    tmp_path: Path,
) -> None:
    async with open_side(tmp_path, "a", 1) as a:
        (peer,) = identities(1, seed=9)
        good, victim = others(2, seed=6)
        fields = canonical.unpackb(victim)
        fields["sig"] = bytes([fields["sig"][0] ^ 0xFF]) + fields["sig"][1:]
        forged = canonical.packb(fields)

        def message(msg: Digest | Delta) -> list[bytes]:
            return [frame(envelope(peer, body)) for body in to_bodies(msg)] + [END_OF_MESSAGE]

        frames = message(Digest()) + message(Delta((forged, good)))
        result = await rogue_then_serve(a, frames, peer)
        assert result.failure is None
        assert result.changed == 1
        assert a.service.directory.get(identities(2, seed=6)[0].peer_id) is not None
        assert a.service.directory.get(identities(2, seed=6)[1].peer_id) is None
        assert '"reason": "bad_signature"' in a.events()


async def test_stream_frames_split_anywhere_are_reassembled() -> None:
    from node.wire.frames import FrameReader

    left, right = trio.testing.memory_stream_pair()
    data = frame(b"hello") + END_OF_MESSAGE + frame(b"x" * 70_000)
    reader = FrameReader(right, 100_000)

    async def dribble(stream: ByteStream) -> None:
        for i in range(0, len(data), 7):
            await stream.send_all(data[i : i + 7])
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(dribble, left)
        assert await reader.read_frame() == b"hello"
        assert await reader.read_frame() == b""
        assert await reader.read_frame() == b"x" * 70_000
        assert await reader.read_frame() is None


async def test_a_part_repeated_to_multiply_our_answer_is_refused(tmp_path: Path) -> None:
    async with open_side(tmp_path, "a", 1) as a:
        (peer,) = identities(1, seed=9)
        await a.service.absorb(others(30, seed=7), "gossip", b"")
        whole = [frame(envelope(peer, body)) for body in to_bodies(Digest())]
        result = await rogue_then_serve(a, whole * 3 + [END_OF_MESSAGE], peer)
        assert result.failure == "sync_protocol"
        assert result.entries_sent == 0


async def test_a_full_directory_refuses_new_peers_but_updates_known_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import node.directory.replica as service_module

    monkeypatch.setattr(service_module, "MAX_DIRECTORY_ENTRIES", 5)
    async with open_side(tmp_path, "a", 1) as a:
        first = await a.service.absorb(others(6, seed=8), "gossip", b"")
        assert (first.changed, first.refused) == (4, 2)  # own entry + 4 = the cap
        assert '"reason": "directory_full"' in a.events()
        assert len(a.service.directory) == 5
