"""Lending is a capability of one visit: its partner, while it is open, within quotas."""

from __future__ import annotations

from node.souvenirs.capability import HOUR_MS, Lending, Quotas

VISIT = "ab" * 16
OTHER_VISIT = "cd" * 16
KAI = "12D3KooWKai"
REX = "12D3KooWRex"


def test_the_partner_may_call_while_the_visit_is_open() -> None:
    lending = Lending()
    lending.open(VISIT, KAI)
    assert lending.check_call(VISIT, KAI, 1, lent=True, now_ms=0) is None
    assert lending.check_list(VISIT, KAI, 2) is None


def test_calls_outside_the_visit_by_someone_else_or_after_it_are_refused() -> None:
    lending = Lending()
    assert lending.check_call(VISIT, KAI, 1, lent=True, now_ms=0) == "no_visit"
    lending.open(VISIT, KAI)
    assert lending.check_call(VISIT, REX, 2, lent=True, now_ms=0) == "not_partner"
    assert lending.check_call(OTHER_VISIT, KAI, 3, lent=True, now_ms=0) == "no_visit"
    lending.close(VISIT)
    assert lending.check_call(VISIT, KAI, 4, lent=True, now_ms=0) == "no_visit"
    assert lending.check_list(VISIT, KAI, 5) == "no_visit"


def test_a_request_id_is_used_once_and_a_tool_not_lent_is_refused() -> None:
    lending = Lending()
    lending.open(VISIT, KAI)
    assert lending.check_call(VISIT, KAI, 1, lent=True, now_ms=0) is None
    assert lending.check_call(VISIT, KAI, 1, lent=True, now_ms=0) == "replayed"
    assert lending.check_call(VISIT, KAI, 2, lent=False, now_ms=0) == "not_lent"


def test_the_per_visit_quota_then_the_hourly_quota() -> None:
    lending = Lending(Quotas(per_visit=2, per_hour=3))
    lending.open(VISIT, KAI)
    results = [lending.check_call(VISIT, KAI, n, lent=True, now_ms=n) for n in range(3)]
    assert results == [None, None, "quota_visit"]
    lending.close(VISIT)
    lending.open(OTHER_VISIT, KAI)
    results = [lending.check_call(OTHER_VISIT, KAI, n, lent=True, now_ms=10 + n) for n in range(2)]
    assert results == [None, "quota_hour"]
    # An hour after the first calls, the hourly quota has room again.
    assert lending.check_call(OTHER_VISIT, KAI, 9, lent=True, now_ms=HOUR_MS + 5) is None


def test_refused_calls_do_not_spend_the_quota() -> None:
    lending = Lending(Quotas(per_visit=1, per_hour=1))
    lending.open(VISIT, KAI)
    assert lending.check_call(VISIT, KAI, 1, lent=False, now_ms=0) == "not_lent"
    assert lending.check_call(VISIT, KAI, 2, lent=True, now_ms=0) is None
