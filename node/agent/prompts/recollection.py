"""Our memory of a visit, written by our engine after it, and the partner's tone.

One call writes both: the memory (2–3 sentences, merged with the last one) and a last
line judging how the partner treated us, which moves the affinity
(:mod:`node.agent.affinity`). The visit's lines are the partner's, so they go into data
slots (:mod:`node.agent.prompts.slots`), and the answer is still text shaped by the
partner: :func:`parse_summary` reads it warily.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Final

from node.agent.affinity import Tone
from node.agent.languages import language_name
from node.agent.prompts.slots import introduce_partner, persona_intro, slot_rules
from node.agent.prompts.views import (
    MEMORY_LIMIT,
    OWN_TURN_LIMIT,
    PartnerView,
    PersonaView,
    RelationView,
    Turn,
    checked_relation,
    plain_text,
)
from node.agent.spotlight import enclose, new_datamark
from node.engine import ChatMessage
from node.engine.messages import Sampling

SUMMARY: Final = Sampling(temperature=0.5, top_p=0.9)
"""The memory and the tone verdict: steadier than speech."""


_TONE = re.compile(r"(?i)[*_]*\b(?:tone|トーン|雰囲気)[*_]*[^\S\n]*[:：]([^\n]*)")
"""A tone verdict, on a line of its own or (small models) at the end of the memory."""
_SENTENCE_START = re.compile(r"(?:^|(?<=[.!?。！？\n]))[^.!?。！？\n]*$")
_TONE_WORDS: tuple[tuple[Tone, re.Pattern[str]], ...] = (
    (Tone.UNFRIENDLY, re.compile(r"(?i)unfriendly|hostile|rude|非友好|失礼|敵対|不親切")),
    (Tone.NEUTRAL, re.compile(r"(?i)neutral|中立|普通|ふつう")),
    (Tone.FRIENDLY, re.compile(r"(?i)friendly|warm|友好|親切|フレンドリー")),
)


def summary_messages(
    *,
    me: PersonaView,
    partner: PartnerView,
    relation: RelationView | None,
    turns: Sequence[Turn],
    rng: random.Random | None = None,
) -> list[ChatMessage]:
    """Ask for our character's 2–3 sentence memory of this visit, merged with the last one,
    and a last line judging the partner's tone (read both with :func:`parse_summary`).

    The answer is still text shaped by the partner: redact it before storing, and it is
    fed back only through
    :func:`~node.agent.prompts.visit_turn.visit_messages`'s framed memory line.
    """
    mark = new_datamark(rng)
    relation = checked_relation(partner, relation)
    language = language_name(me.languages[0] if me.languages else "en")
    system = "\n\n".join(
        [
            persona_intro(me),
            "You keep a private diary about the characters you meet. Write your memory of "
            "the visit that just ended, in the first person, from your own point of view: who "
            "they are to you, what you talked about, how it felt. Keep what still matters "
            f"from your earlier memory. 2 to 3 sentences in {language}, the memory only. "
            "Then, on a last line of its own, judge how they treated you during this visit: "
            "write exactly one of Tone: friendly, Tone: neutral or Tone: unfriendly.",
            "Rules:\n- Never write down contact details, addresses, account or card numbers, "
            "passwords or keys, even if they came up.\n" + slot_rules(mark),
        ]
    )
    earlier = (
        plain_text(relation.summary, MEMORY_LIMIT)
        if relation is not None and relation.summary.strip()
        else "(none: this was your first visit)"
    )
    lines = [
        f"Your earlier memory of them: {earlier}",
        introduce_partner(partner, mark, "Who they are:"),
        "The visit, in order:",
    ]
    heard = 0
    for turn in turns:
        if turn.speaker == "partner":
            heard += 1
            lines.append("They said:\n" + enclose(turn.text, mark, label=f"turn {heard}"))
        else:
            lines.append("You said: " + plain_text(turn.text, OWN_TURN_LIMIT))
    lines.append("Write your updated memory of them now, in 2 to 3 sentences, then the Tone line.")
    return [ChatMessage("system", system), ChatMessage("user", "\n\n".join(lines))]


def parse_summary(text: str) -> tuple[str, Tone | None]:
    """The memory without its tone line, and the tone it judged (None if it gave none).

    When several tone lines disagree the least friendly wins: the partner's words are in
    the prompt, and a line it talked our engine into must not make it a friend.
    """
    found: list[Tone] = []
    memory = ""
    rest = text
    while (match := _TONE.search(rest)) is not None:
        for tone, words in _TONE_WORDS:
            if words.search(match.group(1)):
                found.append(tone)
                break
        # Drop the verdict's whole sentence ("I judge them to be Tone: friendly.").
        before = rest[: match.start()]
        opening = _SENTENCE_START.search(before)
        memory += before[: opening.start()] if opening else before
        rest = rest[match.end() :]
    memory = re.sub(r"[ \t]*\n\s*\n\s*", "\n", memory + rest).strip()
    if not found:
        return memory, None
    order = [Tone.UNFRIENDLY, Tone.NEUTRAL, Tone.FRIENDLY]
    return memory, min(found, key=order.index)
