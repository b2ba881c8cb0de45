"""Metric families read at scrape time, as Prometheus reads them: exposed by a registry of
their own and parsed back with ``prometheus_client``'s text parser; the pure counters
behind them (engine latency buckets, visit outcomes) and the guards' helpers."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client.exposition import generate_latest
from werkzeug.datastructures import Headers

from node.dashboard.guard import bearer_token
from node.engine.call_stats import EngineCallStats, LatencyBuckets
from node.metrics import (
    Family,
    FirehoseReading,
    Histogram,
    ReadingsCollector,
    direct_loopback,
    firehose_families,
    metrics_registry,
    one,
)
from node.visits.tally import VisitTally, outcome_label
from tests.support.metrics import Scrape


def scraped(*collectors: ReadingsCollector) -> Scrape:
    return Scrape(generate_latest(metrics_registry(*collectors)).decode())


def test_families_are_read_at_each_scrape_with_their_types_and_labels() -> None:
    rejected: Counter[str] = Counter()
    stats = EngineCallStats()
    collector = ReadingsCollector(
        [
            Family(
                "roomverse_test_rejected_total",
                "Rejected.",
                "counter",
                lambda: {(k,): float(v) for k, v in rejected.items()},
                ("reason",),
            ),
            Family("roomverse_test_peers", "Peers.", "gauge", lambda: one(len(rejected))),
            Histogram(
                "roomverse_test_call_duration_seconds",
                "Latency.",
                lambda: {(name,): b for name, b in stats.latency.items()},
                ("engine",),
            ),
        ],
        {"character": "Mina"},
    )
    registry = metrics_registry(collector)
    before = Scrape(generate_latest(registry).decode())
    assert before.type_of("roomverse_test_rejected") == "counter"
    assert before.type_of("roomverse_test_peers") == "gauge"
    assert before.type_of("roomverse_test_call_duration_seconds") == "histogram"
    assert before.value("roomverse_test_peers", character="Mina") == 0
    assert before.value("roomverse_test_rejected_total") is None, "no reason seen yet"

    rejected["bad_signature"] += 2
    stats.record("local", "ok", 0.3, tokens=40)
    stats.record("local", "timeout", 30.0)
    after = Scrape(generate_latest(registry).decode())
    assert after.value("roomverse_test_rejected_total", reason="bad_signature") == 2
    assert after.labels_of("roomverse_test_rejected") == {"character", "reason"}
    assert after.value("roomverse_test_peers") == 1
    hist = "roomverse_test_call_duration_seconds"
    assert after.value(f"{hist}_count", engine="local") == 2
    assert after.value(f"{hist}_sum", engine="local") == pytest.approx(30.3)
    assert after.value(f"{hist}_bucket", engine="local", le="0.25") == 0
    assert after.value(f"{hist}_bucket", engine="local", le="0.5") == 1
    assert after.value(f"{hist}_bucket", engine="local", le="30.0") == 2, "le is inclusive"
    assert after.value(f"{hist}_bucket", engine="local", le="+Inf") == 2
    assert stats.calls == {("local", "ok"): 1, ("local", "timeout"): 1}
    assert stats.tokens == {"local": 40}


def test_registering_reads_nothing_and_each_app_has_its_own_registry() -> None:
    def unreadable() -> dict[tuple[str, ...], float]:
        raise AssertionError("read at registration")

    family = Family("roomverse_test_things", "Things.", "gauge", unreadable)
    # Two registries with the same families (two nodes in one process) do not collide.
    metrics_registry(ReadingsCollector([family], {"character": "Mina"}))
    metrics_registry(ReadingsCollector([family], {"character": "Bo"}))


def test_latency_buckets_count_every_duration_once() -> None:
    buckets = LatencyBuckets(bounds=(1.0, 2.0))
    for seconds in (0.5, 1.0, 1.5, 2.0, 9.0):
        buckets.observe(seconds)
    assert buckets.cumulative() == [(1.0, 2), (2.0, 4), (float("inf"), 5)]
    assert buckets.sum_s == pytest.approx(14.0)


def test_the_firehose_families_read_its_hub() -> None:
    reading = FirehoseReading(viewers=3, frames=120, slow_consumer_drops=1)
    scrape = scraped(ReadingsCollector(firehose_families(lambda: reading)))
    assert scrape.type_of("roomverse_firehose_viewers") == "gauge"
    assert scrape.value("roomverse_firehose_viewers") == 3
    assert scrape.type_of("roomverse_firehose_frames") == "counter"
    assert scrape.value("roomverse_firehose_frames_total") == 120
    assert scrape.value("roomverse_firehose_slow_consumer_drops_total") == 1


@pytest.mark.parametrize(
    ("outcome", "label"),
    [
        ("completed", "completed"),
        ("ended_by_partner", "ended_by_partner"),
        ("partner_vanished", "partner_vanished"),
        ("interrupted", "interrupted"),
        ("left_message", "left_message"),
        ("declined:busy", "declined"),
        ("failed:ValueError", "failed"),
        ("failed:bad_signature", "failed"),
        ("whatever a peer made up", "other"),
    ],
)
def test_visit_outcomes_become_labels_from_a_fixed_set(outcome: str, label: str) -> None:
    assert outcome_label(outcome) == label
    tally = VisitTally()
    tally.record("host", outcome)
    assert tally.ended == {("host", label): 1}


def test_only_this_machine_not_through_a_proxy_is_local() -> None:
    assert direct_loopback("127.0.0.1", Headers())
    assert direct_loopback("::1", Headers())
    assert not direct_loopback("192.168.1.5", Headers())
    assert not direct_loopback(None, Headers())
    assert not direct_loopback("not an address", Headers())
    # ngrok's agent connects from loopback, and says whom for.
    for header in ("X-Forwarded-For", "x-real-ip", "Forwarded", "X-Forwarded-Host"):
        assert not direct_loopback("127.0.0.1", Headers({header: "203.0.113.5"}))


def test_a_bearer_token_is_read_from_authorization() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token("") is None
    assert bearer_token(None) is None
