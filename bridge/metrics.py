"""The bridge's own counts (requests by route and status, refusals by reason) and their
metric families, beside its node's (:func:`node.node_collector`) on ``/metrics``.

Who may scrape: ``/metrics`` and ``/healthz`` answer only this machine (a loopback peer
and no header a forwarding proxy adds: ngrok's agent also connects from loopback) unless
the operator passes ``--metrics-public``; then they pass the gate like every route
(the community token, the rate limits).
"""

from __future__ import annotations

from collections import Counter
from typing import Final

from node import Family

ROUTES: Final = {
    "register": "register",
    "directory": "directory",
    "manifest": "manifest",
    "root_manifest": "manifest",
    "visit": "visit",
    "root_visit": "visit",
    "chat": "chat",
    "root_chat": "chat",
    "agent_card": "agent_card",
    "metrics": "metrics",
    "healthz": "healthz",
}
"""Endpoint → the ``route`` label; anything else (no route matched) is ``unmatched``."""
LOCAL_ROUTES: Final = frozenset({"metrics", "healthz"})
"""Answered to this machine only, unless ``--metrics-public``."""


def route_of(endpoint: str | None) -> str:
    return ROUTES.get(endpoint or "", "unmatched")


class BridgeCounts:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        """(route label, HTTP status) → responses."""
        self.refusals: Counter[str] = Counter()
        """Problem type slug (``unauthorized``, ``rate-limited``...) → 4xx answers."""

    def answered(self, endpoint: str | None, status: int) -> None:
        self.requests[(route_of(endpoint), str(status))] += 1

    def refused(self, slug: str) -> None:
        self.refusals[slug] += 1


def bridge_families(counts: BridgeCounts) -> list[Family]:
    return [
        Family(
            "roomverse_bridge_requests_total",
            "HTTP requests answered, by route and status code.",
            "counter",
            lambda: {key: float(n) for key, n in counts.requests.items()},
            ("route", "status"),
        ),
        Family(
            "roomverse_bridge_refusals_total",
            "Requests refused (4xx problem+json), by the problem's type "
            "(unauthorized, rate-limited, invalid-request, not-found...).",
            "counter",
            lambda: {(slug,): float(n) for slug, n in counts.refusals.items()},
            ("reason",),
        ),
    ]
