"""The node's judgement of its own clock (:mod:`node.wire.clock_skew`) and the refusals
that feed it (:mod:`node.wire.rejections`): pure, with a hand-moved clock."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from keys import StaleTimestamp
from keys.errors import BadSignature
from node.events import EventLog
from node.testing import ManualClock
from node.wire.clock_skew import (
    CLEAR_S,
    SAMPLE_MAX_AGE_S,
    SAMPLES_PER_PEER,
    SETTLE_S,
    WARN_S,
    ClockSkew,
    SkewEstimator,
)
from node.wire.rejections import REPEAT_QUIET_S, RejectionLog
from registry_crdt.testing import identities

PEERS = [identity.peer_id for identity in identities(6, seed=31)]
WALL = 1_800_000_000_000


def events_of(stream: io.StringIO, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["event"] == name]


def feed(estimator: SkewEstimator, offsets: dict[int, list[float]], at: float = 0.0) -> None:
    for peer, values in offsets.items():
        for value in values:
            estimator.observe(PEERS[peer], value, at)


def test_median_per_peer_then_across_peers_ignores_an_odd_peer_and_odd_samples() -> None:
    estimator = SkewEstimator()
    # Peer 0's clock is 10 minutes off; peer 1 had one gossip message fetched 8 s late.
    feed(estimator, {0: [-600.0] * 3, 1: [0.1, 8.0, 0.2], 2: [0.0, 0.3], 3: [-0.2]})
    reading = estimator.reading(0.0)
    assert reading.state == "ok"
    assert reading.offset_s is not None and abs(reading.offset_s) < 1
    assert (reading.peers, reading.heard) == (3, 4)
    assert reading.outliers == ((identities(6, seed=31)[0].peer_id_str, -600.0),)
    assert not reading.refused


def test_our_clock_ahead_of_everyone_is_said_with_the_offset() -> None:
    estimator = SkewEstimator()
    feed(estimator, {0: [600.2], 1: [599.8, 600.1], 2: [600.0], 3: [620.0]})
    reading = estimator.reading(0.0)
    assert reading.state == "ahead" and reading.refused
    assert reading.peers == 4  # 620 is within WARN_S of the median: it agrees
    assert reading.message().startswith("your clock is 600 s ahead of your peers (4 of 4 agree)")
    assert "refuse" in reading.message()


def test_with_two_peers_that_disagree_the_one_closer_to_us_wins() -> None:
    estimator = SkewEstimator()
    feed(estimator, {0: [-90.0], 1: [0.5]})
    reading = estimator.reading(0.0)
    assert reading.state == "ok" and reading.offset_s == 0.5


def test_one_peer_only_is_said_with_a_caveat() -> None:
    estimator = SkewEstimator()
    feed(estimator, {0: [-90.0]})
    reading = estimator.reading(0.0)
    assert reading.state == "behind"
    assert reading.message().startswith(
        "your clock is 90 s behind your one peer's (either may be wrong)"
    )


def test_old_samples_and_silent_peers_stop_counting() -> None:
    estimator = SkewEstimator()
    feed(estimator, {0: [100.0], 1: [100.0]}, at=0.0)
    feed(estimator, {2: [0.0]}, at=SAMPLE_MAX_AGE_S)
    reading = estimator.reading(SAMPLE_MAX_AGE_S + 1)
    assert (reading.state, reading.heard, reading.offset_s) == ("ok", 1, 0.0)
    assert estimator.reading(2 * SAMPLE_MAX_AGE_S + 2).state == "unknown"


def test_the_warning_has_hysteresis() -> None:
    estimator = SkewEstimator()
    for offset, state in [
        (WARN_S - 1, "ok"),
        (WARN_S, "ahead"),
        (CLEAR_S + 1, "ahead"),  # still warned until it is clearly fine
        (CLEAR_S - 1, "ok"),
        (-WARN_S, "behind"),
    ]:
        for _ in range(SAMPLES_PER_PEER):  # only this value left in the peer's window
            estimator.observe(PEERS[0], offset, 0.0)
        assert estimator.reading(0.0).state == state, offset


def test_clock_skew_is_emitted_once_per_change_of_state_not_per_message() -> None:
    out = io.StringIO()
    clock = ManualClock()
    skew = ClockSkew(EventLog("json", out), clock=clock, wall_ms=lambda: WALL)
    skew.envelope(PEERS[5], WALL)  # first heard: a peer whose clock is the odd one
    clock.advance(SETTLE_S / 2)
    for _ in range(200):  # a chatty network, our clock 92 s ahead of everyone
        for peer in PEERS[:4]:
            skew.envelope(peer, WALL - 92_000)
        clock.advance(0.1)
    said = events_of(out, "clock_skew")
    assert len(said) == 1
    assert said[0]["state"] == "ahead" and said[0]["offset_s"] == 92
    assert (said[0]["peers"], said[0]["heard"]) == (4, 5)
    assert said[0]["refused"] is False
    assert "your clock is 92 s ahead of your peers" in said[0]["message"]
    # Set right: one more event, then silence.
    for _ in range(SAMPLES_TO_FLUSH):
        for peer in PEERS[:4]:
            skew.envelope(peer, WALL)
        clock.advance(1.0)
    said = events_of(out, "clock_skew")
    assert [e["state"] for e in said] == ["ahead", "ok"]
    assert skew.reading().to_json()["state"] == "ok"


SAMPLES_TO_FLUSH = 40


def test_nothing_is_said_while_the_clock_agrees() -> None:
    out = io.StringIO()
    clock = ManualClock()
    skew = ClockSkew(EventLog("json", out), clock=clock, wall_ms=lambda: WALL)
    for _ in range(20):
        skew.envelope(PEERS[0], WALL - 300)
        clock.advance(1.0)
    assert events_of(out, "clock_skew") == []
    assert skew.reading().message().startswith("your clock agrees with your peers'")


# --- refusals ---------------------------------------------------------------------------


def stale(sender: bytes, ahead_ms: int) -> StaleTimestamp:
    return StaleTimestamp("ts out of window", sender=sender, ahead_ms=ahead_ms)


def test_a_peer_whose_clock_is_off_is_refused_in_one_clear_line_not_a_flood() -> None:
    out = io.StringIO()
    clock = ManualClock()
    events = EventLog("json", out)
    skew = ClockSkew(events, clock=clock, wall_ms=lambda: WALL)
    log = RejectionLog(events, clock, clock_skew=skew)
    for _ in range(500):  # its heartbeats, actions and syncs, refused for 5 minutes
        log.reject(PEERS[0], "roomverse/1/directory", stale(PEERS[0], 600_000))
        log.reject(PEERS[1], "/roomverse/sync/1.0.0", stale(PEERS[1], -601_000))
        clock.advance(0.6)
    rejected = events_of(out, "rejected")
    assert [(e["peer_id"], e["ahead_s"]) for e in rejected] == [
        (identities(6, seed=31)[0].peer_id_str, 600),
        (identities(6, seed=31)[1].peer_id_str, -601),
    ]
    assert "their clock is 600 s ahead of ours" in rejected[0]["detail"]
    assert "counted, not logged" in rejected[0]["detail"]
    assert log.by_reason["stale_timestamp"] == 1000
    # The signed timestamps counted into our own judgement (two peers, 20 minutes apart).
    assert skew.reading().heard == 2
    # After the quiet period, one line again, with the count of those held back.
    clock.advance(REPEAT_QUIET_S)
    log.reject(PEERS[0], "roomverse/1/directory", stale(PEERS[0], 600_000))
    again = events_of(out, "rejected")[-1]
    assert again["suppressed"] == 499


def test_other_refusals_are_still_reported_each_time() -> None:
    out = io.StringIO()
    log = RejectionLog(EventLog("json", out), ManualClock())
    for _ in range(3):
        log.reject(PEERS[0], "roomverse/1/actions", BadSignature("forged"))
    assert len(events_of(out, "rejected")) == 3


@pytest.mark.parametrize("reason", ["stale_timestamp", "schema"])
def test_a_refusal_from_a_peer_is_said_once_per_peer_and_reason(reason: str) -> None:
    out = io.StringIO()
    clock = ManualClock()
    log = RejectionLog(EventLog("json", out), clock)
    for _ in range(20):
        log.peer_refused("12D3KooWpeer", "/roomverse/sync/1.0.0", reason, "why", 600.4)
        clock.advance(5.0)
    (said,) = events_of(out, "sync_refused")
    assert (said["reason"], said["detail"], said["offset_s"]) == (reason, "why", 600)


def test_a_timestamp_refusal_is_not_said_by_a_node_whose_clock_agrees_with_the_rest() -> None:
    out = io.StringIO()
    clock = ManualClock()
    events = EventLog("json", out)
    skew = ClockSkew(events, clock=clock, wall_ms=lambda: WALL)
    log = RejectionLog(events, clock, clock_skew=skew)
    for peer in PEERS[:3]:
        skew.envelope(peer, WALL)
    # The odd peer (10 minutes ahead) refuses our syncs: its clock, not ours.
    log.peer_refused("12D3KooWodd", "/roomverse/sync/1.0.0", "stale_timestamp", "x", -600.0)
    assert events_of(out, "sync_refused") == []
    assert log.refused_by_peers["stale_timestamp"] == 1


def test_a_peers_own_offset_comes_from_exchanges_with_it_only() -> None:
    clock = ManualClock()
    skew = ClockSkew(EventLog("json", io.StringIO()), clock=clock, wall_ms=lambda: WALL)
    # Gossip from peer 0, one message fetched 20 s late: not a measure of its clock.
    skew.envelope(PEERS[0], WALL - 20_000)
    assert skew.peer_offset_ms(PEERS[0]) is None
    # Sync round trips with peer 1, whose clock is 90 s behind ours (one slow reply).
    for late_ms in (90_004, 90_002, 93_000):
        skew.exchange(PEERS[1], WALL - late_ms)
        clock.advance(1.0)
    assert skew.peer_offset_ms(PEERS[1]) == 90_004
    assert skew.reading().offset_s is not None  # exchanges count for our clock too
    clock.advance(SAMPLE_MAX_AGE_S + 1)
    assert skew.peer_offset_ms(PEERS[1]) is None  # not heard from lately: not known
