"""How a visit ends, between two :class:`VisitSession` s over an in-memory stream pair
(real envelopes, SQLite memory, a scripted voice): early, when a goodbye was said and
answered; and when the owner asks, on our turn (the engine call still writing our line is
cancelled) or on the partner's (its line is taken first). Both sides sign the same
transcript and say why the visit ended."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.visits.contracts import VisitResult
from node.visits.ongoing import NotVisiting
from tests.support.visit_sessions import Side, sides, visit
from tests.support.waiting import wait_until_async

WAIT_S = 10.0


def ended(side: Side) -> dict[str, object]:
    (event,) = side.events("visit_ended")
    return event


def both_signed(ours: VisitResult, theirs: VisitResult | None) -> None:
    assert theirs is not None
    assert ours.transcript is not None and ours.transcript == theirs.transcript
    assert ours.receipt is not None and theirs.receipt is not None


async def test_an_answered_goodbye_ends_the_visit_early_on_both_sides(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host", max_turns=12) as (guest, host):
        host.voice.script = {5: "What a lovely talk. Take care, see you soon!"}
        ours, theirs = await visit(guest, host)
        both_signed(ours, theirs)
        assert theirs is not None
        # Turn 5 said goodbye, the guest answered it (turn 6), the host saw it off.
        assert len(ours.lines) == 7 and host.voice.said == 3
        assert (theirs.outcome, theirs.reason) == ("completed", "goodbye")
        assert (ours.outcome, ours.reason) == ("ended_by_partner", "goodbye")
        assert ended(host)["reason"] == ended(guest)["reason"] == "goodbye"
        assert (ended(host)["ended_by"], ended(guest)["ended_by"]) == ("me", "partner")
        (row,) = await guest.memory.visits()
        assert (row.outcome, row.turns) == ("ended_by_partner", 7)
        (relation,) = await host.memory.relations()
        assert relation.completed_count == 1  # a natural end is a completed visit


async def test_without_a_goodbye_the_budget_ends_it(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host", max_turns=6) as (guest, host):
        host.voice.script = {5: "Nice to see you again! I would love to see you try my bread."}
        ours, theirs = await visit(guest, host)
        both_signed(ours, theirs)
        assert len(ours.lines) == 6
        assert ended(host)["reason"] == ended(guest)["reason"] == "max_turns"


async def test_the_owner_ends_a_visit_on_our_turn_without_waiting_for_the_engine(
    tmp_path: Path,
) -> None:
    async with sides(tmp_path, "Guest", "Host") as (guest, host):
        host.voice.slow_s = 3600.0  # the host's engine would never finish turn 1
        results: list[tuple[VisitResult, VisitResult | None]] = []

        async def run_visit() -> None:
            results.append(await visit(guest, host, turns=8))

        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_visit)
                await wait_until_async(lambda: host.voice.said == 1, WAIT_S, "host speaking")
                (listed,) = host.session.ongoing.listing()
                assert (listed["role"], listed["ending"]) == ("host", False)
                (ending,) = host.session.end()  # none named: every visit in progress
                assert ending.end_asked and host.session.ongoing.listing()[0]["ending"]
                await ending.ended.wait()
                assert ending.result is not None and ending.result.reason == "owner"
        ((ours, theirs),) = results
        both_signed(ours, theirs)
        assert [line.turn for line in ours.lines] == [0]  # nothing half-written was said
        assert (ended(host)["reason"], ended(host)["ended_by"]) == ("owner", "me")
        assert (ended(guest)["reason"], ended(guest)["ended_by"]) == ("owner", "partner")
        assert ours.outcome == "ended_by_partner"
        (asked,) = host.events("visit_ending")
        assert (asked["visit"], asked["reason"]) == (ours.visit, "owner")
        assert host.session.ongoing.listing() == []


async def test_the_owner_ends_a_visit_after_the_partners_line(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host") as (guest, host):
        guest.voice.slow_s = 0.5
        results: list[tuple[VisitResult, VisitResult | None]] = []

        async def run_visit() -> None:
            results.append(await visit(guest, host, turns=8))

        with trio.fail_after(WAIT_S):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_visit)
                # The guest is writing turn 2: only it may speak now, so the host waits.
                await wait_until_async(lambda: guest.voice.said == 1, WAIT_S, "guest speaking")
                (listed,) = host.session.ongoing.listing()
                host.session.end(str(listed["visit"]))
        ((ours, theirs),) = results
        both_signed(ours, theirs)
        assert [line.text for line in ours.lines] == [
            "Guest says hello",
            "Host line 1",
            "Guest line 2",  # the partner's line is taken, then the farewell goes out
        ]
        assert host.voice.said == 1
        assert ended(guest)["reason"] == "owner"
        (row,) = await host.memory.visits()
        assert (row.outcome, row.turns) == ("completed", 3)


async def test_ending_a_visit_that_is_not_in_progress_is_a_clear_error(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host") as (guest, host):
        with pytest.raises(NotVisiting, match="no visit is in progress"):
            host.session.end()
        ours, _ = await visit(guest, host, turns=2)
        with pytest.raises(NotVisiting, match=f"visit {ours.visit} is not in progress"):
            host.session.end(ours.visit)
        assert host.events("visit_ending") == []


async def test_a_node_stopping_mid_visit_records_it_as_interrupted(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host") as (guest, host):
        host.voice.slow_s = 3600.0
        with trio.move_on_after(WAIT_S) as stopping:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(visit, guest, host)
                await wait_until_async(lambda: host.voice.said == 1, WAIT_S, "host speaking")
                nursery.cancel_scope.cancel()  # Ctrl-C: every task of the node is cancelled
        assert not stopping.cancelled_caught
        outcomes = {v.role: v.outcome for side in (guest, host) for v in await side.memory.visits()}
        assert outcomes == {"guest": "interrupted", "host": "interrupted"}
