"""Metrics and health for every face of a node: ``/metrics`` (Prometheus text format, from
a registry per app) and ``/healthz`` (JSON, 200 or 503).

- :mod:`node.metrics.families`: families read at scrape time, the collector, the registry;
- :mod:`node.metrics.node_families`: a running node's families;
- :mod:`node.metrics.firehose`: the firehose's own families;
- :mod:`node.metrics.health`: what ``/healthz`` checks;
- :mod:`node.metrics.http`: the two routes, for a quart app, and a helper for their guards.
"""

from node.metrics.families import Family, Histogram, ReadingsCollector, metrics_registry, one
from node.metrics.firehose import FirehoseReading, firehose_families
from node.metrics.health import Health, node_health
from node.metrics.http import (
    HEALTH_PATH,
    METRICS_ENDPOINTS,
    METRICS_PATH,
    add_metrics_routes,
    direct_loopback,
    health_response,
    metrics_response,
)
from node.metrics.node_families import node_collector, node_families

__all__ = [
    "HEALTH_PATH",
    "METRICS_ENDPOINTS",
    "METRICS_PATH",
    "Family",
    "FirehoseReading",
    "Health",
    "Histogram",
    "ReadingsCollector",
    "add_metrics_routes",
    "direct_loopback",
    "firehose_families",
    "health_response",
    "metrics_registry",
    "metrics_response",
    "node_collector",
    "node_families",
    "node_health",
    "one",
]
