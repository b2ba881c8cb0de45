"""Which engines a character should try for one call, in order: failover order, the
budget tier's preference for cheap engines, and one circuit breaker per engine.

Pure logic: time is passed in as ``now`` (monotonic seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from keys.errors import ConfigError, LocalError
from node.engine.breaker import CircuitBreaker
from node.engine.budget import BudgetTier, policy_for


@dataclass(frozen=True)
class EngineSpec:
    name: str
    cheap: bool = False


class EngineChooser:
    """The engines a character should try for one call, in order, with one breaker each.

    Failover is the caller's loop: try :meth:`candidates` in order until one answers,
    :meth:`record` every attempt's outcome, and :meth:`release` the candidates it did not
    get an outcome for (so a half-open probe granted to an engine that was never called,
    or whose call was cancelled, is given back)::

        pending = chooser.candidates(now, tier)
        try:
            while pending:
                ok = await attempt(pending[0])
                chooser.record(pending.pop(0), ok, clock())
                if ok:
                    break
        finally:
            chooser.release(pending)

    An empty list means no engine may be called: either all are down, or the budget is
    spent (see :func:`policy_for`).
    """

    def __init__(
        self,
        engines: Sequence[EngineSpec],
        *,
        breaker: Callable[[], CircuitBreaker] = CircuitBreaker,
    ) -> None:
        if not engines:
            raise ConfigError("engines", "must list at least one engine")
        seen: set[str] = set()
        for i, spec in enumerate(engines):
            if spec.name in seen:
                raise ConfigError(f"engines[{i}].name", f"duplicate engine {spec.name!r}")
            seen.add(spec.name)
        self.engines: tuple[EngineSpec, ...] = tuple(engines)
        self._breakers = {spec.name: breaker() for spec in engines}

    def breaker(self, name: str) -> CircuitBreaker:
        try:
            return self._breakers[name]
        except KeyError:
            raise LocalError(f"unknown engine {name!r}") from None

    def candidates(
        self, now: float, tier: BudgetTier, *, cheapest_first: bool = False
    ) -> list[str]:
        """Engines to try in order, skipping those whose breaker refuses a call now.

        The preferred order is the configured one; when the tier asks for the cheapest
        engine, or the caller does (``cheapest_first``: a call that must stay cheap
        whatever the budget, such as the answering machine's), cheap engines move to the
        front (keeping their order among themselves).
        """
        policy = policy_for(tier)
        if not policy.may_reply:
            return []
        order = list(self.engines)
        if cheapest_first or policy.prefer_cheapest_engine:
            order.sort(key=lambda spec: not spec.cheap)
        return [spec.name for spec in order if self._breakers[spec.name].allows(now)]

    def record(self, name: str, ok: bool, now: float) -> None:
        """Feed one attempt's outcome to the engine's breaker."""
        if ok:
            self.breaker(name).record_success(now)
        else:
            self.breaker(name).record_failure(now)

    def release(self, names: Iterable[str]) -> None:
        """Give back the half-open probes of candidates that got no outcome (not tried, or
        cancelled mid-call). Pass only those: a recorded engine's breaker may meanwhile
        have granted its probe to another caller."""
        for name in names:
            self.breaker(name).release_probe()
