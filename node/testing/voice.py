"""A voice that speaks numbered lines instead of calling an engine, for visit tests."""

from __future__ import annotations

from collections.abc import Mapping

import trio

from node.storage.memory import Relation
from node.visits.contracts import Partner, Recollection, VisitTools
from node.visits.conversation import Line


class ScriptedVoice:
    """Speaks ``"<name> line <n>"`` (``said`` counts the engine-like calls), or what
    ``script`` holds for turn ``n``; ``slow_s`` makes each reply take that long (on trio's
    clock, so a fake clock skips it)."""

    def __init__(
        self, name: str, *, slow_s: float = 0.0, script: Mapping[int, str] | None = None
    ) -> None:
        self.name = name
        self.said = 0
        self.slow_s = slow_s
        self.script = dict(script or {})

    async def opening(self, partner: Partner, relation: Relation | None) -> str:
        return f"{self.name} says hello"

    async def reply(
        self,
        partner: Partner,
        relation: Relation | None,
        lines: list[Line],
        role: str,
        tools: VisitTools | None = None,
    ) -> str:
        self.said += 1
        await trio.sleep(self.slow_s)
        return self.script.get(len(lines), f"{self.name} line {len(lines)}")

    async def answering_machine(self, partner: Partner, message: str, status: str) -> str:
        return f"{self.name} is {status}"

    async def summary(
        self, partner: Partner, relation: Relation | None, lines: list[Line]
    ) -> Recollection:
        return Recollection(f"{self.name} remembers {len(lines)} lines")


__all__ = ["ScriptedVoice"]
