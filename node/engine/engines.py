"""A character's engines as one: failover in order, circuit breakers, the daily budget.

Everything that wants words from an LLM (a visit turn, the answering machine, autonomy,
the memory summary) calls :meth:`Engines.complete` with its :class:`Purpose`. The budget
tier decides whether that purpose may spend tokens now (:class:`EngineResting` if not)
and which engines come first; the breakers skip engines that keep failing; the first
engine that answers wins (:class:`EnginesUnavailable` if none does). The decisions are
the pure ones of :mod:`node.engine.chooser` and :mod:`node.engine.budget`; this module
only feeds them calls and time.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import date
from enum import StrEnum
from typing import Any, Final, Protocol

import trio

from node.engine.breaker import BreakerState
from node.engine.budget import BudgetTier, TierPolicy, TokenBudget, policy_for
from node.engine.call_stats import OK, EngineCallStats
from node.engine.chooser import EngineChooser, EngineSpec
from node.engine.client import EngineClient, open_engine_client
from node.engine.errors import EngineCallFailed, EngineResting, EnginesUnavailable
from node.engine.key_store import KeyLookup, KeyOrigin
from node.engine.messages import ChatMessage, Completion, Sampling, ToolSpec
from node.engine.presets import EngineSettingsLike, display_url, resolve

log = logging.getLogger(__name__)

ANSWERING_MACHINE_MAX_TOKENS: Final = 120
"""The away message is one short reply; it must not eat the owner's budget."""
BREAKER_OPEN: Final = "breaker_open"
"""The failure reason of an engine that was not tried because its breaker is open."""


class Purpose(StrEnum):
    """Why an engine is called; the budget tier allows some purposes longer than others."""

    REPLY = "reply"
    """A turn in a visit: someone is waiting for it. Allowed until the budget is spent."""
    AUTONOMY = "autonomy"
    """Choosing or starting an unprompted visit: the first thing to give way."""
    ANSWERING_MACHINE = "answering_machine"
    """One short reply while away: cheapest engine first in every tier, capped tokens."""
    SUMMARY = "summary"
    """The memory summary at farewell: bookkeeping that gives way with autonomy, so the
    last tokens of the day go to replies."""
    REACTION = "reaction"
    """A reaction between visits to what the character heard (:mod:`node.agent.reacting`):
    nobody waits for it, so it gives way with autonomy."""


def _allowed(purpose: Purpose, policy: TierPolicy) -> bool:
    if purpose in (Purpose.AUTONOMY, Purpose.SUMMARY, Purpose.REACTION):
        return policy.autonomous_visits
    return policy.may_reply


class BudgetSettingsLike(Protocol):
    """The fields of ``node.config.BudgetSettings`` this module reads."""

    @property
    def daily_tokens(self) -> int: ...
    @property
    def low_at(self) -> float: ...
    @property
    def critical_at(self) -> float: ...


class BudgetStore(Protocol):
    """Where the day's spent tokens survive a restart (the node keeps it in SQLite)."""

    async def load(self) -> tuple[str, int] | None:
        """The last saved ``(ISO day, tokens spent that day)``, or None if never saved."""
        ...

    async def save(self, day: str, spent: int) -> None: ...


class Engines:
    """The character's engines. Make it with :func:`open_engines`."""

    def __init__(
        self,
        clients: Sequence[tuple[EngineClient, KeyOrigin]],
        chooser: EngineChooser,
        budget: TokenBudget,
        *,
        store: BudgetStore | None,
        clock: Callable[[], float],
        today: Callable[[], str],
    ) -> None:
        self._clients = {client.engine.name: client for client, _ in clients}
        self._key_origins = {client.engine.name: origin for client, origin in clients}
        self._chooser = chooser
        self._budget = budget
        self._store = store
        self._clock = clock
        self._today = today
        # Saves run one at a time and write the count as it is when they run, so a slow
        # save can never overwrite a newer one.
        self._save_lock = trio.Lock()
        self.stats = EngineCallStats()
        """Calls, latency and tokens per engine since the node started (the metrics)."""

    def tier(self) -> BudgetTier:
        return self._budget.tier(self._today())

    def policy(self) -> TierPolicy:
        return policy_for(self.tier())

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        purpose: Purpose,
        temperature: float | None = None,
        sampling: Sampling | None = None,
        tools: Sequence[ToolSpec] = (),
    ) -> Completion:
        """Ask the engines in order until one answers; spend its tokens on today's budget.

        ``tools`` go to whichever engine answers if it takes tools (see
        :meth:`EngineClient.complete`); one that does not answers without them.

        Raises :class:`EngineResting` when the budget tier does not allow ``purpose``, and
        :class:`EnginesUnavailable` when no engine answered.
        """
        day = self._today()
        tier = self._budget.tier(day)
        if not _allowed(purpose, policy_for(tier)):
            raise EngineResting(tier, purpose.value)
        if purpose is Purpose.ANSWERING_MACHINE:
            max_tokens = min(max_tokens, ANSWERING_MACHINE_MAX_TOKENS)
        pending = self._chooser.candidates(
            self._clock(), tier, cheapest_first=purpose is Purpose.ANSWERING_MACHINE
        )
        failures: dict[str, str] = {}
        try:
            while pending:
                client = self._clients[pending[0]]
                started = self._clock()
                try:
                    completion = await client.complete(
                        messages,
                        max_tokens=max_tokens,
                        temperature=temperature,
                        sampling=sampling,
                        tools=tools,
                    )
                except EngineCallFailed as exc:
                    self._chooser.record(pending.pop(0), False, self._clock())
                    self.stats.record(client.engine.name, exc.reason, self._clock() - started)
                    failures[client.engine.name] = exc.reason
                    self._log_failure(client.engine.name, exc.reason, pending)
                    continue
                self._chooser.record(pending.pop(0), True, self._clock())
                self.stats.record(
                    client.engine.name, OK, self._clock() - started, completion.tokens
                )
                await self._spend(completion.tokens, day)
                return completion
        finally:
            # Candidates never tried, or whose call was cancelled, give back their probe.
            self._chooser.release(pending)
        for name in self._clients:
            failures.setdefault(name, BREAKER_OPEN)
        raise EnginesUnavailable(failures)

    def takes_tools(self, purpose: Purpose = Purpose.REPLY) -> bool:
        """Whether the engine that would answer ``purpose`` now takes tools.

        A hint for building the prompt (whether to mention tools at all): the first
        candidate is the one that answers unless it fails, and it may yet turn out
        tool-less on the call itself.
        """
        now = self._clock()
        order = list(self._chooser.engines)
        if purpose is Purpose.ANSWERING_MACHINE or self.policy().prefer_cheapest_engine:
            order.sort(key=lambda spec: not spec.cheap)
        for spec in order:
            # Read the breaker, not EngineChooser.candidates: asking it may grant a probe.
            breaker = self._chooser.breaker(spec.name)
            retry_at = breaker.retry_at
            if breaker.state is BreakerState.OPEN and retry_at is not None and retry_at > now:
                continue
            return self._clients[spec.name].tools_supported
        return False

    def breaker_states(self) -> dict[str, BreakerState]:
        """Each engine's breaker, in failover order."""
        return {name: self._chooser.breaker(name).state for name in self._clients}

    def describe(self) -> dict[str, Any]:
        """A JSON-able picture for ``roomverse status``: no keys, no credentials in URLs."""
        now = self._clock()
        day = self._today()
        engines = []
        for name, client in self._clients.items():
            breaker = self._chooser.breaker(name)
            retry_at = breaker.retry_at
            engines.append(
                {
                    "name": name,
                    "model": client.engine.model,
                    "base_url": display_url(client.engine.base_url),
                    "cheap": client.engine.cheap,
                    "timeout_s": client.engine.timeout_s,
                    "tools": client.tools_supported,
                    "key": self._key_origins[name].value,
                    "breaker": breaker.state.value,
                    # The breaker's clock is monotonic: only "how long from now" means
                    # anything outside this process.
                    "retry_in_s": None if retry_at is None else max(0.0, retry_at - now),
                }
            )
        budget = {
            "day": day,
            "daily_tokens": self._budget.daily_tokens,
            "spent": self._budget.spent(day),
            "remaining": self._budget.remaining(day),
            "tier": self._budget.tier(day).value,
        }
        return {"engines": engines, "budget": budget}

    async def _spend(self, tokens: int, day: str) -> None:
        self._budget.spend(tokens, day)
        if self._store is None:
            return
        async with self._save_lock:
            # Save the day it is now: a call that began before midnight counts for nothing
            # today, and must not make the store go back to yesterday.
            current = self._today()
            await self._store.save(current, self._budget.spent(current))

    @staticmethod
    def _log_failure(name: str, reason: str, pending: Sequence[str]) -> None:
        if pending:
            log.warning("engine %r failed (%s); failing over to %r", name, reason, pending[0])
        else:
            log.warning("engine %r failed (%s); no engine left to try", name, reason)


def _iso_today() -> str:
    return date.today().isoformat()


@asynccontextmanager
async def open_engines(
    settings: Sequence[EngineSettingsLike],
    budget: BudgetSettingsLike,
    *,
    keys: KeyLookup,
    embedded_url: str | None,
    store: BudgetStore | None = None,
    clock: Callable[[], float] = trio.current_time,
    today: Callable[[], str] = _iso_today,
) -> AsyncIterator[Engines]:
    """Open a client per engine (failover order = ``settings`` order) for the block.

    ``embedded_url`` is the running embedded server's base URL (None if it is not running),
    ``store`` restores today's spent tokens and keeps them across restarts, ``clock`` is
    the breakers' monotonic time, and ``today`` names the budget's day (an ISO date).
    """
    resolved = [resolve(engine, embedded_url) for engine in settings]
    # Built first: it refuses an empty list and duplicate names before anything is opened.
    chooser = EngineChooser([EngineSpec(engine.name, engine.cheap) for engine in resolved])
    token_budget = TokenBudget(budget.daily_tokens, budget.low_at, budget.critical_at)
    if store is not None:
        await _restore(token_budget, store, today())
    async with AsyncExitStack() as stack:
        clients = []
        for engine, configured in zip(resolved, settings, strict=True):
            # The key store is a small file, but reading it is still disk I/O.
            found = await trio.to_thread.run_sync(keys.find, engine.key_source)
            client = await stack.enter_async_context(
                open_engine_client(engine, found.secret, tools=configured.tools)
            )
            clients.append((client, found.origin))
        yield Engines(clients, chooser, token_budget, store=store, clock=clock, today=today)


async def _restore(budget: TokenBudget, store: BudgetStore, day: str) -> None:
    saved = await store.load()
    if saved is None:
        return
    saved_day, spent = saved
    # Only today's count matters; a saved day in the future (the clock was set back) must
    # not be restored either, or today's spending would be dropped as "from the past".
    if saved_day == day:
        budget.spend(spent, day)
