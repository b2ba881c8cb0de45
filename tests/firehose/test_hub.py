"""The firehose hub over an in-memory backlog: filters, resume (backfill then live with
no gap and no duplicate at the seam), cursor_too_old, slow viewers dropped without
holding up anyone, and every buffer bounded."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Collection
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from firehose.events import FirehoseEvent, take_frame
from firehose.hub import Hub, MemoryBacklog, Viewer
from firehose.limits import Filters, ViewerLimits
from tests.support.firehose_net import ALICE, BOB, Net
from tests.support.firehose_wire import parse_frame


def make(queue_size: int = 64, **limits: Any) -> tuple[Hub, MemoryBacklog, Net]:
    backlog = MemoryBacklog()
    hub = Hub(backlog, ViewerLimits(queue_size=queue_size, **limits))
    return hub, backlog, Net(hub, backlog)


async def drain(viewer: Viewer) -> list[dict[str, Any]]:
    """Every object queued for ``viewer`` so far, taken as the fan-out takes them."""
    await trio.lowlevel.checkpoint()
    return [obj for frame in viewer.take_frames() for obj in parse_frame(frame)]


async def read_all(hub: Hub, viewer: Viewer, into: list[dict[str, Any]]) -> None:
    """Take frames for ``viewer`` whenever anything was queued, forever (cancel)."""
    seen = -1
    while True:
        seen = await hub.wait_queued(seen)
        for frame in viewer.take_frames():
            into += parse_frame(frame)


def cursors(frames: list[dict[str, Any]]) -> list[int]:
    return [f["cursor"] for f in frames if f["type"] == "event"]


async def test_hello_comes_first_and_filters_select_events() -> None:
    hub, _, net = make()
    net.send()
    everyone = await hub.attach(Filters(), None)
    bobs = await hub.attach(Filters(characters=frozenset({BOB.peer_id_str})), None)
    contexts = await hub.attach(Filters(kinds=frozenset({"context"})), None)
    bob_contexts = await hub.attach(
        Filters(frozenset({BOB.peer_id_str}), frozenset({"context"})), None
    )
    sent = [net.send(k, s) for k in ("action", "context") for s in (ALICE, BOB)]

    frames = await drain(everyone)
    assert frames[0] == {
        "type": "hello",
        "oldest": 1,
        "latest": 1,
        "filters": {"character": [], "kind": ["action", "context"]},
    }
    assert cursors(frames) == [e.cursor for e in sent]
    for viewer, wanted in (
        (bobs, [e for e in sent if e.sender == BOB.peer_id_str]),
        (contexts, [e for e in sent if e.kind == "context"]),
        (bob_contexts, [e for e in sent if e.kind == "context" and e.sender == BOB.peer_id_str]),
    ):
        frames = await drain(viewer)
        assert frames[0]["type"] == "hello"
        assert cursors(frames) == [e.cursor for e in wanted]
    assert bob_contexts.filters.characters == {BOB.peer_id_str}


async def test_live_viewer_gets_every_event_once_in_order() -> None:
    hub, _, net = make()
    viewer = await hub.attach(Filters(), None)
    sent = [net.send().cursor for _ in range(20)]
    frames = await drain(viewer)
    assert [f["type"] for f in frames[:1]] == ["hello"]
    assert cursors(frames) == sent
    event = frames[1]
    assert event["from"] == ALICE.peer_id_str and event["name"] == "Alice"
    assert event["kind"] == "action" and event["body"] == {"type": "gesture", "name": "wave"}


async def test_resume_backfills_then_goes_live_without_gap_or_duplicate() -> None:
    hub, _, net = make()
    for _ in range(10):
        net.send()
    viewer = await hub.attach(Filters(), 4)
    net.send()  # published while the viewer is catching up: held, then sent once
    await hub.catch_up(viewer, 4)
    net.send()
    assert cursors(await drain(viewer)) == list(range(4, 13))


async def test_resume_from_the_future_skips_what_is_older() -> None:
    hub, _, net = make()
    net.send()
    viewer = await hub.attach(Filters(), 5)
    await hub.catch_up(viewer, 5)
    assert [net.send().cursor for _ in range(6)] == [2, 3, 4, 5, 6, 7]
    assert cursors(await drain(viewer)) == [5, 6, 7]


async def test_cursor_too_old_is_announced_then_events_continue_from_oldest() -> None:
    hub, backlog, net = make()
    for _ in range(20):
        net.send()
    backlog.prune(keep=10)
    viewer = await hub.attach(Filters(), 3)
    await hub.catch_up(viewer, 3)
    net.send()
    frames = await drain(viewer)
    assert frames[0] == {
        "type": "hello",
        "oldest": 11,
        "latest": 20,
        "filters": {"character": [], "kind": ["action", "context"]},
    }
    assert frames[1] == {"type": "cursor_too_old", "cursor": 3, "oldest": 11}
    assert cursors(frames) == list(range(11, 22))


async def test_cursor_zero_on_an_unpruned_backlog_is_not_too_old() -> None:
    hub, _, net = make()
    for _ in range(3):
        net.send()
    viewer = await hub.attach(Filters(), 0)
    await hub.catch_up(viewer, 0)
    frames = await drain(viewer)
    assert [f["type"] for f in frames] == ["hello", "event", "event", "event"]


async def test_slow_viewer_is_dropped_and_never_holds_up_the_others() -> None:
    hub, _, net = make(queue_size=8)
    stalled = await hub.attach(Filters(), None)
    healthy = await hub.attach(Filters(), None)
    got: list[int] = []
    for _ in range(10):
        for _ in range(5):
            net.send()  # synchronous: publish cannot wait for anyone
        got += cursors(await drain(healthy))
    assert got == list(range(1, 51))
    assert stalled.reason == "slow_consumer" and stalled.closed.is_set()
    assert healthy.reason is None
    assert hub.viewers == 1
    assert hub.stats()["dropped_viewers"] == 1
    # What the stalled viewer holds stays bounded: hello + its queue, nothing after.
    assert len(await drain(stalled)) == 1 + 8


def test_take_frame_joins_queued_objects_within_bounds() -> None:
    queue = deque(["a" * 10, "b" * 10, "é" * 10, "c" * 100, "d"])
    assert take_frame(queue, 64, 1000) == "\n".join(["a" * 10, "b" * 10, "é" * 10, "c" * 100, "d"])
    queue = deque(["a" * 10, "b" * 10, "c" * 10])
    assert take_frame(queue, 2, 1000) == "a" * 10 + "\n" + "b" * 10
    assert list(queue) == ["c" * 10]
    # Bytes are UTF-8 bytes: 10 + 1 + 20 would be 31 > 30, so "é" * 10 waits.
    queue = deque(["a" * 10, "é" * 10])
    assert take_frame(queue, 64, 30) == "a" * 10 and list(queue) == ["é" * 10]
    # An object bigger than the bound still goes, alone.
    queue = deque(["x" * 100, "y"])
    assert take_frame(queue, 64, 30) == "x" * 100 and list(queue) == ["y"]


async def test_a_full_queue_is_timed_and_the_drop_recorded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub, _, net = make(queue_size=4)
    viewer = await hub.attach(Filters(), None)
    for _ in range(4):
        await trio.sleep(1)
        net.send()
    full_at = trio.current_time()
    assert viewer.filled_at == full_at and viewer.reason is None
    await trio.sleep(0.25)
    net.send()
    assert viewer.reason == "slow_consumer"
    (gone,) = hub.departures
    assert (gone.reason, gone.filled_at, gone.closed_at, gone.taken) == (
        "slow_consumer",
        full_at,
        full_at + 0.25,
        0,
    )


async def test_taking_a_frame_makes_room_and_clears_filled_at() -> None:
    hub, _, net = make(queue_size=4, frame_objects=3)
    viewer = await hub.attach(Filters(), None)
    for _ in range(4):
        net.send()
    assert viewer.filled_at is not None
    assert len(parse_frame(viewer.take_frame())) == 3
    assert viewer.filled_at is None and viewer.taken == 3 and viewer.queued() == 2
    net.send()
    assert viewer.reason is None


async def test_viewers_with_the_same_filters_share_their_frames() -> None:
    """Live viewers with the same filters, emptied at the same point, hold the same
    queue: one share key. A hello, a backfill, a different filter or a different start
    makes a key of its own (or none)."""
    hub, _, net = make()
    net.send()
    fresh = [await hub.attach(Filters(), None) for _ in range(3)]
    bobs = await hub.attach(Filters(characters=frozenset({BOB.peer_id_str})), None)
    assert {v.share_key() for v in fresh} == {None}  # the hello is each one's own
    for viewer in (*fresh, bobs):
        await drain(viewer)
    net.send("action", BOB)
    late = await hub.attach(Filters(), None)
    await drain(late)
    resuming = await hub.attach(Filters(), 1)
    net.send("context", BOB)
    keys = [v.share_key() for v in fresh]
    assert keys[0] is not None and keys.count(keys[0]) == 3
    assert bobs.share_key() not in (None, keys[0])
    assert late.share_key() not in (None, keys[0])  # it started one event later
    assert resuming.share_key() is None
    frames = fresh[0].take_frames()
    for viewer in fresh[1:]:
        viewer.skip_queued()
        assert viewer.queued() == 0 and viewer.taken == fresh[0].taken
    assert cursors([o for f in frames for o in parse_frame(f)]) == [2, 3]


async def test_a_partly_taken_queue_is_no_longer_shared() -> None:
    hub, _, net = make(frame_objects=2)
    a, b = [await hub.attach(Filters(), None) for _ in range(2)]
    for viewer in (a, b):
        await drain(viewer)
    for _ in range(3):
        net.send()
    assert a.share_key() == b.share_key() is not None
    a.take_frame()
    assert a.share_key() is None and b.share_key() is not None
    net.send()
    assert a.share_key() is None  # until its queue was emptied once
    await drain(a)
    net.send()
    assert a.share_key() is not None and a.share_key() != b.share_key()


class GatedBacklog:
    """A backlog whose reads wait until the test opens the gate."""

    def __init__(self, inner: MemoryBacklog) -> None:
        self.inner = inner
        self.gate = trio.Event()
        self.reads = 0

    async def bounds(self) -> tuple[int, int]:
        return await self.inner.bounds()

    async def read(self, cursor: int, kinds: Collection[str], limit: int) -> list[FirehoseEvent]:
        self.reads += 1
        await self.gate.wait()
        return await self.inner.read(cursor, kinds, limit)


async def test_live_events_held_during_a_long_backfill_stay_bounded() -> None:
    inner = MemoryBacklog()
    backlog = GatedBacklog(inner)
    hub = Hub(backlog, ViewerLimits(queue_size=8, backfill_page=4))
    net = Net(hub, inner)
    for _ in range(6):
        net.send()
    viewer = await hub.attach(Filters(), 2)
    objects: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all, hub, viewer, objects)
        nursery.start_soon(hub.catch_up, viewer, 2)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(30):  # far more than the 8 a viewer may hold aside
            net.send()
        backlog.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert len(cursors(objects)) == 35
        net.send()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert cursors(objects) == list(range(2, 38))
    assert not viewer.catching_up and viewer.reason is None
    assert backlog.reads > 2  # the overflow sent it back to the backlog


async def test_a_resuming_viewer_that_never_reads_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub, _, net = make(queue_size=8)
    for _ in range(50):
        net.send()
    viewer = await hub.attach(Filters(), 1)
    start = trio.current_time()
    await hub.catch_up(viewer, 1)
    assert viewer.reason == "slow_consumer"
    assert trio.current_time() - start == pytest.approx(hub.limits.backfill_stall_s)
    assert hub.viewers == 0


async def test_close_all_says_why_and_detaches_everyone() -> None:
    hub, _, _ = make()
    viewers = [await hub.attach(Filters(), None) for _ in range(3)]
    hub.close_all("server_shutdown")
    assert {v.reason for v in viewers} == {"server_shutdown"}
    assert hub.viewers == 0
    assert hub.stats()["closed"] == {"server_shutdown": 3}


# -- the seam, under every interleaving Hypothesis can think of -------------------------

OPS = st.lists(st.sampled_from(["commit", "publish", "send", "yield"]), max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    before=st.integers(0, 25),
    cursor=st.integers(0, 30),
    ops=OPS,
    attach_at=st.integers(0, 60),
    page=st.integers(1, 8),
    kinds=st.sampled_from([("action",), ("context",), ("action", "context")]),
    only_bob=st.booleans(),
    reorder=st.booleans(),
    seed=st.integers(0, 2**32),
)
async def test_seam_has_no_gap_and_no_duplicate(
    before: int,
    cursor: int,
    ops: list[str],
    attach_at: int,
    page: int,
    kinds: tuple[str, ...],
    only_bob: bool,
    reorder: bool,
    seed: int,
) -> None:
    """Events are stored ("commit") then published, possibly out of order (two topics
    consumed by two tasks); a viewer resumes at a random point while this goes on."""
    rng = random.Random(seed)
    hub, _, net = make(queue_size=64, backfill_page=page)
    filters = Filters(frozenset({BOB.peer_id_str}) if only_bob else frozenset(), frozenset(kinds))

    def commit() -> None:
        net.commit(rng.choice(["action", "context"]), rng.choice([ALICE, BOB]))

    def publish() -> None:
        if net.pending:
            net.publish(rng.randrange(len(net.pending)) if reorder else 0)

    for _ in range(before):
        commit()
        publish()
    objects: list[dict[str, Any]] = []
    viewer: Viewer | None = None
    async with trio.open_nursery() as nursery:

        async def start_viewer() -> None:
            nonlocal viewer
            viewer = await hub.attach(filters, cursor)
            nursery.start_soon(read_all, hub, viewer, objects)
            await hub.catch_up(viewer, cursor)

        for i, op in enumerate([*ops, "yield"]):
            if i == min(attach_at, len(ops)):
                nursery.start_soon(start_viewer)
            if op in ("commit", "send"):
                commit()
            if op in ("publish", "send"):
                publish()
            await trio.lowlevel.checkpoint()
        net.flush()
        expected = [
            e.cursor
            for e in net.backlog.events
            if e.cursor >= cursor and filters.matches(e.kind, e.sender)
        ]
        # Everything is in memory: once every task waits, all that will arrive has.
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert viewer is not None and viewer.reason is None
    assert {o["type"] for o in objects} <= {"hello", "event"}
    received = cursors(objects)
    assert sorted(received) == expected  # no gap
    assert len(set(received)) == len(received)  # no duplicate
    if not reorder:
        assert received == expected  # and in cursor order
