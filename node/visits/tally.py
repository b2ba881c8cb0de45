"""How this character's visits ended since the node started, by role and outcome: a
plain counter the metrics read (:mod:`node.metrics`)."""

from __future__ import annotations

from collections import Counter
from typing import Final

from node.storage.memory_rows import FINAL_OUTCOMES

OUTCOMES: Final = frozenset({*FINAL_OUTCOMES, "declined", "failed", "other"})
"""The outcome labels: the final outcomes as memory stores them, with ``declined:<reason>``
and ``failed:<why>`` counted as ``declined`` and ``failed`` (the reason stays in memory and
the log; a label takes a value from a small fixed set)."""


def outcome_label(outcome: str) -> str:
    head = outcome.partition(":")[0]
    return head if head in OUTCOMES else "other"


class VisitTally:
    def __init__(self) -> None:
        self.ended: Counter[tuple[str, str]] = Counter()
        """(role ``host`` | ``guest``, outcome label) → visits."""

    def record(self, role: str, outcome: str) -> None:
        self.ended[(role, outcome_label(outcome))] += 1
