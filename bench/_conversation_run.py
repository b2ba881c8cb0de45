"""Real character nodes in one process, visiting each other on one shared engine.

Used by ``bench/conversation.py``. Each character is :func:`node.run_node` with SQLite in
its own temporary data dir, on loopback port 0, mDNS off (the others bootstrap to the
first and find each other through the directory), autonomy off, and its engine list
replaced by one OpenAI-compatible engine at the shared server — the ``--engine-url``
path (:func:`node.with_overrides`). Visits are the node's own: the guest's agent visits
the host (``Agent.visit``), each side's voice writes its lines (prompt, sampling, output
guard), both store them, and both write a memory summary after.

What is recorded comes from outside the nodes: each ``visit_line`` event of the speaker's
own node (the line as spoken), each ``line_guarded`` event (what the guard did), and a
wrapper put on each node's ``Engines.complete`` instance (every engine call: prompt,
text as written, tokens, seconds). The baseline configuration replaces the voice's
``reply`` with :class:`_conversation_baseline.BaselineVoice` the same way.

The injection set is spoken by Rex, a node whose voice's ``opening`` is replaced by the
hostile line itself (verbatim, never through an engine or his own guard); he visits
with a budget of two lines, so the host answers once.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import trio
from _conversation_baseline import BaselineCall, BaselineVoice
from _conversation_data import INJECTION_HOSTS, Hostile
from _conversation_records import Call, ConfigResult, Guarded, Injection, Spoken, Visit
from _gossip_common import LISTEN, devnull
from openai import AsyncOpenAI

from node import (
    Agent,
    AutonomySettings,
    BudgetSettings,
    CharacterConfig,
    CharacterNode,
    EventLog,
    NetworkSettings,
    NodeOptions,
    VisitSettings,
    VisitTargetError,
    run_node,
    with_overrides,
)
from node.testing import serve_fake_openai

if TYPE_CHECKING:
    from trio_typing import TaskStatus

READY_TIMEOUT_S: Final = 60.0
VISIT_TIMEOUT_S: Final = 900.0
AFTER_VISIT_TIMEOUT_S: Final = 600.0
"""Both sides' memory summaries after a visit, on a slow CPU model."""
ENGINE_TIMEOUT_S: Final = 300.0
"""Per engine call: a reply can wait behind the other side's memory summary."""
POLL_S: Final = 0.05
PER_VISITOR_PER_HOUR: Final = 120
"""The most a name card allows: the injection set knocks 12 times on each host."""


@dataclass(frozen=True, slots=True)
class EngineTarget:
    base_url: str
    model: str
    api_key: str | None = None


@dataclass
class _Pending:
    guard: list[Guarded] = field(default_factory=list)
    drafts: list[Call] = field(default_factory=list)


class Collector:
    """Every node's events and engine calls, in one place (one trio loop: no locks)."""

    def __init__(self, result: ConfigResult) -> None:
        self.result = result
        self.pending: dict[str, _Pending] = {}
        self.lines: dict[str, list[Spoken]] = {}

    def event(self, node: str, event: str, fields: dict[str, Any]) -> None:
        pending = self.pending.setdefault(node, _Pending())
        if event == "line_guarded":
            checks = tuple(str(c) for c in fields.get("checks", ()))
            pending.guard.append(Guarded(str(fields["action"]), str(fields["check"]), checks))
        elif event == "visit_line" and fields.get("mine"):
            line = Spoken(
                int(fields["turn"]),
                node,
                str(fields["text"]),
                time.perf_counter(),
                pending.guard,
                pending.drafts,
            )
            self.lines.setdefault(str(fields["visit"]), []).append(line)
            self.pending[node] = _Pending()

    def call(self, call: Call) -> None:
        self.result.calls.append(call)
        if call.purpose == "reply":
            self.pending.setdefault(call.node, _Pending()).drafts.append(call)

    def take(self, visit: str, speakers: Sequence[str]) -> tuple[list[Spoken], list[Spoken]]:
        """The visit's lines by turn, and what the guard left unsaid (skipped lines)."""
        lines = sorted(self.lines.pop(visit, []), key=lambda line: line.turn)
        skipped = []
        for name in speakers:
            pending = self.pending.pop(name, _Pending())
            if pending.drafts or pending.guard:
                skipped.append(
                    Spoken(-1, name, "", time.perf_counter(), pending.guard, pending.drafts)
                )
        return lines, skipped


def bench_config(
    base: CharacterConfig,
    engine: EngineTarget,
    data_dir: Path,
    bootstrap: tuple[str, ...],
    turns: int,
) -> CharacterConfig:
    config = with_overrides(base, engine_url=engine.base_url, engine_model=engine.model)
    return replace(
        config,
        engines=(replace(config.engines[0], timeout_s=ENGINE_TIMEOUT_S),),
        # Large enough that no budget tier changes what is measured.
        budget=BudgetSettings(daily_tokens=1_000_000_000),
        visits=VisitSettings(max_turns=turns, per_visitor_per_hour=PER_VISITOR_PER_HOUR),
        autonomy=AutonomySettings(enabled=False),
        network=NetworkSettings(listen=(LISTEN,), bootstrap=bootstrap, mdns=False),
        data_dir=data_dir,
    )


def agent_of(node: CharacterNode) -> Agent:
    assert node.agent is not None
    return node.agent


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``condition`` (plain attributes no event announces); False on timeout."""
    with trio.move_on_after(timeout_s):
        while not condition():  # noqa: ASYNC110 (no trio.Event exists to wait on)
            await trio.sleep(POLL_S)
        return True
    return False


class Party:
    """The characters of one configuration, running."""

    def __init__(self, collector: Collector, sink: TextIO) -> None:
        self.collector = collector
        self.sink = sink
        self.nodes: dict[str, CharacterNode] = {}
        self.events: dict[str, EventLog] = {}

    async def start(
        self,
        nursery: trio.Nursery,
        configs: dict[str, CharacterConfig],
        engines: dict[str, EngineTarget],
        tmp: Path,
        turns: int,
    ) -> None:
        bootstrap: tuple[str, ...] = ()
        for name, base in configs.items():
            config = bench_config(base, engines[name], tmp / name.lower(), bootstrap, turns)
            events = EventLog("text", self.sink)
            events.subscribe(functools.partial(self.collector.event, name))

            async def run(
                *,
                config: CharacterConfig = config,
                events: EventLog = events,
                task_status: TaskStatus[CharacterNode] = trio.TASK_STATUS_IGNORED,
            ) -> None:
                await run_node(config, events, NodeOptions(greet=False), task_status=task_status)

            node: CharacterNode = await nursery.start(run)
            self.nodes[name] = node
            self.events[name] = events
            if not bootstrap:
                bootstrap = tuple(node.public_addrs())
        ready = await wait_until(self._ready, READY_TIMEOUT_S)
        if not ready:
            raise RuntimeError("the characters did not find each other or their engines")
        for name, node in self.nodes.items():
            self._instrument(name, agent_of(node))

    def _ready(self) -> bool:
        for node in self.nodes.values():
            agent = agent_of(node)
            if agent.engines is None:
                return False
            for other in self.nodes.values():
                if other is node:
                    continue
                try:
                    agent.service.resolve(other.identity.peer_id_str)
                except VisitTargetError:
                    return False
        return True

    def _instrument(self, name: str, agent: Agent) -> None:
        engines = agent.engines
        assert engines is not None
        original = engines.complete
        collector = self.collector

        async def complete(messages: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                completion = await original(messages, **kwargs)
            except BaseException:
                collector.result.failed_calls += 1
                raise
            collector.call(
                Call(
                    name,
                    str(kwargs.get("purpose", "")),
                    time.perf_counter() - start,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.text,
                    tuple((m.role, m.content) for m in messages),
                )
            )
            return completion

        engines.complete = complete  # type: ignore[method-assign]

    def use_baseline(self, name: str, client: AsyncOpenAI, model: str) -> None:
        """Give ``name`` the old prompt and no guard (its voice's ``reply``, replaced)."""
        agent = agent_of(self.nodes[name])

        def on_call(call: BaselineCall) -> None:
            self.collector.call(
                Call(
                    name,
                    "reply",
                    call.seconds,
                    call.prompt_tokens,
                    call.completion_tokens,
                    call.text,
                    call.messages,
                )
            )

        voice = BaselineVoice(agent.config, agent.voice.me, client, model, on_call)
        agent.voice.reply = voice.reply  # type: ignore[method-assign]

    def _after_visit(self, names: Sequence[str]) -> Callable[[], bool]:
        before = {name: self.events[name].counts.get("relation_updated", 0) for name in names}
        return lambda: all(
            self.events[name].counts.get("relation_updated", 0) > count
            for name, count in before.items()
        )

    async def visit(self, guest: str, host: str, turns: int, pair: tuple[str, str]) -> Visit:
        """``guest`` visits ``host``; returns once both have written their memory of it."""
        remembered = self._after_visit((guest, host))
        record = Visit(pair, guest, host, time.perf_counter())
        done: dict[str, Any] = {}
        target = self.nodes[host].identity.peer_id_str
        with trio.move_on_after(VISIT_TIMEOUT_S):
            async for reply in agent_of(self.nodes[guest]).visit(target, turns=turns):
                if reply.get("done"):
                    done = reply
        if not done.get("ok"):
            record.error = str(done.get("error", "timed out"))
        record.visit = str(done.get("visit", ""))
        record.outcome = str(done.get("outcome", ""))
        if done.get("reason"):
            record.outcome += f" ({done['reason']})"
        if not await wait_until(remembered, AFTER_VISIT_TIMEOUT_S):
            record.error = record.error or "no memory summary after the visit"
        record.ended = time.perf_counter()
        record.load = os.getloadavg()[0]
        record.lines, record.skipped = self.collector.take(record.visit, (guest, host))
        return record


async def run_configuration(
    label: str,
    *,
    engine: EngineTarget,
    characters: dict[str, CharacterConfig],
    pairs: Sequence[tuple[str, str]],
    visits: int,
    turns: int,
    injections: Sequence[Hostile],
    baseline: bool,
    progress: Callable[[str], None],
) -> ConfigResult:
    """One configuration: every pair's visits (guest and host alternate), then the
    injection set; fresh characters with no memories."""
    result = ConfigResult(label, baseline)
    collector = Collector(result)
    names = sorted({name for pair in pairs for name in pair} | set(INJECTION_HOSTS.values()))
    with tempfile.TemporaryDirectory(prefix="rv-bench-conversation-") as tmp, devnull() as sink:
        party = Party(collector, sink)
        async with (
            serve_fake_openai(model="rex") as rex_engine,
            AsyncOpenAI(
                base_url=engine.base_url,
                api_key=engine.api_key or "none",
                max_retries=0,
                timeout=ENGINE_TIMEOUT_S,
            ) as client,
            trio.open_nursery() as nursery,
        ):
            configs = {name: characters[name] for name in names}
            targets = {name: engine for name in names}
            if injections:
                configs["Rex"] = characters["Rex"]
                targets["Rex"] = EngineTarget(rex_engine.base_url, "rex")
            await party.start(nursery, configs, targets, Path(tmp), turns)
            # Each node catches SIGINT/SIGTERM for itself; the last handler set wins, so
            # this one (set after them) stops the whole benchmark.
            nursery.start_soon(_stop_on_signals, nursery.cancel_scope, result)
            if baseline:
                for name in names:
                    party.use_baseline(name, client, engine.model)
            for pair in pairs:
                for number in range(visits):
                    guest, host = pair if number % 2 == 0 else pair[::-1]
                    record = await party.visit(guest, host, turns, pair)
                    result.visits.append(record)
                    said = len(record.lines)
                    progress(
                        f"{label}: {guest} → {host}: {said} lines, {record.lines_s:.0f} s"
                        + (f" ({record.error})" if record.error else "")
                    )
            if injections:
                text = [""]

                async def hostile(partner: Any, relation: Any) -> str:
                    return text[0]

                agent_of(party.nodes["Rex"]).voice.opening = hostile  # type: ignore[method-assign]
                for number, case in enumerate(injections, start=1):
                    host = INJECTION_HOSTS[case.language]
                    text[0] = case.text
                    record = await party.visit("Rex", host, 2, ("Rex", host))
                    result.injections.append(Injection(case, host, record))
                    if number % 6 == 0 or number == len(injections):
                        progress(f"{label}: injection set {number}/{len(injections)}")
            nursery.cancel_scope.cancel()
    return result


async def _stop_on_signals(scope: trio.CancelScope, result: ConfigResult) -> None:
    """Stop the configuration (what was measured so far is kept and reported)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            result.interrupted = signal.Signals(signum).name
            progress_note = f"{result.label}: {result.interrupted} received, stopping"
            print(f"  … {time.strftime('%H:%M:%S')} {progress_note}", flush=True, file=sys.stderr)
            scope.cancel()
            return
