"""A running bridge's ``/metrics`` and ``/healthz`` over real HTTP after real traffic (a
legacy participant's visit to a libp2p character, refusals), parsed as Prometheus parses
them; who may scrape: this machine only, not through a proxy, unless the operator passes
``--metrics-public`` (then the community token, like every route)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from bridge.problems import PROBLEM_JSON, TYPE_BASE
from tests.support.bridge_process import TOKEN, BridgeProcess, bridge_beside
from tests.support.legacy_participant import legacy_participant
from tests.support.metrics import TEXT_FORMAT, Scrape
from tests.support.visit_party import in_thread, open_party

pytestmark = pytest.mark.timeout(300)

PROXIED = {"X-Forwarded-For": "203.0.113.5"}


def fetch(bridge: BridgeProcess, path: str, **headers: str) -> requests.Response:
    """A request with only the headers given (no community token unless given)."""
    return requests.get(f"{bridge.url}{path}", headers=headers, timeout=30)


def scrape(bridge: BridgeProcess, **headers: str) -> Scrape:
    answer = fetch(bridge, "/metrics", **headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"] == TEXT_FORMAT
    return Scrape(answer.text)


async def test_the_bridge_counts_its_traffic_for_this_machine_only(tmp_path: Path) -> None:
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina")
        async with bridge_beside(mina, tmp_path) as bridge:
            with legacy_participant() as url:
                visit = await in_thread(
                    bridge.post,
                    f"/characters/{mina.node.peer_id}/visit",
                    {"visitor": {"name": "Zundamon", "url": url}, "message": "こんにちは"},
                )
            assert visit.status_code == 200, visit.text
            assert (await in_thread(fetch, bridge, "/directory")).status_code == 401
            invalid = await in_thread(bridge.post, "/register", {"name": ""})
            assert invalid.status_code == 422

            seen = await in_thread(scrape, bridge)
            health = await in_thread(fetch, bridge, "/healthz")
            proxied = [
                await in_thread(fetch, bridge, path, **PROXIED) for path in ("/metrics", "/healthz")
            ]
            again = await in_thread(scrape, bridge)

    assert seen.type_of("roomverse_bridge_requests") == "counter"
    assert seen.labels_of("roomverse_bridge_requests") == {"route", "status"}
    assert seen.type_of("roomverse_bridge_refusals") == "counter"
    requests_total = "roomverse_bridge_requests_total"
    assert seen.value(requests_total, route="visit", status="200") == 1
    assert seen.value(requests_total, route="directory", status="401") == 1
    assert seen.value(requests_total, route="register", status="422") == 1
    listed = seen.value(requests_total, route="directory", status="200")
    assert listed is not None and listed >= 1, "bridge_beside waited on the listing"
    assert seen.value("roomverse_bridge_refusals_total", reason="unauthorized") == 1
    assert seen.value("roomverse_bridge_refusals_total", reason="invalid-request") == 1
    # The bridge's node beside: a spectator, labelled with its name; no agent to count.
    peers = seen.value("roomverse_peers_connected", character="bridge")
    assert peers is not None and peers >= 1
    entries = seen.value("roomverse_directory_entries", character="bridge")
    assert entries is not None and entries >= 2, "Mina and the bridge itself"
    assert seen.type_of("roomverse_engine_calls") == "counter"
    assert seen.total("roomverse_engine_calls_total") == 0

    assert health.status_code == 200, health.text
    assert health.json()["status"] == "ok" and health.json()["checks"] == {"listening": True}

    for refused in proxied:
        assert refused.status_code == 403, refused.text
        assert refused.headers["Content-Type"] == PROBLEM_JSON
        assert refused.json()["type"] == f"{TYPE_BASE}local-only"
    assert again.value("roomverse_bridge_refusals_total", reason="local-only") == 2
    assert again.value(requests_total, route="metrics", status="200") == 1, "the first scrape"
    assert again.value(requests_total, route="metrics", status="403") == 1


async def test_with_metrics_public_a_scrape_needs_the_token(tmp_path: Path) -> None:
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina")
        async with bridge_beside(mina, tmp_path, "--metrics-public") as bridge:
            anonymous = await in_thread(fetch, bridge, "/metrics")
            wrong = await in_thread(fetch, bridge, "/metrics", Authorization="Bearer wrong")
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            through_proxy = await in_thread(scrape, bridge, **bearer, **PROXIED)
            health = await in_thread(fetch, bridge, "/healthz", **bearer, **PROXIED)

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert anonymous.json()["type"] == f"{TYPE_BASE}unauthorized"
    assert through_proxy.value("roomverse_bridge_refusals_total", reason="unauthorized") == 2
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
