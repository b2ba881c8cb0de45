"""``roomverse party``: the sample characters, one shared engine, a firehose, in one go.

Every character is a real node (its own key, data directory, memory and libp2p host)
running in this process, so an extra character costs a host and a database, not a second
interpreter and never a second model. They find each other by their addresses (no mDNS
needed on one machine); ``lan`` puts them on the LAN as well. The
:class:`~node.party.conductor.Conductor` paces the visits; Ctrl-C stops everything, and the
next party starts from the same directory: same keys, same memories.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import trio

if TYPE_CHECKING:
    from trio_typing import TaskStatus

from keys.errors import LocalError
from node.character import CharacterNode
from node.clock import monotonic, now_ms
from node.config import CharacterConfig, slug
from node.engine.embedded import open_shared_engine
from node.engine.model_pack import model_choice
from node.engine.shared import SharedEngineSlot
from node.events import EventLog, LogFormat
from node.party.conductor import Conductor, Pacing
from node.party.firehose import firehose_command, run_firehose_process
from node.party.settings import LAN_LISTEN, LOCAL_LISTEN, PartySettings, load_party
from node.party.terminal import PartyTerminal
from node.process import NodeOptions, run_node
from node.visits.contracts import VisitResult
from registry_crdt import Presence

EVENTS_FILE = "events.log"
PARTY_LOG = "party.log"
FIREHOSE_DIR = "firehose"
FIREHOSE_LOG = "firehose.log"


@dataclass
class PartyGuest:
    """A running character as the conductor sees it."""

    node: CharacterNode

    @property
    def name(self) -> str:
        return self.node.config.name

    @property
    def peer_id(self) -> str:
        return self.node.identity.peer_id_str

    def ready(self) -> bool:
        agent = self.node.agent
        if agent is None or agent.engines is None:
            return False
        now = now_ms()
        return any(
            entry.peer_str != self.peer_id and entry.presence(now) is Presence.ONLINE
            for entry in self.node.directory.directory.entries()
        )

    async def visit_someone(self, *, busy: frozenset[str]) -> VisitResult | None:
        assert self.node.agent is not None
        return await self.node.agent.visit_someone(busy=busy)


@dataclass
class Party:
    """A running party (what :func:`run_party` reports once everyone is in)."""

    guests: list[PartyGuest]
    viewer_url: str | None
    conductor: Conductor


async def run_party(
    settings: PartySettings,
    fmt: LogFormat = "text",
    stream: TextIO | None = None,
    *,
    pacing: Pacing | None = None,
    task_status: TaskStatus[Party] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the party until cancelled or until SIGINT/SIGTERM."""
    out = stream or sys.stdout
    configs = load_party(settings)
    root = settings.resolved_data_dir()
    root.mkdir(parents=True, exist_ok=True)
    terminal = PartyTerminal(out)
    with ExitStack() as files:
        party_log = _event_log(fmt, out, root / PARTY_LOG, files, terminal.party_event)
        party_log.emit(
            "party_starting",
            characters=[c.name for c in configs],
            data_dir=str(root),
            engine=settings.engine_url or settings.model,
        )
        # Open for the whole party, stopping included: a second Ctrl-C while everyone says
        # goodbye is absorbed here instead of breaking the goodbyes with KeyboardInterrupt.
        signals = files.enter_context(trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_stop_on_signals, signals, nursery.cancel_scope, party_log)
                slot = None
                if settings.engine_url is None:
                    slot = SharedEngineSlot()
                    nursery.start_soon(_run_engine, settings, slot, party_log)
                conductor = Conductor([], party_log, pacing or Pacing())
                guests: list[PartyGuest] = []
                for config in configs:
                    events = _event_log(
                        fmt,
                        out,
                        root / slug(config.name) / EVENTS_FILE,
                        files,
                        partial(terminal.character_event, config.name),
                        context={"character": config.name},
                    )
                    config = _introduced(config, guests)
                    node = await nursery.start(
                        partial(run_node, config, events, _node_options(slot))
                    )
                    events.subscribe(partial(_track_visits, conductor, node.identity.peer_id_str))
                    guests.append(PartyGuest(node))
                    party_log.emit(
                        "party_joined",
                        name=config.name,
                        peer_id=node.identity.peer_id_str,
                        friends=len(await node.agent.memory.relations()) if node.agent else 0,
                        rss_mb=rss_mb(),
                    )
                conductor.guests = guests
                viewer = None
                if settings.firehose:
                    viewer = await nursery.start(
                        run_firehose_process,
                        firehose_command(
                            http=settings.http,
                            data_dir=root / FIREHOSE_DIR,
                            listen=(LAN_LISTEN if settings.lan else LOCAL_LISTEN)[0],
                            bootstrap=[a for g in guests for a in g.node.public_addrs()],
                            mdns=settings.lan,
                        ),
                        root / FIREHOSE_LOG,
                    )
                    party_log.emit("firehose_ready", url=viewer, rss_mb=rss_mb())
                nursery.start_soon(conductor.run)
                task_status.started(Party(guests, viewer, conductor))
        finally:
            party_log.emit("party_stopped", data_dir=str(root))


def _introduced(config: CharacterConfig, guests: list[PartyGuest]) -> CharacterConfig:
    """``config`` bootstrapping to everyone already at the party (they dial each other;
    the directory then tells each about the rest)."""
    addrs = [a for g in guests for a in g.node.public_addrs()]
    bootstrap = (*config.network.bootstrap, *addrs)
    return replace(config, network=replace(config.network, bootstrap=bootstrap))


def _node_options(slot: SharedEngineSlot | None) -> NodeOptions:
    return NodeOptions(shared_engine=slot, handle_signals=False, greet=True)


def _track_visits(conductor: Conductor, me: str, event: str, fields: dict[str, Any]) -> None:
    if event == "visit_started":
        conductor.visit_started(me, fields["visit"])
    elif event == "visit_ended":
        conductor.visit_ended(me, fields["visit"])


def _event_log(
    fmt: LogFormat,
    stdout: TextIO,
    log_file: Path,
    files: ExitStack,
    listener: Any,
    *,
    context: dict[str, Any] | None = None,
) -> EventLog:
    """JSON: every event on stdout. Text: the events in ``log_file``, the terminal's
    readable lines on stdout."""
    if fmt == "json":
        return EventLog("json", stdout, context=context)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    stream = files.enter_context(log_file.open("a", encoding="utf-8"))
    events = EventLog("text", stream, context=context)
    events.subscribe(listener)
    return events


async def _run_engine(settings: PartySettings, slot: SharedEngineSlot, log: EventLog) -> None:
    """The one embedded engine; the party cannot go on without it."""
    choice = model_choice(settings.model)
    token = trio.lowlevel.current_trio_token()

    def progress(done: int, total: int) -> None:
        def report() -> None:
            slot.progress(f"assembling the model {choice.name} ({done * 100 // max(total, 1)} %)")
            log.emit("model_progress", model=choice.name, done=done, total=total)

        token.run_sync_soon(report)

    started = monotonic()
    try:
        async with open_shared_engine(
            choice, on_progress=progress, threads=settings.threads
        ) as engine:
            slot.fill(engine)
            log.emit(
                "engine_ready", model=choice.name, load_s=monotonic() - started, rss_mb=rss_mb()
            )
            await trio.sleep_forever()
    except (LocalError, OSError) as exc:
        slot.fail(str(exc))
        log.emit("engine_failed", error=str(exc))
        raise


async def _stop_on_signals(
    signals: AsyncIterator[int], scope: trio.CancelScope, log: EventLog
) -> None:
    async for signum in signals:
        log.emit("stopping", signal=signal.Signals(signum).name)
        scope.cancel()
        return


def rss_mb() -> float | None:
    """This process's resident memory in MB (Linux), None elsewhere."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1000
    return None


__all__ = ["Party", "PartyGuest", "rss_mb", "run_party"]
