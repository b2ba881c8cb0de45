"""Per-sender anti-replay window, as in IPsec (RFC 4303 §3.4.3).

For each sender it keeps the highest sequence number accepted (``hwm``) and a bitmask of
which of the :data:`WINDOW` numbers ending at ``hwm`` were accepted (bit ``i`` is
``hwm - i``). Gossip may deliver out of order, so any number inside the window is
accepted once; a repeat, or anything older than the window, is refused.

Checking and recording are separate steps: :meth:`ReplayWindow.check` (called by
``verify``) changes nothing, and the caller calls :meth:`ReplayWindow.accept` only once
the message is durably stored, so a crash in between can never lose a message — at
worst the peer's retransmission is accepted again and deduplicated by the store.

Persistence: :meth:`ReplayWindow.drain_changes` hands over every sender whose state
changed since the last drain, for the node to write in one batch (store ``mask`` as a
128-byte big-endian blob: ``mask.to_bytes(WINDOW // 8, "big")``); at start-up the node
feeds saved rows back with :meth:`ReplayWindow.restore`.

Memory: at most ``max_senders`` senders stay in memory, least recently accepted evicted
first. An evicted sender is not forgotten if the node persisted it: before checking a
sender that is not ``in`` the window, the node restores its row from the store. Without
that, an evicted sender starts afresh; replays are then still refused by the envelope
timestamp window as soon as the sender's old messages are older than it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from keys.errors import KeyUsageError, Replayed

WINDOW: Final = 1024
_FULL_MASK: Final = (1 << WINDOW) - 1
DEFAULT_MAX_SENDERS: Final = 100_000


class ReplayWindow:
    """Sliding anti-replay windows for many senders (pure state, no I/O)."""

    __slots__ = ("_changes", "_max_senders", "_state")

    def __init__(self, max_senders: int = DEFAULT_MAX_SENDERS) -> None:
        """Create an empty window keeping at most ``max_senders`` senders in memory."""
        if max_senders < 1:
            raise KeyUsageError("max_senders must be at least 1")
        self._max_senders = max_senders
        self._state: OrderedDict[bytes, tuple[int, int]] = OrderedDict()
        self._changes: dict[bytes, tuple[int, int]] = {}

    def check(self, sender: bytes, seq: int) -> None:
        """Raise :class:`Replayed` if ``(sender, seq)`` must be refused; change nothing."""
        state = self._state.get(sender)
        if state is None:
            return
        hwm, mask = state
        if seq > hwm:
            return
        offset = hwm - seq
        if offset >= WINDOW:
            raise Replayed(
                f"seq {seq} is older than the replay window (newest {hwm})",
                sender=sender,
                seq=seq,
            )
        if mask >> offset & 1:
            raise Replayed(f"seq {seq} was already accepted", sender=sender, seq=seq)

    def accept(self, sender: bytes, seq: int) -> bool:
        """Record ``(sender, seq)`` as delivered; return ``False`` if it was refused already.

        A duplicate or too-old ``seq`` is left as it is rather than raised, because the
        caller has stored the message by now and has nothing left to undo.
        """
        if seq < 0:
            raise KeyUsageError("seq must be >= 0")
        state = self._state.get(sender)
        if state is None:
            hwm, mask = seq, 1
        else:
            hwm, mask = state
            if seq > hwm:
                shift = seq - hwm
                mask = (mask << shift | 1) & _FULL_MASK if shift < WINDOW else 1
                hwm = seq
            else:
                offset = hwm - seq
                if offset >= WINDOW or mask >> offset & 1:
                    return False
                mask |= 1 << offset
        self._put(sender, hwm, mask)
        self._changes[sender] = (hwm, mask)
        return True

    def snapshot(self, sender: bytes) -> tuple[int, int] | None:
        """Return ``(hwm, mask)`` for ``sender``, or ``None`` if it is not in memory."""
        return self._state.get(sender)

    def restore(self, sender: bytes, hwm: int, mask: int) -> None:
        """Load a persisted ``(hwm, mask)`` for ``sender`` (not reported as a change)."""
        if hwm < 0 or not 0 <= mask <= _FULL_MASK:
            raise KeyUsageError("replay state out of range")
        self._put(sender, hwm, mask)

    def drain_changes(self) -> list[tuple[bytes, int, int]]:
        """Return ``(sender, hwm, mask)`` for each sender changed since the last drain."""
        changes = [(sender, hwm, mask) for sender, (hwm, mask) in self._changes.items()]
        self._changes.clear()
        return changes

    def __contains__(self, sender: object) -> bool:
        return sender in self._state

    def __len__(self) -> int:
        return len(self._state)

    def _put(self, sender: bytes, hwm: int, mask: int) -> None:
        self._state[sender] = (hwm, mask)
        self._state.move_to_end(sender)
        while len(self._state) > self._max_senders:
            self._state.popitem(last=False)
