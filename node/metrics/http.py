"""``/metrics`` and ``/healthz`` for a quart app (the dashboard, the bridge, the firehose).

Who may ask is each app's decision: :func:`add_metrics_routes` calls the app's ``guard``
first, which raises the app's own refusal (a problem+json on the bridge);
:func:`direct_loopback` is for those that answer only this machine.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from quart import Response
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers

from node.metrics.health import Health

METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"
METRICS_ENDPOINTS = frozenset({"metrics", "healthz"})
"""The endpoint names :func:`add_metrics_routes` gives the two routes (for guards)."""
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")
"""Headers a reverse proxy adds: ngrok's agent connects from loopback, but sets these."""


def metrics_response(registry: CollectorRegistry) -> Response:
    """The registry's families now, in the Prometheus text format."""
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def health_response(health: Health) -> Response:
    return Response(
        json.dumps(health.to_json()),
        status=health.http_status,
        content_type="application/json",
    )


def add_metrics_routes(
    app: QuartTrio,
    registry: CollectorRegistry,
    health: Callable[[], Health],
    *,
    guard: Callable[[], None] = lambda: None,
) -> None:
    """``GET /metrics`` (``registry``) and ``GET /healthz`` (``health()``) on ``app``;
    ``guard()`` runs first and raises to refuse."""

    @app.get(METRICS_PATH, endpoint="metrics")
    async def metrics() -> Response:
        guard()
        return metrics_response(registry)

    @app.get(HEALTH_PATH, endpoint="healthz")
    async def healthz() -> Response:
        guard()
        return health_response(health())


def direct_loopback(remote_addr: str | None, headers: Headers) -> bool:
    """Whether a request comes from this machine itself: a loopback peer address and no
    header a forwarding proxy adds (a tunnel's agent also connects from loopback)."""
    try:
        loopback = ipaddress.ip_address(remote_addr or "").is_loopback
    except ValueError:
        return False
    return loopback and not any(header in headers for header in FORWARDING_HEADERS)
