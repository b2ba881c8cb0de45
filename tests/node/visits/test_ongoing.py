"""The visits in progress: whether we are in one, and whether one with a partner began
since a moment (what that partner did then belonged to the visit)."""

from __future__ import annotations

from node.visits.contracts import Partner
from node.visits.ongoing import PARTNERS_KEPT, OngoingVisits

REX = Partner("12D3KooWRex", "Rex")


def test_a_visit_is_in_progress_while_tracked_and_its_start_is_remembered() -> None:
    ongoing = OngoingVisits()
    assert not ongoing.in_visit()
    assert not ongoing.visited_since(REX.peer_id, 0)
    with ongoing.track("v" * 32, "host", REX, started_ms=5_000):
        assert ongoing.in_visit()
    assert not ongoing.in_visit()
    assert ongoing.visited_since(REX.peer_id, 5_000)
    assert ongoing.visited_since(REX.peer_id, 1_000)
    assert not ongoing.visited_since(REX.peer_id, 5_001)
    assert not ongoing.visited_since("12D3KooWAnn", 0)


def test_only_the_newest_partners_are_remembered() -> None:
    ongoing = OngoingVisits()
    for n in range(PARTNERS_KEPT + 1):
        with ongoing.track(f"{n:032x}", "guest", Partner(f"peer{n}", "P"), started_ms=n):
            pass
    assert not ongoing.visited_since("peer0", 0)
    assert ongoing.visited_since(f"peer{PARTNERS_KEPT}", PARTNERS_KEPT)
