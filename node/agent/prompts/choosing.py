"""Choosing whom to visit: the engine picks one of the characters online.

Used when the character file sets ``autonomy.choose`` to ``engine`` (otherwise
:mod:`node.agent.autonomy` picks by weight). The prompt sees only each candidate's name
(in a data slot, :mod:`node.agent.prompts.slots`), affinity tier and visit count, never
what we remember of anyone.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from node.agent.affinity import tier_for
from node.agent.prompts.slots import NAME_LIMIT, persona_intro, slot_rules
from node.agent.prompts.views import PersonaView, PromptError
from node.agent.spotlight import enclose, new_datamark
from node.engine import ChatMessage


@dataclass(frozen=True, slots=True)
class CandidateView:
    """Someone we could visit: only what choosing needs, nothing we remember."""

    name: str
    affinity: int
    visits: int = 0


def choose_messages(
    me: PersonaView, candidates: Sequence[CandidateView], rng: random.Random | None = None
) -> list[ChatMessage]:
    """Ask the engine to pick one of ``candidates`` to visit; read the answer with
    :func:`parse_choice`."""
    if not candidates:
        raise PromptError("choose_messages needs at least one candidate")
    mark = new_datamark(rng)
    system = "\n\n".join(
        [
            persona_intro(me),
            "You feel like visiting someone. Pick exactly one character from the numbered list "
            "the user gives you. Answer with the number only.",
            "Rules:\n" + slot_rules(mark),
        ]
    )
    entries = []
    for number, candidate in enumerate(candidates, start=1):
        visits = "never visited" if candidate.visits == 0 else f"visited {candidate.visits}x"
        tier = tier_for(candidate.affinity).value.replace("_", " ")
        name = enclose(candidate.name, mark, label=f"candidate {number}", limit=NAME_LIMIT)
        entries.append(f"{number}. ({tier}, {visits})\n{name}")
    user = "\n\n".join(
        [
            "Who is online now:",
            *entries,
            f"Answer with one number from 1 to {len(candidates)}.",
        ]
    )
    return [ChatMessage("system", system), ChatMessage("user", user)]


_THINKING = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\d.])(\d{1,4})(?![\d.]\d)")


def parse_choice(text: str, n: int) -> int | None:
    """The 0-based index the engine chose from a list of ``n``, or None if it did not
    name a number from 1 to ``n`` (the first number in the answer counts; reasoning in
    ``<think>`` blocks is ignored)."""
    match = _NUMBER.search(_THINKING.sub(" ", text))
    if match is None:
        return None
    number = int(match.group(1))
    return number - 1 if 1 <= number <= n else None
