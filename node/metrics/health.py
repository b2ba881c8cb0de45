"""``/healthz``: is this node fit for its job, in one small JSON answer.

``{"status": "ok" | "degraded", "checks": {name: bool, ...}, ...}``, served 200 when every
check passes and 503 otherwise, so a container ``HEALTHCHECK``, a load balancer or a
scraper can act on the status code alone. The checks of a running node:

- ``listening``: its libp2p host has an address to be reached at (the node runs);
- for a character (not a spectator): ``engine`` (its engines are open, no problem was
  reported, and at least one engine's breaker is not open: it can speak now) and
  ``budget`` (the daily token budget is not spent: tier ``stopped`` means it cannot;
  unknown, and passing, while the engines are not open).

Peers are reported (``peers``) but not checked: a lone node at a LAN party's start, or
the first node of a network, is healthy with none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from node.engine.breaker import BreakerState
from node.engine.budget import BudgetTier

if TYPE_CHECKING:
    from node.character import CharacterNode

OK_STATUS = 200
DEGRADED_STATUS = 503


@dataclass(frozen=True, slots=True)
class Health:
    checks: dict[str, bool]
    detail: dict[str, Any] = field(default_factory=dict)
    """Facts beside the checks (counts, states); no names, no PeerIDs, no text: the
    dashboard answers ``/healthz`` without its token."""

    @property
    def ok(self) -> bool:
        return all(self.checks.values())

    @property
    def http_status(self) -> int:
        return OK_STATUS if self.ok else DEGRADED_STATUS

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "degraded", "checks": self.checks, **self.detail}


def node_health(node: CharacterNode) -> Health:
    checks = {"listening": bool(node.public_addrs())}
    detail: dict[str, Any] = {"peers": len(node.host.connected_peers())}
    agent = node.agent
    if agent is not None:
        engines = agent.engines
        states = {} if engines is None else engines.breaker_states()
        tier = None if engines is None else engines.tier()
        checks["engine"] = (
            engines is not None
            and not agent.engine_problem
            and any(state is not BreakerState.OPEN for state in states.values())
        )
        checks["budget"] = tier is not BudgetTier.STOPPED
        detail["budget_tier"] = None if tier is None else tier.value
        detail["engines_open"] = sum(state is BreakerState.OPEN for state in states.values())
    return Health(checks, detail)
