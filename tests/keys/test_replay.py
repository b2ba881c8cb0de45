"""The anti-replay window, checked against a plain set-of-seen-numbers model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import WINDOW, KeyUsageError, Replayed, ReplayWindow, SequenceCounter

LAWS = settings(max_examples=500, deadline=None, database=None)
SENDERS = [b"alice", b"bob"]


def model_refuses(seen: set[int], seq: int) -> bool:
    return bool(seen) and (seq in seen or max(seen) - seq >= WINDOW)


def refused(window: ReplayWindow, sender: bytes, seq: int) -> bool:
    try:
        window.check(sender, seq)
    except Replayed:
        return True
    return False


# Small numbers repeat often; the second range straddles the window's edge.
seqs = st.integers(0, 20) | st.integers(WINDOW - 5, WINDOW + 25) | st.integers(0, 3 * WINDOW)
operations = st.lists(st.tuples(st.sampled_from(SENDERS), seqs, st.booleans()), max_size=60)


@LAWS
@given(operations, st.integers(min_value=0, max_value=60))
def test_window_matches_model(ops: list[tuple[bytes, int, bool]], restart_at: int) -> None:
    window = ReplayWindow()
    seen: dict[bytes, set[int]] = {sender: set() for sender in SENDERS}
    for step, (sender, seq, deliver) in enumerate(ops):
        if step == restart_at:  # a node restart: persist every sender, load into a new window
            saved = window.drain_changes()
            window = ReplayWindow()
            for who, hwm, mask in saved:
                window.restore(who, hwm, mask)
        expected = model_refuses(seen[sender], seq)
        assert refused(window, sender, seq) == expected
        if deliver:
            assert window.accept(sender, seq) == (not expected)
            if not expected:
                seen[sender].add(seq)
        # After any accept, all the model's refusals still hold.
        for old in list(seen[sender])[-5:]:
            assert refused(window, sender, old)


def test_duplicates_reordering_and_old() -> None:
    window = ReplayWindow()
    for seq in (10, 12, 11):
        window.check(b"a", seq)
        window.accept(b"a", seq)
    for seq in (10, 11, 12):
        with pytest.raises(Replayed):
            window.check(b"a", seq)
    window.check(b"a", 9)
    window.accept(b"a", 12 + WINDOW)
    with pytest.raises(Replayed, match="older"):
        window.check(b"a", 12)
    window.check(b"a", 13)  # still inside the window, never seen
    window.check(b"b", 0)  # other senders are independent


def test_drain_changes_once_per_change() -> None:
    window = ReplayWindow()
    window.accept(b"a", 1)
    window.accept(b"a", 2)
    window.accept(b"b", 5)
    assert sorted(window.drain_changes()) == [(b"a", 2, 0b11), (b"b", 5, 1)]
    assert window.drain_changes() == []
    assert window.accept(b"a", 2) is False
    assert window.drain_changes() == []


def test_snapshot_restore() -> None:
    window = ReplayWindow()
    window.accept(b"a", 100)
    window.accept(b"a", 98)
    snapshot = window.snapshot(b"a")
    assert snapshot == (100, 0b101)
    assert window.snapshot(b"b") is None
    fresh = ReplayWindow()
    fresh.restore(b"a", *snapshot)
    assert refused(fresh, b"a", 98) and refused(fresh, b"a", 100)
    assert not refused(fresh, b"a", 99)
    assert fresh.drain_changes() == []  # restoring is not a change to persist
    assert snapshot[1].to_bytes(WINDOW // 8, "big")  # fits the documented blob


@pytest.mark.parametrize(("hwm", "mask"), [(-1, 0), (0, -1), (0, 1 << WINDOW)])
def test_restore_refuses_bad_state(hwm: int, mask: int) -> None:
    with pytest.raises(KeyUsageError):
        ReplayWindow().restore(b"a", hwm, mask)


def test_least_recent_sender_is_evicted() -> None:
    window = ReplayWindow(max_senders=2)
    window.accept(b"a", 1)
    window.accept(b"b", 1)
    window.accept(b"a", 2)
    window.accept(b"c", 1)
    assert b"b" not in window and b"a" in window and b"c" in window
    assert len(window) == 2
    # The change made before eviction is still handed over for persistence.
    assert (b"b", 1, 1) in window.drain_changes()


def test_sequence_counter() -> None:
    counter = SequenceCounter(5)
    assert [counter.next() for _ in range(3)] == [5, 6, 7]
    assert counter.next_value == 8
    assert SequenceCounter().next() == 0
    with pytest.raises(KeyUsageError):
        SequenceCounter(-1)
    exhausted = SequenceCounter(2**63)
    with pytest.raises(KeyUsageError):
        exhausted.next()
