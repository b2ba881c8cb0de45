"""The character runtime, and its public API.

Other packages (``firehose``, ``bridge``, ``bench``) and the command line use only the names
in ``__all__`` below, plus ``node.testing`` (the test doubles), ``keys`` and
``registry_crdt``; everything else under ``node`` is private even without an underscore.
Names load on first use, so ``import node`` costs nothing and ``roomverse act`` never
pulls in quart or llama.cpp.

Inside ``node``, subpackages are named after what they own and stacked in layers. A module
imports only from its own layer or the layers below (``tests/test_import_boundaries.py``
parses every import and enforces it, and that there is no cycle)::

    keys, registry_crdt              sans-IO, below everything
    config, clock, errors,           leaf services every layer may use
      privacy, events
    wire, _libp2p, storage           frames and the envelope gate; the libp2p adapter; SQLite
    net, engine                      reaching peers (dialing, liveness, mDNS); reaching LLMs
    directory, catch_up              the node's replica, sync, anti-entropy, name card; the
                                       actions' anti-entropy (what gossip lost, from a peer)
    visits                           the visit protocol (pure) and the service that runs it
    agent                            persona, prompts, memory use, affinity, autonomy
    character, control, dashboard,   the running node as a whole; its local faces; what a
      bridging, metrics                bridge's node does (visits for legacy participants);
                                       its /metrics and /healthz
    process, party, cli              a config becomes a process; the party; the commands
    testing                          test doubles (use any layer, used by none)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from node.lazy import lazy_getattr

if TYPE_CHECKING:
    from node._libp2p import (
        MESHSUB_PROTOCOLS,
        P2PHost,
        PubsubMessage,
        Validator,
        open_p2p_host,
    )
    from node.agent.agent import Agent
    from node.bridging import LegacyHostFor, host_for_legacy, proxy_visit
    from node.character import CharacterNode
    from node.cli.main import main
    from node.cli.parser import add_network_arguments
    from node.cli.startup import (
        check_network_addrs,
        parse_http_addr,
        run_service,
        service_main,
        setup_logging,
    )
    from node.clock import monotonic, now_ms, poll_until
    from node.config import (
        DEFAULT_LISTEN,
        AutonomySettings,
        BudgetSettings,
        CharacterConfig,
        EngineSettings,
        NetworkSettings,
        VisitSettings,
        load_config,
        parse_config,
        with_overrides,
    )
    from node.config.settings import SouvenirSettings
    from node.control.socket import control_request, control_stream
    from node.dashboard.guard import bearer_token
    from node.engine.embedded import open_embedded_engine
    from node.engine.engines import Engines
    from node.engine.model_pack import DEFAULT_MODEL, MODELS, model_choice
    from node.errors import ControlError, PublishError
    from node.events import EventLog
    from node.metrics import (
        Family,
        FirehoseReading,
        Health,
        ReadingsCollector,
        add_metrics_routes,
        direct_loopback,
        firehose_families,
        metrics_registry,
        node_collector,
        node_health,
        one,
    )
    from node.process import NodeOptions, open_character, run_node
    from node.souvenirs import open_plugins
    from node.souvenirs.approvals import Approvals
    from node.souvenirs.capability import Quotas
    from node.souvenirs.service import SouvenirService
    from node.souvenirs.wire import MCP_BODIES, ToolAnswer, ToolRequest
    from node.storage.footprints import Footprints
    from node.storage.store import Store
    from node.visits.contracts import Partner, VisitResult
    from node.visits.conversation import Line
    from node.visits.proxy import LegacyHost, ProxyVisitor, RelayedLines, RelayFailed
    from node.visits.service import VisitTargetError
    from node.wire.batching import receive_batch
    from node.wire.gate import EnvelopeGate

_WHERE: dict[str, str] = {
    # configuration and the event log
    "DEFAULT_LISTEN": "node.config",
    "AutonomySettings": "node.config",
    "BudgetSettings": "node.config",
    "CharacterConfig": "node.config",
    "EngineSettings": "node.config",
    "NetworkSettings": "node.config",
    "VisitSettings": "node.config",
    "load_config": "node.config",
    "parse_config": "node.config",
    "with_overrides": "node.config",
    "EventLog": "node.events",
    "ControlError": "node.errors",
    "PublishError": "node.errors",
    "monotonic": "node.clock",
    "now_ms": "node.clock",
    "poll_until": "node.clock",
    # a running node, and the process that runs one
    "CharacterNode": "node.character",
    "Agent": "node.agent.agent",
    "Engines": "node.engine.engines",
    "VisitTargetError": "node.visits.service",
    # a bridge's visits for legacy participants
    "ProxyVisitor": "node.visits.proxy",
    "RelayedLines": "node.visits.proxy",
    "RelayFailed": "node.visits.proxy",
    "LegacyHost": "node.visits.proxy",
    "LegacyHostFor": "node.bridging",
    "host_for_legacy": "node.bridging",
    "proxy_visit": "node.bridging",
    "Partner": "node.visits.contracts",
    "VisitResult": "node.visits.contracts",
    "Line": "node.visits.conversation",
    "NodeOptions": "node.process",
    "open_character": "node.process",
    "run_node": "node.process",
    "Store": "node.storage.store",
    # what every process that joins the network checks and sets up
    "add_network_arguments": "node.cli.parser",
    "check_network_addrs": "node.cli.startup",
    "setup_logging": "node.cli.startup",
    "parse_http_addr": "node.cli.startup",
    "run_service": "node.cli.startup",
    "service_main": "node.cli.startup",
    "main": "node.cli.main",
    "control_request": "node.control.socket",
    "control_stream": "node.control.socket",
    # metrics and health (``/metrics``, ``/healthz``) for every face of a node
    "Family": "node.metrics",
    "FirehoseReading": "node.metrics",
    "Health": "node.metrics",
    "ReadingsCollector": "node.metrics",
    "add_metrics_routes": "node.metrics",
    "bearer_token": "node.dashboard.guard",
    "direct_loopback": "node.metrics",
    "firehose_families": "node.metrics",
    "metrics_registry": "node.metrics",
    "node_collector": "node.metrics",
    "node_health": "node.metrics",
    "one": "node.metrics",
    # the embedded engine
    "MODELS": "node.engine.model_pack",
    "DEFAULT_MODEL": "node.engine.model_pack",
    "model_choice": "node.engine.model_pack",
    "open_embedded_engine": "node.engine.embedded",
    # the transport itself, for tools that measure it (bench/gossip.py)
    "MESHSUB_PROTOCOLS": "node._libp2p",
    "P2PHost": "node._libp2p",
    "PubsubMessage": "node._libp2p",
    "Validator": "node._libp2p",
    "open_p2p_host": "node._libp2p",
    "EnvelopeGate": "node.wire.gate",
    "receive_batch": "node.wire.batching",
    # souvenirs: plugins and lending, for tools that measure them (bench/souvenir.py)
    "SouvenirSettings": "node.config.settings",
    "open_plugins": "node.souvenirs",
    "SouvenirService": "node.souvenirs.service",
    "Approvals": "node.souvenirs.approvals",
    "Quotas": "node.souvenirs.capability",
    "Footprints": "node.storage.footprints",
    "MCP_BODIES": "node.souvenirs.wire",
    "ToolAnswer": "node.souvenirs.wire",
    "ToolRequest": "node.souvenirs.wire",
}

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_MODEL",
    "MCP_BODIES",
    "MESHSUB_PROTOCOLS",
    "MODELS",
    "Agent",
    "Approvals",
    "AutonomySettings",
    "BudgetSettings",
    "CharacterConfig",
    "CharacterNode",
    "ControlError",
    "EngineSettings",
    "Engines",
    "EnvelopeGate",
    "EventLog",
    "Family",
    "FirehoseReading",
    "Footprints",
    "Health",
    "LegacyHost",
    "LegacyHostFor",
    "Line",
    "NetworkSettings",
    "NodeOptions",
    "P2PHost",
    "Partner",
    "ProxyVisitor",
    "PublishError",
    "PubsubMessage",
    "Quotas",
    "ReadingsCollector",
    "RelayFailed",
    "RelayedLines",
    "SouvenirService",
    "SouvenirSettings",
    "Store",
    "ToolAnswer",
    "ToolRequest",
    "Validator",
    "VisitResult",
    "VisitSettings",
    "VisitTargetError",
    "add_metrics_routes",
    "add_network_arguments",
    "bearer_token",
    "check_network_addrs",
    "control_request",
    "control_stream",
    "direct_loopback",
    "firehose_families",
    "host_for_legacy",
    "load_config",
    "main",
    "metrics_registry",
    "model_choice",
    "monotonic",
    "node_collector",
    "node_health",
    "now_ms",
    "one",
    "open_character",
    "open_embedded_engine",
    "open_p2p_host",
    "open_plugins",
    "parse_config",
    "parse_http_addr",
    "poll_until",
    "proxy_visit",
    "receive_batch",
    "run_node",
    "run_service",
    "service_main",
    "setup_logging",
    "with_overrides",
]


__getattr__ = lazy_getattr("node", _WHERE, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
