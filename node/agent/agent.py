"""The character's agent on a running node: engines, voice, memory, visits, autonomy.

:meth:`Agent.run` serves ``/roomverse/visit/1.0.0`` at once and opens the engines in
the background (the embedded engine may first have to assemble its model): until they
are ready, knocks are declined as ``resting`` and nothing pretends to speak.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Final

import trio

if TYPE_CHECKING:
    from trio_typing import TaskStatus

from keys import PROTO_MCP, PROTO_VISIT, Identity, InvalidPeerId, peer_id_from_str
from keys.errors import LocalError, RemoteError, RoomverseError
from node import _libp2p
from node.agent.autonomy import Candidate, eligible, next_wait_s, pick_weighted
from node.agent.prompts.views import PartnerView
from node.agent.reacting import Reactor
from node.agent.relations import RelationKeeper
from node.agent.voice import EngineVoice
from node.clock import monotonic, now_ms
from node.config import CharacterConfig, slug
from node.directory.replica import DirectoryService
from node.engine.budget import BudgetTier
from node.engine.engines import Engines, open_engines
from node.engine.errors import EngineError
from node.engine.key_store import KEY_STORE_FILE, KeyLookup, KeyStore
from node.engine.model_pack import DEFAULT_MODEL
from node.engine.shared import SharedEngineSlot
from node.events import EventLog
from node.privacy.redact import redact
from node.souvenirs.approvals import Approvals
from node.souvenirs.plugin_files import all_souvenirs
from node.souvenirs.running import lend, partner_cards
from node.souvenirs.service import SouvenirService
from node.storage.footprints import Footprints
from node.storage.memory import Memory
from node.storage.store import Store
from node.visits.contracts import VisitResult
from node.visits.service import Publish, VisitService
from node.visits.session import VisitSession
from node.visits.wire import Seal

logger = logging.getLogger(__name__)

EMBEDDED_PRESET: Final = "embedded"
AUTONOMY_RETRY_S: Final = 300.0
ENGINE_CHOICES: Final = 12
"""Wait before trying again when nobody could be visited or the tier forbade it."""


class BudgetInMeta:
    """Today's spent tokens in the node's ``meta`` table (survives restarts)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self) -> tuple[str, int] | None:
        day = await self.store.get_meta("budget_day")
        spent = await self.store.get_meta("budget_spent")
        if day is None or spent is None:
            return None
        text = str(day)
        return f"{text[:4]}-{text[4:6]}-{text[6:]}", spent

    async def save(self, day: str, spent: int) -> None:
        await self.store.set_meta("budget_day", int(day.replace("-", "")), budget_spent=spent)


@dataclass(frozen=True)
class Collaborators:
    """What the agent uses of the running node, handed to it explicitly (the agent sits
    below the running character and never reaches back into it)."""

    identity: Identity
    config: CharacterConfig
    events: EventLog
    store: Store
    host: _libp2p.P2PHost
    directory: DirectoryService
    seal: Seal
    publish: Publish
    reject: Callable[[bytes, str, RemoteError], None]


class Agent:
    def __init__(
        self,
        node: Collaborators,
        *,
        turn_timeout_s: float = 120.0,
        env: dict[str, str] | None = None,
        rng: random.Random | None = None,
        shared_engine: SharedEngineSlot | None = None,
    ) -> None:
        self.node = node
        self.shared_engine = shared_engine
        """The party's one embedded engine: used instead of loading a model of our own."""
        self.config: CharacterConfig = node.config
        self.events: EventLog = node.events
        self.env = dict(os.environ if env is None else env)
        self.rng = rng or random.Random()
        self.memory = Memory(node.store.db, redact)
        self.engines: Engines | None = None
        self.engine_problem: str | None = "starting"
        self.voice = EngineVoice(
            node.config, node.identity.peer_id, self._engines_now, events=node.events
        )
        self.plugins = all_souvenirs(node.config.souvenirs, node.config.resolved_data_dir())
        """The owner's souvenir plugins (character file, then ``plugins/``): a bad plugin
        file is a ConfigError here, when the node starts."""
        self.souvenirs = SouvenirService(
            me=node.identity.peer_id_str,
            host=node.host,
            seal=node.seal,
            publish=node.publish,
            footprints=Footprints(node.store.db, redact),
            approvals=Approvals(events=node.events),
            events=node.events,
            reject=node.reject,
            partner_card=partner_cards(node.directory),
        )
        self.session = VisitSession(
            me=node.identity.peer_id,
            name=node.config.name,
            card=self._card_digest,
            settings=node.config.visits,
            voice=self.voice,
            memory=self.memory,
            relations=RelationKeeper(self.memory, node.events, now_ms),
            events=node.events,
            clock_ms=now_ms,
            status=lambda: node.directory.status,
            may_reply=self._may_reply,
            on_line=self._line_said,
            reject=node.reject,
            turn_timeout_s=turn_timeout_s,
            souvenirs=self.souvenirs,
        )
        self.service = VisitService(
            session=self.session,
            host=node.host,
            directory=node.directory,
            seal=node.seal,
            publish=node.publish,
            clock_ms=now_ms,
        )
        self.reactions = Reactor(
            me=node.identity.peer_id_str,
            settings=node.config.reactions,
            voice=self.voice,
            publish=node.publish,
            events=node.events,
            engines=lambda: self.engines,
            in_visit=self._in_visit,
            character=self._character,
            clock_ms=now_ms,
            rng=self.rng,
        )
        """Hears what the node stores and publishes (the running character feeds it)."""
        self.last_autonomous_ms: dict[str, int] = {}
        self._nursery: trio.Nursery | None = None

    def _card_digest(self) -> bytes:
        own = self.node.directory.own
        return own.card_digest if own is not None else bytes(32)

    def _engines_now(self) -> Engines:
        if self.engines is None:
            raise EngineError(f"no engine is ready ({self.engine_problem})", reason="starting")
        return self.engines

    def _in_visit(self, partner: str | None, since_ms: int) -> bool:
        """In a visit now (or about to host one), or ``partner`` began one with us since
        ``since_ms`` (what it did then belonged to the visit, such as a guest's arrival)."""
        ongoing = self.session.ongoing
        if self.session.hosting or ongoing.in_visit():
            return True
        return partner is not None and ongoing.visited_since(partner, since_ms)

    def _character(self, peer_id: str) -> PartnerView | None:
        """``peer_id`` as a character in our directory (None: unknown, or no character,
        such as the firehose spectator or a bridge)."""
        try:
            entry = self.node.directory.directory.get(peer_id_from_str(peer_id))
        except InvalidPeerId:
            return None
        if entry is None or not entry.card.capabilities.accepts_visits:
            return None
        return PartnerView(entry.peer_str, entry.card.name, entry.card.description)

    def _may_reply(self) -> bool:
        return self.engines is not None and self.engines.policy().may_reply

    async def _line_said(self, visit: str, partner: Any, line: Any, mine: bool) -> None:
        await self.service.line_said(visit, partner, line, mine)

    # -- running --------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        interrupted = await self.memory.mark_interrupted(now_ms())
        for visit in interrupted:
            self.events.emit("visit_interrupted", visit=visit)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.node.host.set_stream_handler(PROTO_VISIT, self.service.serve)
            self.node.host.set_stream_handler(PROTO_MCP, self.souvenirs.serve)
            task_status.started()
            nursery.start_soon(self._autonomy_loop)
            nursery.start_soon(self.reactions.run)
            nursery.start_soon(
                lend,
                self.souvenirs,
                self.plugins,
                self.config.resolved_data_dir(),
                self.node.directory,
                self.events,
            )
            await self._run_engines()

    async def _run_engines(self) -> None:
        try:
            async with self._open_engines() as engines:
                self.engines = engines
                self.engine_problem = None
                self.events.emit("engine_ready", **_engine_summary(engines.describe()))
                await trio.sleep_forever()
        except (LocalError, OSError) as exc:
            self.engine_problem = str(exc)
            logger.error("engines could not start: %s", exc)
            self.events.emit("engine_failed", error=str(exc))
            await trio.sleep_forever()
        finally:
            self.engines = None

    @asynccontextmanager
    async def _open_engines(self) -> AsyncIterator[Engines]:
        data_dir = self.config.resolved_data_dir()
        identity: Identity = self.node.identity
        keys = KeyLookup(self.env, KeyStore(data_dir / KEY_STORE_FILE, identity.seed))
        async with AsyncExitStack() as stack:
            embedded_url = None
            embedded = [e for e in self.config.engines if e.preset == EMBEDDED_PRESET]
            if embedded and self.shared_engine is not None:
                self.engine_problem = self.shared_engine.problem
                shared = await self.shared_engine.wait()
                embedded_url = shared.url_for(slug(self.config.name))
            elif embedded:
                embedded_url = await stack.enter_async_context(
                    self._open_embedded(embedded[0].model or DEFAULT_MODEL)
                )
            engines = await stack.enter_async_context(
                open_engines(
                    self.config.engines,
                    self.config.budget,
                    keys=keys,
                    embedded_url=embedded_url,
                    store=BudgetInMeta(self.node.store),
                    today=lambda: date.today().isoformat(),
                )
            )
            yield engines

    @asynccontextmanager
    async def _open_embedded(self, model: str) -> AsyncIterator[str]:
        from node.engine.embedded import open_embedded_engine
        from node.engine.model_pack import model_choice

        choice = model_choice(model)
        token = trio.lowlevel.current_trio_token()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = monotonic()
            if done < total and now - last[0] < 1.0:
                return
            last[0] = now
            token.run_sync_soon(
                lambda: self.events.emit("model_progress", model=model, done=done, total=total)
            )

        self.engine_problem = f"loading the embedded model {model}"
        async with open_embedded_engine(choice, on_progress=progress) as url:
            yield url

    # -- visits ---------------------------------------------------------------------------

    async def visit(
        self, target: str, *, turns: int = 0, private: bool | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Visit ``target`` now; yields each line as it is said, then the outcome.

        The visit runs in the agent's nursery (not inside this generator), so a reader
        that goes away does not cut the visit short.
        """
        if self._nursery is None:
            raise LocalError("the agent is not running")
        self.service.resolve(target)  # fail fast, before any reply is streamed
        send, receive = trio.open_memory_channel[dict[str, Any]](256)
        self._nursery.start_soon(self._visit_into, send, target, turns, private)
        async with receive:
            async for reply in receive:
                yield reply

    async def _visit_into(
        self,
        send: trio.MemorySendChannel[dict[str, Any]],
        target: str,
        turns: int,
        private: bool | None,
    ) -> None:
        async with send:
            visit_id = ""

            async def started(visit: str) -> None:
                nonlocal visit_id
                visit_id = visit
                await _offer(send, {"ok": True, "visit": visit, "started": True})

            def forward(event: str, fields: dict[str, Any]) -> None:
                if event == "visit_line" and fields.get("visit") == visit_id:
                    name = self.config.name if fields["mine"] else fields["partner_name"]
                    line = {**fields, "name": name, "text": redact(fields["text"])}
                    send_nowait(send, {"ok": True, "line": line})

            unsubscribe = self.events.subscribe(forward)
            try:
                result = await self.service.visit(
                    target, turns=turns, private=private, on_start=started
                )
            except (RoomverseError, trio.TooSlowError) as exc:
                await _offer(send, {"ok": False, "done": True, "error": str(exc)})
                return
            finally:
                unsubscribe()
            await _offer(send, {"ok": True, "done": True, **_result_json(result)})

    async def _autonomy_loop(self) -> None:
        settings = self.config.autonomy
        if not settings.enabled:
            return
        paused_in: str | None = None
        while True:
            policy = self.engines.policy() if self.engines is not None else None
            wait = None if policy is None else next_wait_s(settings, policy, self.rng)
            if wait is None:
                # No engine yet, or the budget tier forbids it: look again later.
                tier = self.engines.tier().value if self.engines is not None else "no_engine"
                if tier != paused_in:
                    self.events.emit("autonomy_paused", tier=tier)
                    paused_in = tier
                await trio.sleep(min(AUTONOMY_RETRY_S, settings.interval_s))
                continue
            paused_in = None
            await trio.sleep(wait)
            if self.engines is not None and self.engines.policy().autonomous_visits:
                await self.visit_someone()

    async def visit_someone(self, *, busy: frozenset[str] = frozenset()) -> VisitResult | None:
        """One autonomous visit: pick a host and visit it (None if nobody could be).

        ``busy``: peer ids known to be in a visit now (the party knows), left out."""
        now = now_ms()
        hosts = eligible(
            self.node.directory.directory.entries(),
            me=self.node.identity.peer_id,
            now_ms=now,
            last_visited_ms=self.last_autonomous_ms,
            cooldown_s=self.config.autonomy.cooldown_s,
        )
        candidates = []
        for entry in hosts:
            if entry.peer_str in busy:
                continue
            relation = await self.memory.relation(entry.peer_str)
            candidates.append(
                Candidate(
                    entry.peer_str,
                    entry.card.name,
                    entry.card.description,
                    None if relation is None else relation.affinity,
                    0 if relation is None else relation.visit_count,
                )
            )
        chosen = await self._choose(candidates)
        if chosen is None:
            self.events.emit("autonomy_idle", candidates=len(candidates))
            return None
        self.last_autonomous_ms[chosen.peer_id] = now
        self.events.emit("autonomy_visit", target=chosen.peer_id, name=chosen.name)
        try:
            return await self.service.visit(chosen.peer_id)
        except (RoomverseError, trio.TooSlowError) as exc:
            logger.info("autonomous visit to %s failed: %s", chosen.peer_id, exc)
            self.events.emit("autonomy_failed", target=chosen.peer_id, error=str(exc))
            return None

    async def _choose(self, candidates: list[Candidate]) -> Candidate | None:
        if not candidates:
            return None
        if self.config.autonomy.choose == "engine":
            # A short list keeps the prompt small however big the directory is.
            candidates = self.rng.sample(candidates, min(len(candidates), ENGINE_CHOICES))
            try:
                index = await self.voice.choose(candidates)
            except EngineError as exc:
                logger.info("the engine could not choose a host: %s", exc)
                index = None
            if index is not None:
                return candidates[index]
        return pick_weighted(candidates, self.rng)

    def describe(self) -> dict[str, Any]:
        engines = self.engines.describe() if self.engines is not None else None
        shared = self.shared_engine.engine if self.shared_engine is not None else None
        return {
            "engines": engines,
            "shared_engine": None
            if shared is None
            else {"model": shared.model, "queue": shared.queue.snapshot().as_json()},
            "engine_problem": self.engine_problem
            if self.engines is not None or self.shared_engine is None
            else self.shared_engine.problem,
            "tier": (self.engines.tier() if self.engines is not None else BudgetTier.STOPPED).value,
            "hosting": sorted(self.session.hosting),
            "souvenirs": self.souvenirs.describe(),
            "autonomy": {
                "enabled": self.config.autonomy.enabled,
                "interval_s": self.config.autonomy.interval_s,
                "choose": self.config.autonomy.choose,
            },
        }


async def _offer(send: trio.MemorySendChannel[dict[str, Any]], reply: dict[str, Any]) -> None:
    # The reader may have left; the visit goes on.
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await send.send(reply)


def send_nowait(send: trio.MemorySendChannel[dict[str, Any]], reply: dict[str, Any]) -> None:
    # A reader that does not keep up misses lines, never the visit.
    with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
        send.send_nowait(reply)


def _result_json(result: VisitResult) -> dict[str, Any]:
    return {
        "visit": result.visit,
        "outcome": result.outcome,
        "reason": result.reason,
        "partner": result.partner.peer_id,
        "partner_name": result.partner.name,
        "turns": len(result.lines),
        "transcript": result.transcript.hex() if result.transcript else None,
        "message": redact(result.message),
    }


def _engine_summary(described: dict[str, Any]) -> dict[str, Any]:
    return {
        "engines": [e.get("name") for e in described.get("engines", [])],
        "tier": described.get("budget", {}).get("tier"),
    }


__all__ = ["Agent", "BudgetInMeta", "Collaborators"]
