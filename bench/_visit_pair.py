"""Two real nodes in one process, each with its own fake engine, and the guest's visits.

Used by ``bench/visit.py``. Each node is :func:`node.process.run_node` with SQLite in its
own temporary data dir, listening on loopback port 0, mDNS off; the guest bootstraps to the
host and finds it through the directory. Each node's engine is a
:func:`node.testing.fake_openai.serve_fake_openai` over real HTTP that answers at once.

Nothing in the nodes is changed: the timings come from wrappers put on the nodes' own
objects from outside (instance attributes, never classes), each appending a
``(start, end)`` span of :func:`time.perf_counter`, and from a listener on the event log.
All spans share one clock because both nodes run in this one process and trio loop.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

import trio
from _gossip_common import LISTEN, devnull

from node import (
    Agent,
    AutonomySettings,
    BudgetSettings,
    CharacterConfig,
    CharacterNode,
    Engines,
    EngineSettings,
    EventLog,
    NetworkSettings,
    NodeOptions,
    VisitSettings,
    VisitTargetError,
    run_node,
)
from node.testing.fake_openai import FakeOpenAI, FakeReply, serve_fake_openai

if TYPE_CHECKING:
    from trio_typing import TaskStatus

P = ParamSpec("P")
T = TypeVar("T")
Span = tuple[float, float]

READY_TIMEOUT_S: Final = 30.0
VISIT_TIMEOUT_S: Final = 60.0
POLL_S: Final = 0.005
ENGINE_MODEL: Final = "fake-model"
WORDS: Final = ("tea", "garden", "lantern", "river", "quiet", "window", "morning", "story")

COMPONENTS: Final = ("store line", "seal visit msg", "publish speak", "events")
"""What is timed inside the nodes besides the engine, in the order they are printed."""


@dataclass
class Timeline:
    """Every span measured, both nodes together."""

    engine: list[Span] = field(default_factory=list)
    """``Engines.complete``: the HTTP call plus budget bookkeeping (two SQLite writes)."""
    engine_http: list[Span] = field(default_factory=list)
    """The engine client's call alone (openai SDK → fake engine → back)."""
    parts: dict[str, list[Span]] = field(default_factory=lambda: {c: [] for c in COMPONENTS})
    stored: dict[tuple[str, int], float] = field(default_factory=dict)
    """(visit, turn) → when the first node stored that line (its ``visit_line`` event)."""
    visits: list[VisitRecord] = field(default_factory=list)


@dataclass(frozen=True)
class VisitRecord:
    visit: str
    span: Span
    """From calling ``agent.visit`` to its ``done`` reply: the opening line, knock to
    receipts, and the guest's memory summary (the host may still be writing its own)."""
    outcome: str
    turns: int


def reply_text(chars: int, number: int) -> str:
    """About ``chars`` characters of plain words, different on every call."""
    words = [f"#{number}"]
    i = number
    while sum(len(w) + 1 for w in words) < chars:
        words.append(WORDS[i % len(WORDS)])
        i += 7
    return " ".join(words)[:chars]


def timed(fn: Callable[P, Awaitable[T]], spans: list[Span]) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        start = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            spans.append((start, time.perf_counter()))

    return wrapper


def timed_sync(fn: Callable[P, T], spans: list[Span]) -> Callable[P, T]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spans.append((start, time.perf_counter()))

    return wrapper


def instrument(node: CharacterNode, engines: Engines, timeline: Timeline) -> None:
    """Put the timing wrappers on one running node (before any visit starts)."""
    engines.complete = timed(engines.complete, timeline.engine)  # type: ignore[method-assign]
    for client in engines._clients.values():
        client.complete = timed(client.complete, timeline.engine_http)  # type: ignore[method-assign]
    agent = agent_of(node)
    parts = timeline.parts
    agent.memory.add_message = timed(  # type: ignore[method-assign]
        agent.memory.add_message, parts["store line"]
    )
    # VisitChannel takes the service's seal when a visit starts: wrapped before any does.
    agent.service._seal = timed(agent.service._seal, parts["seal visit msg"])
    agent.service._publish = timed(agent.service._publish, parts["publish speak"])
    node.events.emit = timed_sync(node.events.emit, parts["events"])  # type: ignore[method-assign]

    def on_event(event: str, fields: dict[str, Any]) -> None:
        if event == "visit_line":
            timeline.stored.setdefault((fields["visit"], fields["turn"]), time.perf_counter())

    node.events.subscribe(on_event)


def character(
    name: str, data_dir: Path, engine: FakeOpenAI, turns: int, bootstrap: tuple[str, ...]
) -> CharacterConfig:
    return CharacterConfig(
        name=name,
        description=f"{name}, a benchmark character",
        engines=(
            EngineSettings(
                name="fake",
                preset="openai-compatible",
                base_url=engine.base_url,
                model=ENGINE_MODEL,
            ),
        ),
        # Large enough that no budget tier or rate limit changes what is measured.
        budget=BudgetSettings(daily_tokens=1_000_000_000),
        visits=VisitSettings(max_turns=turns, per_visitor_per_hour=120),  # the most a card allows
        autonomy=AutonomySettings(enabled=False),
        network=NetworkSettings(listen=(LISTEN,), bootstrap=bootstrap, mdns=False),
        data_dir=data_dir,
    )


async def start_node(
    nursery: trio.Nursery, config: CharacterConfig, events: EventLog
) -> CharacterNode:
    async def run(*, task_status: TaskStatus[CharacterNode] = trio.TASK_STATUS_IGNORED) -> None:
        await run_node(config, events, NodeOptions(greet=False), task_status=task_status)

    node: CharacterNode = await nursery.start(run)
    return node


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``condition``, bounded: what it reads are plain attributes no event announces."""
    with trio.fail_after(timeout_s):
        while not condition():  # noqa: ASYNC110 (no trio.Event exists to wait on)
            await trio.sleep(POLL_S)


async def engines_of(node: CharacterNode) -> Engines:
    """The node's engines once open (they start in the background)."""
    await wait_until(lambda: agent_of(node).engines is not None, READY_TIMEOUT_S)
    engines = agent_of(node).engines
    assert engines is not None
    return engines


def knows(guest: CharacterNode, host_id: str) -> Callable[[], bool]:
    """Whether the guest's directory lists the host as someone it may visit."""

    def check() -> bool:
        try:
            agent_of(guest).service.resolve(host_id)
        except VisitTargetError:
            return False
        return True

    return check


async def one_visit(host: CharacterNode, guest: CharacterNode, turns: int) -> VisitRecord:
    """The guest visits the host; returns once the host finished its side too."""
    done: dict[str, Any] = {}
    start = time.perf_counter()
    with trio.fail_after(VISIT_TIMEOUT_S):
        async for reply in agent_of(guest).visit(host.identity.peer_id_str, turns=turns):
            if reply.get("done"):
                done = reply
    end = time.perf_counter()
    if not done.get("ok"):
        raise RuntimeError(f"visit failed: {done.get('error', done)}")
    # The host ends its side (summary, relation) after the guest: until then a knock
    # would find it busy.
    await wait_until(lambda: not agent_of(host).session.hosting, VISIT_TIMEOUT_S)
    return VisitRecord(str(done["visit"]), (start, end), str(done["outcome"]), int(done["turns"]))


async def run_visits(visits: int, turns: int, warmup: int, reply_chars: int) -> Timeline:
    """``warmup`` visits (not recorded), then ``visits`` recorded ones, guest → host."""
    timeline = Timeline()
    counter = [0]

    def answer(_request: Any) -> FakeReply:
        counter[0] += 1
        return FakeReply(text=reply_text(reply_chars, counter[0]))

    with tempfile.TemporaryDirectory(prefix="rv-bench-visit-") as tmp, devnull() as sink:
        async with (
            serve_fake_openai(model=ENGINE_MODEL) as host_engine,
            serve_fake_openai(model=ENGINE_MODEL) as guest_engine,
            trio.open_nursery() as nursery,
        ):
            host_engine.responder = guest_engine.responder = answer
            # Text lines, as `roomverse node` writes by default (to /dev/null here).
            log = EventLog("text", sink)
            host = await start_node(
                nursery, character("BenchHost", Path(tmp) / "host", host_engine, turns, ()), log
            )
            bootstrap = tuple(host.public_addrs())
            guest_config = character(
                "BenchGuest", Path(tmp) / "guest", guest_engine, turns, bootstrap
            )
            guest = await start_node(nursery, guest_config, EventLog("text", sink))
            await wait_until(knows(guest, host.identity.peer_id_str), READY_TIMEOUT_S)
            ready = [(node, await engines_of(node)) for node in (host, guest)]
            for _ in range(warmup):
                await one_visit(host, guest, turns)
            for node, engines in ready:
                instrument(node, engines, timeline)
            for _ in range(visits):
                timeline.visits.append(await one_visit(host, guest, turns))
            nursery.cancel_scope.cancel()
    return timeline


def agent_of(node: CharacterNode) -> Agent:
    """The node's agent (these bench nodes are characters, never spectators)."""
    assert node.agent is not None
    return node.agent
