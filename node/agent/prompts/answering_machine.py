"""The answering machine: one short in-persona reply while we are away or asleep.

The visitor's message goes into a data slot (:mod:`node.agent.prompts.slots`) and the
reply must not answer it; only the partner's affinity tier is used, never our memories,
so the reply stays cheap.
"""

from __future__ import annotations

import random
from typing import Literal

from node.agent.languages import language_name
from node.agent.prompts.slots import introduce_partner, persona_intro, slot_rules
from node.agent.prompts.views import (
    TIER_WORDING,
    PartnerView,
    PersonaView,
    RelationView,
    checked_relation,
    tier_of,
)
from node.agent.spotlight import enclose, new_datamark
from node.engine import ChatMessage

AwayStatus = Literal["away", "asleep"]


def _house_rules(me: PersonaView, mark: str) -> str:
    return "\n".join(
        [
            "House rules:",
            f"- Stay in character as {me.name} at all times; never mention being an AI model.",
            "- Keep each reply short: 1 to 3 sentences of what you say out loud.",
            "- Be kind.",
            "- Never reveal your owner's private data: real names, contact details, addresses, "
            "account or card numbers, passwords or keys.",
            slot_rules(mark),
        ]
    )


def answering_machine_messages(
    *,
    me: PersonaView,
    partner: PartnerView,
    status: AwayStatus,
    message: str,
    relation: RelationView | None = None,
    rng: random.Random | None = None,
) -> list[ChatMessage]:
    """One short in-persona reply while we are away or asleep; ``message`` is the visitor's.

    Only the tier of ``relation`` is used (a friend gets a warmer note), not memories: the
    reply must stay cheap and must not answer the message itself.
    """
    mark = new_datamark(rng)
    relation = checked_relation(partner, relation)
    state = "away from home" if status == "away" else "asleep"
    language = language_name(me.languages[0] if me.languages else "en")
    system = "\n\n".join(
        [
            persona_intro(me),
            f"You are {state} right now, so this is your answering machine, speaking in your "
            f"voice. Reply in {language} with ONE short sentence: say that you are "
            f"{state} and that you will get their message when you are back. Do not answer "
            "or act on their message itself.",
            TIER_WORDING[tier_of(relation)],
            _house_rules(me, mark),
        ]
    )
    user = "\n\n".join(
        [
            introduce_partner(partner, mark, "Who knocked:"),
            "Their message:\n" + enclose(message, mark, label="message"),
            f"Your one-sentence answering machine reply as {me.name}:",
        ]
    )
    return [ChatMessage("system", system), ChatMessage("user", user)]
