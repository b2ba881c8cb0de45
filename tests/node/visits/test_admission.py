"""The host's decision at the door and the per-visitor rate limit, as pure code."""

from __future__ import annotations

from node.config import VisitSettings
from node.visits.admission import KnockRateLimiter, decide_knock
from registry_crdt import Status


def decide(settings: VisitSettings, **facts: object) -> tuple[bool, str, bool]:
    base: dict[str, object] = {
        "status": Status.ONLINE,
        "known_visitor": False,
        "within_rate": True,
        "busy": False,
        "may_reply": True,
        "requested_turns": 0,
    }
    base.update(facts)
    decision = decide_knock(settings, **base)  # type: ignore[arg-type]
    return decision.welcome, decision.reason, decision.answering_machine


def test_host_decision_follows_policy_status_rate_and_budget() -> None:
    open_ = VisitSettings()
    assert decide(open_) == (True, "", False)
    assert decide(VisitSettings(policy="ask-owner")) == (False, "closed", False)
    assert decide(VisitSettings(policy="friends")) == (False, "unknown_visitor", False)
    assert decide(VisitSettings(policy="friends"), known_visitor=True)[0]
    assert decide(open_, within_rate=False) == (False, "rate_limited", False)
    assert decide(open_, status=Status.AWAY) == (False, "away", True)
    assert decide(open_, status=Status.ASLEEP, may_reply=False) == (False, "asleep", False)
    assert decide(open_, busy=True) == (False, "busy", False)
    assert decide(open_, may_reply=False) == (False, "resting", False)
    turns = decide_knock(
        VisitSettings(max_turns=8),
        status=Status.ONLINE,
        known_visitor=False,
        within_rate=True,
        busy=False,
        may_reply=True,
        requested_turns=3,
    )
    assert turns.max_turns == 3


def test_rate_limit_is_per_visitor_and_slides() -> None:
    limiter = KnockRateLimiter(per_hour=2)
    a, b = b"a", b"b"
    assert limiter.allow(a, 0) and limiter.allow(a, 10)
    assert not limiter.allow(a, 20)
    assert limiter.allow(b, 20)
    assert limiter.allow(a, 3600.5)
