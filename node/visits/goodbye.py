"""Is this line a goodbye? A general check of what a character said, in English and
Japanese, so a visit can end when the talk runs dry and not only when its budget is spent.

Pure code. What counts is the end of a line, where people say goodbye ("It was lovely
talking with you. Take care, Kai!"): a farewell phrase in one of its last two sentences,
unless the line then asks a question it has not itself said goodbye in ("Take care! Will
you come again?" still expects an answer). The phrases are ones people leave with, not
ones that merely mention leaving: "goodbye" but not "said goodbye to", "see you soon" but
not "nice to see you again", "take care" but not "take care of", 「またね」 but not 「また
お茶を」.

The first lines of a visit are greetings, where "thanks for coming" or 「ようこそ」 mean
hello: a line counts only from turn :data:`FIRST_GOODBYE_TURN` on
(:func:`counts_as_goodbye`); :class:`node.visits.conversation.Conversation` applies the
rule, the voice uses it to answer a goodbye with one.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

FIRST_GOODBYE_TURN: Final = 4
"""A goodbye counts from the fifth line on: by then each side has spoken twice."""

_END: Final = r"(?=\s*(?:[,.!…~]|$))"
_JA_END: Final = r"(?=[。．.！!、,~〜ー♪☆…\s]|$)"
_ENGLISH: Final = (
    r"\b(?:good-?\s?bye|bye(?:-?bye)?|farewell)\b(?!\s+(?:to|party|gift|letter)\b)",
    rf"(?<!\bto\s)\bsee\s+(?:you|ya)\b(?:\s+(?:again|then|around|some\s*time)\b)?{_END}",
    r"\bsee\s+(?:you|ya)\s+(?:soon|later|tomorrow|next\s+time|another\s+time)\b",
    r"\b(?:hope\s+to|hope\s+(?:we|i)(?:'ll|\s+will|\s+can)?|until\s+we|till\s+we)\s+"
    r"(?:see|meet)\s+(?:you|each\s+other)\s+again\b",
    r"\btake\s+care\b(?!\s+(?:of|with|to|not|that|when|while|around)\b)",
    r"\b(?:until|till|'til)\s+next\s+time\b",
    r"\bgood\s*night\b(?!\s+(?:for|to|of|at|in|out|sleep)\b)",
    r"\bhave\s+a\s+(?:good|nice|great|lovely|wonderful|safe|pleasant|fine)\s+"
    r"(?:day|evening|night|trip|journey|walk|one|afternoon|morning|weekend|way\s+home)\b",
    r"\bsafe\s+travels\b|\bsafe\s+(?:trip|journey)\s+home\b",
    r"\b(?:i|we)\s*(?:'d|would|should|must|have\s+to|need\s+to|had\s+better|'d\s+better|"
    r"ought\s+to|'ll|will|'m\s+going\s+to)\s+(?:better\s+)?(?:get\s+going|be\s+going|"
    r"go\s+now|head\s+(?:off|home)|leave\s+now|be\s+on\s+my\s+way|get\s+home|"
    r"let\s+you\s+(?:go|get\s+back|rest))\b(?!\s+(?:to|with|for)\b)",
    rf"\btime\s+(?:for\s+(?:me|us)\s+)?to\s+(?:go|leave|head\s+home|say\s+goodbye)"
    rf"(?:\s+(?:now|home))?{_END}",
    r"\bthanks?\s+(?:you\s+)?(?:so\s+much\s+|again\s+)?for\s+(?:coming|stopping\s+by|"
    r"dropping\s+by|visiting|having\s+me|the\s+visit|the\s+lovely\s+visit)\b",
    r"\bcome\s+(?:back|again|visit)\s+(?:soon|any\s*time|again|sometime)\b",
)
_JAPANESE: Final = (
    r"さようなら|さよなら|さよーなら|ごきげんよう|バイバイ|ばいばい",
    rf"(?:おやすみ(?:なさい)?|またね|またな|じゃあね|また今度|また明日|またあした|またいつか|"
    rf"また後で|またあとで){_JA_END}",
    r"(?:じゃあ?|では|それでは)、?また(?:ね|今度|明日|あした|いつか|会|来|お会い|遊|[。！!]|$)",
    r"また(?:お|いつか|どこかで)?(?:会い|会お|あい|あお|会え|あえ)"
    r"(?:ましょう|しましょう|できる|たい|ね|よう|る|ます|ません)",
    r"また(?:ぜひ)?(?:来て|きて|遊びに|おいで|いらして|いらっしゃ|寄って|お越し|来ます|来るね|伺)",
    r"お邪魔しました|おじゃましました|お邪魔いたしました|失礼します|失礼いたします|"
    r"そろそろ(?:失礼|帰|行き|行か|おいとま|お暇|戻)|おいとま|お暇します",
    r"気をつけて(?:お?帰|かえ)|お気をつけて",
    r"来てくれてありがとう|来てくださってありがとう|お越しいただき|遊びに来てくれて",
)
_FAREWELL = re.compile("|".join((*_ENGLISH, *_JAPANESE)), re.IGNORECASE)
_SENTENCE = re.compile(r"[^.!?。！？\n]*[.!?。！？…]+[\"'”’」』)）~〜]*|[^.!?。！？\n]+")
_QUESTION = re.compile(r"[?？][\"'”’」』)）]*\s*$")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def says_goodbye(text: str) -> bool:
    """Whether ``text`` ends in a goodbye (see the module's docstring)."""
    folded = " ".join(unicodedata.normalize("NFKC", text).replace("’", "'").split())
    tail = _sentences(folded)[-2:]
    if not tail:
        return False
    last = tail[-1]
    if _QUESTION.search(last) and not _FAREWELL.search(last):
        return False
    return any(_FAREWELL.search(sentence) for sentence in tail)


def counts_as_goodbye(turn: int, text: str) -> bool:
    """Whether the line of ``turn`` is a goodbye that may end the visit."""
    return turn >= FIRST_GOODBYE_TURN and says_goodbye(text)


__all__ = ["FIRST_GOODBYE_TURN", "counts_as_goodbye", "says_goodbye"]
