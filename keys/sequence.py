"""The per-sender sequence counter for outgoing envelopes."""

from __future__ import annotations

from typing import Final

from keys.errors import KeyUsageError

# Sequence numbers stay within a signed 64-bit integer, so SQLite can store every one.
MAX_SEQ: Final = 2**63 - 1


class SequenceCounter:
    """Hands out increasing ``seq`` numbers, starting from a persisted value.

    The node must persist :attr:`next_value` before the envelope that used the previous
    number leaves the process, so that a restart never reuses a number (peers would
    refuse it as replayed).
    """

    __slots__ = ("_next",)

    def __init__(self, next_value: int = 0) -> None:
        """Start at ``next_value`` (the value persisted last, or 0 for a new identity)."""
        if not 0 <= next_value <= MAX_SEQ + 1:
            raise KeyUsageError(f"a sequence number is 0..{MAX_SEQ}")
        self._next = next_value

    @property
    def next_value(self) -> int:
        """The number the next call to :meth:`next` returns; persist this."""
        return self._next

    def next(self) -> int:
        """Return a number never returned before by this counter."""
        value = self._next
        if value > MAX_SEQ:
            raise KeyUsageError("sequence numbers are exhausted")
        self._next += 1
        return value
