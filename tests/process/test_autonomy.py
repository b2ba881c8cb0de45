"""Autonomous visits: whom (pure rules), when (the budget tier), and on real nodes."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import pytest

from keys import Identity
from node.agent.autonomy import Candidate, eligible, next_wait_s, pick_weighted, weight
from node.config import AutonomySettings
from node.engine.budget import BudgetTier, policy_for
from registry_crdt import Clock, Entry, Status, make_entry
from registry_crdt.testing import sample_card
from tests.support.visit_party import in_thread, open_party

pytestmark = pytest.mark.timeout(300)

NOW = 1_800_000_000_000
LEASE_MS = 600_000


def entry(
    identity: Identity, status: Status, *, lease_ms: int = LEASE_MS, takes_visits: bool = True
) -> Entry:
    card = sample_card(identity.peer_id_str)
    capabilities = dataclasses.replace(card.capabilities, accepts_visits=takes_visits)
    return make_entry(
        identity,
        dataclasses.replace(card, capabilities=capabilities),
        addrs=(),
        status=status,
        clock=Clock(NOW - 1_000, 0),
        lease_ms=lease_ms,
        now_ms=NOW - 1_000,
    )


def test_only_online_others_that_take_visits_out_of_cooldown_are_eligible() -> None:
    me, online, away, asleep, left, lapsed, cooling, bridge = (
        Identity.generate() for _ in range(8)
    )
    entries = [
        entry(me, Status.ONLINE),
        entry(bridge, Status.ONLINE, takes_visits=False),
        entry(online, Status.ONLINE),
        entry(away, Status.AWAY),
        entry(asleep, Status.ASLEEP),
        entry(left, Status.LEFT),
        entry(lapsed, Status.ONLINE, lease_ms=500),
        entry(cooling, Status.ONLINE),
    ]
    chosen = eligible(
        entries,
        me=me.peer_id,
        now_ms=NOW,
        last_visited_ms={cooling.peer_id_str: NOW - 10_000},
        cooldown_s=60,
    )
    assert [e.peer for e in chosen] == [online.peer_id]
    later = eligible(
        entries,
        me=me.peer_id,
        now_ms=NOW + 61_000,
        last_visited_ms={cooling.peer_id_str: NOW - 10_000},
        cooldown_s=60,
    )
    assert {e.peer for e in later} == {online.peer_id, cooling.peer_id}


def test_friends_and_strangers_are_favoured_over_acquaintances_seen_often() -> None:
    stranger = Candidate("a", "A", "", None, 0)
    regular = Candidate("b", "B", "", 20, 12)
    friend = Candidate("c", "C", "", 80, 12)
    assert weight(stranger) > weight(regular)
    assert weight(friend) > weight(regular)
    rng = random.Random(7)
    picks = [pick_weighted([stranger, regular, friend], rng) for _ in range(3000)]
    share = {c.peer_id: picks.count(c) / len(picks) for c in (stranger, regular, friend)}
    assert share["a"] > share["b"] and share["c"] > share["b"]
    assert pick_weighted([], rng) is None


def test_the_budget_tier_stretches_then_stops_autonomy() -> None:
    settings = AutonomySettings(interval_s=100.0, jitter=0.2)
    rng = random.Random(1)
    waits = {tier: next_wait_s(settings, policy_for(tier), rng) for tier in BudgetTier}
    normal, low = waits[BudgetTier.NORMAL], waits[BudgetTier.LOW]
    assert normal is not None and 80 <= normal <= 120
    assert low is not None and 160 <= low <= 240
    assert waits[BudgetTier.CRITICAL] is None and waits[BudgetTier.STOPPED] is None
    off = AutonomySettings(enabled=False)
    assert next_wait_s(off, policy_for(BudgetTier.NORMAL), rng) is None
    assert math.isinf(policy_for(BudgetTier.CRITICAL).visit_interval_factor)


def autonomous(interval_s: float, cooldown_s: float, **more: object) -> dict[str, object]:
    return {
        "autonomy": {
            "enabled": True,
            "interval_s": interval_s,
            "jitter": 0.0,
            "cooldown_s": cooldown_s,
        },
        **more,
    }


async def test_a_character_visits_someone_online_and_never_an_away_host(tmp_path: Path) -> None:
    async with open_party(tmp_path) as party:
        kai = await party.add("Kai")
        ren = await party.add("Ren")
        assert (await ren.control({"cmd": "set_status", "status": "away"}))["status"] == "away"
        mina = await party.add("Mina", extra=autonomous(1.0, 3600.0))
        events = mina.node

        def ended(ev: list[dict[str, object]]) -> bool:
            return any(e.get("event") == "visit_ended" for e in ev)

        await in_thread(events.wait_until, ended, 60, "an autonomous visit")
        (first,) = events.of("autonomy_visit")
        assert first["target"] == kai.node.peer_id
        (done,) = events.of("visit_ended")
        assert done["outcome"] == "completed" and done["partner"] == kai.node.peer_id
        # Kai is cooling down now and Ren is away: the next rounds find nobody.
        await in_thread(
            events.wait_until,
            lambda ev: any(e.get("event") == "autonomy_idle" for e in ev),
            30,
            "an idle round",
        )
        targets = {e["target"] for e in events.of("autonomy_visit")}
        assert targets == {kai.node.peer_id}
        assert ren.fake.requests == []


async def test_a_spent_budget_pauses_autonomous_visits(tmp_path: Path) -> None:
    async with open_party(tmp_path) as party:
        await party.add("Kai", extra={"visits": {"per_visitor_per_hour": 100}})
        budget = {"daily_tokens": 1500, "low_at": 0.3, "critical_at": 0.6}
        mina = await party.add("Mina", extra=autonomous(1.0, 0.0, budget=budget))

        def paused(ev: list[dict[str, object]]) -> bool:
            return any(
                e.get("event") == "autonomy_paused" and e.get("tier") in ("critical", "stopped")
                for e in ev
            )

        await in_thread(mina.node.wait_until, paused, 90, "autonomy paused by the budget")
        assert len(mina.node.of("autonomy_visit")) >= 1
        status = await mina.control({"cmd": "status"})
        assert status["agent"]["tier"] in ("critical", "stopped")
        assert status["agent"]["engines"]["budget"]["spent"] >= 900
