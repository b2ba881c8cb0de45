"""The metric families of a running node (:class:`~node.character.CharacterNode`): its
network, directory, visits, engines and souvenirs, read from the counters each part keeps
(``roomverse status`` shows the same ones). A spectator node (the bridge's, the
firehose's) has no agent: its visit, engine and souvenir families stay empty.

Where the counters live: :class:`node.wire.rejections.RejectionLog` (rejections),
``host.drops`` (drops), :class:`node.directory.replica.SyncCounters` (directory syncs),
:class:`node.catch_up.service.CatchUpCounters`, :class:`node.visits.tally.VisitTally`
(visits, on the door), :class:`node.engine.call_stats.EngineCallStats` (engine calls,
latency, tokens), :class:`node.souvenirs.service.SouvenirCounters`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from node.engine.breaker import BreakerState
from node.engine.budget import BudgetTier
from node.engine.call_stats import LatencyBuckets
from node.metrics.families import Family, Histogram, Labels, ReadingsCollector, Values, one

if TYPE_CHECKING:
    from node.agent.agent import Agent
    from node.character import CharacterNode
    from node.engine.engines import Engines

T = TypeVar("T")

SOUVENIR_CALLS = {
    ("lent", "ok"): "lent_ok",
    ("lent", "refused"): "lent_refused",
    ("lent", "failed"): "lent_failed",
    ("borrowed", "ok"): "borrowed_ok",
    ("borrowed", "refused"): "borrowed_refused",
    ("borrowed", "failed"): "borrowed_failed",
}
"""(side, outcome) → the field of :class:`node.souvenirs.service.SouvenirCounters`."""


def _keyed(counts: Mapping[str, int]) -> Values:
    return {(key,): float(value) for key, value in counts.items()}


def _states(current: str, every: list[str]) -> Values:
    """An enum as gauges: 1 for the current state, 0 for the others."""
    return {(state,): float(state == current) for state in every}


def node_families(node: CharacterNode) -> list[Family | Histogram]:
    def agent_reading(read: Callable[[Agent], Values]) -> Callable[[], Values]:
        return lambda: {} if node.agent is None else read(node.agent)

    def engines_reading(
        read: Callable[[Engines], Mapping[Labels, T]],
    ) -> Callable[[], dict[Labels, T]]:
        def reading() -> dict[Labels, T]:
            engines = None if node.agent is None else node.agent.engines
            return {} if engines is None else dict(read(engines))

        return reading

    drops = node.host.drops
    sync = node.directory.sync
    catch_up = node.catch_up.counters
    return [
        Family(
            "roomverse_peers_connected",
            "Peers with an open libp2p connection.",
            "gauge",
            lambda: one(len(node.host.connected_peers())),
        ),
        Family(
            "roomverse_envelopes_received_total",
            "Envelopes that passed verification and were kept (gossip and catch-up).",
            "counter",
            lambda: one(node.received),
        ),
        Family(
            "roomverse_envelopes_rejected_total",
            "Envelopes refused by verification, by reason.",
            "counter",
            lambda: _keyed(node.rejections.by_reason),
            ("reason",),
        ),
        Family(
            "roomverse_envelopes_dropped_total",
            "Messages lost before verification: a full libp2p subscription queue, a full "
            "buffer, a publish that timed out.",
            "counter",
            lambda: {
                ("subscription",): float(drops.subscription_overflow),
                ("buffer",): float(drops.buffer_overflow),
                ("publish_timeout",): float(drops.publish_timeouts),
            },
            ("where",),
        ),
        Family(
            "roomverse_catch_up_syncs_total",
            "Catch-up exchanges (what gossip lost, from a peer), by result.",
            "counter",
            lambda: {("ok",): float(catch_up.ok), ("failed",): float(catch_up.failed)},
            ("result",),
        ),
        Family(
            "roomverse_directory_entries",
            "Directory entries held (every state, leases expired or not).",
            "gauge",
            lambda: one(node.directory.summary()["held"]),
        ),
        Family(
            "roomverse_directory_present_entries",
            "Directory entries online, away or asleep now.",
            "gauge",
            lambda: one(node.directory.summary()["present"]),
        ),
        Family(
            "roomverse_directory_syncs_total",
            "Directory anti-entropy exchanges, by result.",
            "counter",
            lambda: {("ok",): float(sync.ok), ("failed",): float(sync.failed)},
            ("result",),
        ),
        Family(
            "roomverse_directory_sync_failures_total",
            "Failed directory anti-entropy exchanges, by reason.",
            "counter",
            lambda: _keyed(sync.by_reason),
            ("reason",),
        ),
        Family(
            "roomverse_visits_total",
            "Visits ended since the node started, by role (host, guest) and outcome.",
            "counter",
            agent_reading(
                lambda agent: {key: float(n) for key, n in agent.session.door.tally.ended.items()}
            ),
            ("role", "outcome"),
        ),
        Family(
            "roomverse_engine_ready",
            "1 when the character's engines are open and none reported a problem.",
            "gauge",
            agent_reading(
                lambda agent: one(float(agent.engines is not None and not agent.engine_problem))
            ),
        ),
        Family(
            "roomverse_engine_calls_total",
            "Calls to each engine, by result (ok, or the failure: timeout, connection, "
            "http_<status>, bad_response, empty_reply).",
            "counter",
            engines_reading(lambda e: {k: float(n) for k, n in e.stats.calls.items()}),
            ("engine", "result"),
        ),
        Histogram(
            "roomverse_engine_call_duration_seconds",
            "How long each engine call took, answered or failed.",
            engines_reading(_latency),
            ("engine",),
        ),
        Family(
            "roomverse_engine_tokens_total",
            "Tokens the engines' answers spent (prompt and completion).",
            "counter",
            engines_reading(lambda e: _keyed(e.stats.tokens)),
            ("engine",),
        ),
        Family(
            "roomverse_engine_breaker_state",
            "Each engine's circuit breaker: 1 for its current state, 0 for the others.",
            "gauge",
            engines_reading(_breakers),
            ("engine", "state"),
        ),
        Family(
            "roomverse_engine_budget_tier",
            "The daily token budget's tier: 1 for the current one, 0 for the others.",
            "gauge",
            engines_reading(lambda e: _states(e.tier().value, [t.value for t in BudgetTier])),
            ("tier",),
        ),
        Family(
            "roomverse_engine_budget_spent_tokens",
            "Tokens spent today against the daily budget.",
            "gauge",
            engines_reading(lambda e: one(e.describe()["budget"]["spent"])),
        ),
        Family(
            "roomverse_engine_budget_daily_tokens",
            "The daily token budget.",
            "gauge",
            engines_reading(lambda e: one(e.describe()["budget"]["daily_tokens"])),
        ),
        Family(
            "roomverse_souvenir_calls_total",
            "Souvenir (lent MCP tool) calls, by side (lent: a partner called ours; "
            "borrowed: we called a partner's) and outcome.",
            "counter",
            agent_reading(
                lambda agent: {
                    key: float(getattr(agent.souvenirs.counters, field))
                    for key, field in SOUVENIR_CALLS.items()
                }
            ),
            ("side", "outcome"),
        ),
    ]


def _latency(engines: Engines) -> dict[Labels, LatencyBuckets]:
    return {(name,): buckets for name, buckets in engines.stats.latency.items()}


def _breakers(engines: Engines) -> Values:
    every = [state.value for state in BreakerState]
    return {
        (name, state): value
        for name, current in engines.breaker_states().items()
        for (state,), value in _states(current.value, every).items()
    }


def node_collector(node: CharacterNode) -> ReadingsCollector:
    """The node's families, every sample labelled with its ``character`` (the configured
    name: one per node, so the label stays bounded when a process runs several)."""
    return ReadingsCollector(node_families(node), {"character": node.config.name})
