"""The dashboard's ``/metrics`` and ``/healthz`` over real HTTP, parsed as Prometheus
parses them: a node in this process whose engine fails until its breaker opens, and a
real visit between two node processes on fake engines.

``/metrics`` needs the dashboard token (the header, ``Authorization: Bearer`` as
Prometheus sends it, or ``?token=``); ``/healthz`` answers without it (ok or degraded,
nothing private), behind the same ``Host`` check as everything else.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from node.engine.engines import Purpose
from node.engine.errors import EnginesUnavailable
from node.engine.messages import ChatMessage
from tests.support.dashboard import (
    TOKEN_HEADER,
    dashboard_in_process,
    dashboard_url_of,
    split_url,
    visited_party,
)
from tests.support.metrics import TEXT_FORMAT, Scrape
from tests.support.visit_party import in_thread
from tests.support.waiting import wait_until_async

WAIT_S = 30.0
NODE_FAMILIES = {
    "roomverse_peers_connected": "gauge",
    "roomverse_envelopes_received": "counter",
    "roomverse_envelopes_rejected": "counter",
    "roomverse_envelopes_dropped": "counter",
    "roomverse_catch_up_syncs": "counter",
    "roomverse_directory_entries": "gauge",
    "roomverse_directory_present_entries": "gauge",
    "roomverse_directory_syncs": "counter",
    "roomverse_directory_sync_failures": "counter",
    "roomverse_visits": "counter",
    "roomverse_engine_ready": "gauge",
    "roomverse_engine_calls": "counter",
    "roomverse_engine_call_duration_seconds": "histogram",
    "roomverse_engine_tokens": "counter",
    "roomverse_engine_breaker_state": "gauge",
    "roomverse_engine_budget_tier": "gauge",
    "roomverse_engine_budget_spent_tokens": "gauge",
    "roomverse_engine_budget_daily_tokens": "gauge",
    "roomverse_souvenir_calls": "counter",
}
"""Every family a character's node exposes (a counter by its name without ``_total``,
as the text parser names families), and its type."""


async def scrape(client: httpx.AsyncClient, **headers: str) -> Scrape:
    answer = await client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == TEXT_FORMAT
    return Scrape(answer.text)


async def test_metrics_and_health_follow_an_engine_until_its_breaker_opens(
    tmp_path: Path,
) -> None:
    async with (
        dashboard_in_process(tmp_path) as served,
        httpx.AsyncClient(base_url=served.base) as client,
    ):
        agent = served.node.agent
        assert agent is not None
        await wait_until_async(lambda: agent.engines is not None, WAIT_S, "engines open")
        bearer = {"Authorization": f"Bearer {served.token}"}

        health = await client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json() == {
            "status": "ok",
            "checks": {"listening": True, "engine": True, "budget": True},
            "peers": 0,
            "budget_tier": "normal",
            "engines_open": 0,
        }
        first = await scrape(client, **bearer)
        assert {name: first.type_of(name) for name in NODE_FAMILIES} == NODE_FAMILIES
        assert first.value("roomverse_engine_ready", character="Mina") == 1
        closed = {"engine": "none", "state": "closed"}
        assert first.value("roomverse_engine_breaker_state", **closed) == 1
        assert first.value("roomverse_engine_budget_tier", tier="normal") == 1
        assert first.value("roomverse_engine_budget_tier", tier="stopped") == 0
        assert first.value("roomverse_engine_calls_total") is None, "no call yet"
        assert first.labels_of("roomverse_envelopes_dropped") == {"character", "where"}

        # The engine (the discard port) refuses each call: three failures open its breaker.
        engines = agent.engines
        assert engines is not None
        for _ in range(3):
            with pytest.raises(EnginesUnavailable):
                await engines.complete(
                    [ChatMessage("user", "hello?")], max_tokens=8, purpose=Purpose.REPLY
                )
        failed = await scrape(client, **{TOKEN_HEADER: served.token})
        calls = {"engine": "none", "result": "connection"}
        assert failed.value("roomverse_engine_calls_total", **calls) == 3
        duration = "roomverse_engine_call_duration_seconds"
        assert failed.value(f"{duration}_count", engine="none") == 3
        assert failed.value(f"{duration}_bucket", engine="none", le="+Inf") == 3
        assert failed.value("roomverse_engine_breaker_state", **closed) == 0
        opened = {"engine": "none", "state": "open"}
        assert failed.value("roomverse_engine_breaker_state", **opened) == 1
        assert failed.value("roomverse_engine_tokens_total") is None, "nothing answered"

        degraded = await client.get("/healthz")
        assert degraded.status_code == 503
        assert degraded.json()["status"] == "degraded"
        assert degraded.json()["checks"]["engine"] is False
        assert degraded.json()["engines_open"] == 1

        # Who may not scrape: no token, a wrong one, a name that is not loopback's.
        assert (await client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 403
        assert (await client.get("/metrics", params={"token": "nope"})).status_code == 403
        rebound = {"Host": "evil.example", **bearer}
        assert (await client.get("/metrics", headers=rebound)).status_code == 403
        assert (await client.get("/healthz", headers={"Host": "evil.example"})).status_code == 403
        assert (await client.get("/metrics", params={"token": served.token})).status_code == 200


async def test_a_visit_moves_the_hosts_metrics(tmp_path: Path) -> None:
    async with visited_party(tmp_path) as (_party, mina, _bo):
        base, token = split_url(await in_thread(dashboard_url_of, mina.node))
        async with httpx.AsyncClient(base_url=base) as client:
            after = await scrape(client, Authorization=f"Bearer {token}")
            served = len(mina.fake.requests)
            health = await client.get("/healthz")

    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert health.json()["peers"] >= 1
    assert after.value("roomverse_visits_total", role="host", outcome="completed") == 1
    assert after.total("roomverse_visits_total") == 1
    # The engine is named after its preset when the character file names none.
    engine = {"character": "Mina", "engine": "openai-compatible"}
    answered = after.value("roomverse_engine_calls_total", result="ok", **engine)
    # Her turns and her summary of the visit (visited_party waited on it): every request
    # her fake engine served.
    assert answered == served >= 2, (answered, served)
    assert after.total("roomverse_engine_calls_total") == answered, "nothing failed"
    duration = "roomverse_engine_call_duration_seconds"
    assert after.value(f"{duration}_count", **engine) == answered
    tokens = after.value("roomverse_engine_tokens_total", **engine)
    assert tokens is not None and tokens > 0
    spent = after.value("roomverse_engine_budget_spent_tokens")
    assert spent == tokens, "today's spending is what the engines spent since start"
    assert after.value("roomverse_engine_breaker_state", state="closed", **engine) == 1
    assert after.value("roomverse_engine_budget_tier", tier="normal") == 1
    peers = after.value("roomverse_peers_connected")
    assert peers is not None and peers >= 1
    received = after.value("roomverse_envelopes_received_total")
    assert received is not None and received > 0, "Bo's speech came by gossip"
    entries = after.value("roomverse_directory_entries")
    assert entries is not None and entries >= 2
    assert after.value("roomverse_souvenir_calls_total", side="lent", outcome="ok") == 0
