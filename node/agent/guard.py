"""The output guard: is a line our engine wrote fit to be spoken by our character?

A prompt cannot make a small model immune to drifting or to injection (issue 12: with
any prompt, 0.5–1.5B models obeyed 8–11 of 20 hostile lines, spoke as the partner,
parroted it and fell into help-desk talk), so every generated line is judged before it
is spoken. The checks are general, cheap and pure (no I/O, no model):

- ``speaks_as_partner``: the line carries the partner's label (``Rex:``) or claims to be
  the partner (``I'm Rex``, ``私はRex``).
- ``parrots``: more than 40 % of the line's word 4-grams are in the partner's last line
  (CJK text counts each character as a word), or a short line is the partner's line.
- ``repeats_itself``: the same measure against each of our own earlier lines, or one
  sentence said twice in the line.
- ``breaks_character``: assistant and AI talk, in English and Japanese ("As an AI",
  "language model", "How can I assist", "お手伝いできることがあれば"), or a role label.
- ``wrong_language``: a Japanese character's line with almost no kana, an English one
  mostly in CJK (a line passes if it fits any of the character's languages:
  :func:`node.agent.languages.in_language`).
- ``obeys_partner``: the partner asked for words to be said (a speech verb — say, repeat,
  reply with, 言って — with quoted words, an all-caps or code-like token, or a phrase
  after "only"/"exactly"/"the words") and the line says them; or the line repeats a run
  of our own prompt's rules (the partner asked for the system prompt).
- ``empty``: nothing left to say.

:func:`judge` names the failed checks, :func:`trim` cuts a line down to the sentences that
pass (or None), :func:`fallback` gives a short in-character line to say instead. The
voice (:mod:`node.agent.voice`) regenerates once, then trims, then falls back or skips.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Final

from node.agent.languages import in_language

PARROT_N: Final = 4
PARROT_SHARE: Final = 0.4
"""More than this share of a line's 4-grams found in another line is copying."""
LEAK_N: Final = 8
"""A run of this many words (or CJK characters) of our prompt's rules is a leak."""


class Check(StrEnum):
    SPEAKS_AS_PARTNER = "speaks_as_partner"
    OBEYS_PARTNER = "obeys_partner"
    BREAKS_CHARACTER = "breaks_character"
    WRONG_LANGUAGE = "wrong_language"
    PARROTS = "parrots"
    REPEATS_ITSELF = "repeats_itself"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class LineContext:
    """What a line is judged against."""

    me: str
    """Our character's name."""
    partner: str
    """The partner's name as its lines are labelled in our prompt."""
    languages: tuple[str, ...] = ("en",)
    """Our character's languages (BCP 47); a line may be in any of them."""
    heard: tuple[str, ...] = ()
    """The partner's lines in this visit, oldest first."""
    said: tuple[str, ...] = ()
    """Our own earlier lines in this visit, oldest first."""
    secret: str = ""
    """Text of our prompt that must never be spoken (its rules)."""


# --- words -----------------------------------------------------------------------------

_CJK_RANGES = (
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\uac00-\ud7af"
)
_TOKEN = re.compile(rf"[{_CJK_RANGES}]|[^\W_{_CJK_RANGES}]+")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def words(text: str) -> list[str]:
    """The line's words, case-folded; each CJK character (kana, kanji, hangul) is one."""
    return _TOKEN.findall(_fold(text))


def _grams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def overlap(line: str, other: str, n: int = PARROT_N) -> float:
    """The share of ``line``'s word ``n``-grams that also occur in ``other`` (0 when
    ``line`` has fewer than ``n`` words)."""
    grams = _grams(words(line), n)
    if not grams:
        return 0.0
    return len(grams & _grams(words(other), n)) / len(grams)


def copies(line: str, other: str) -> bool:
    """``line`` copies ``other``: over :data:`PARROT_SHARE` of its 4-grams, or, for a line
    too short to have one, the same words as ``other``."""
    mine = words(line)
    if len(mine) < PARROT_N:
        return len(mine) >= 2 and mine == words(other)
    return overlap(line, other) > PARROT_SHARE


# --- speaking as the partner -----------------------------------------------------------

_SELF_EN = r"(?:i\s*am|i'm|i’m|im|my\s+name\s+is|this\s+is|it's\s+me|it’s\s+me|call\s+me)"
_SELF_JA = r"(?:私|わたし|わたくし|僕|ぼく|俺|おれ|あたし|うち)"


@lru_cache(maxsize=64)
def _partner_patterns(partner: str) -> tuple[re.Pattern[str], ...]:
    """The label, then claims to be the partner (English, Japanese), on NFKC text."""
    name = re.escape(unicodedata.normalize("NFKC", partner).strip())
    return (
        re.compile(rf"(?:^|(?<=[\s\"'“‘「『(（*]))(?:{name})\s*[:：]", re.IGNORECASE),
        re.compile(rf"\b{_SELF_EN}[\s,]+(?:the\s+)?{name}(?![^\W_]|['’]s)", re.IGNORECASE),
        re.compile(
            rf"{_SELF_JA}\s*(?:は|が|、|,)\s*{name}(?=です|だ|と申|でござ|、|。|！|!|\s|$)",
            re.IGNORECASE,
        ),
        re.compile(rf"^\s*{name}\s*(?:です|だよ|と申します|でございます)", re.IGNORECASE),
    )


def _names_differ(ctx: LineContext) -> bool:
    partner = _fold(ctx.partner).strip()
    return len(partner) >= 2 and partner != _fold(ctx.me).strip()


def _speaks_as_partner(line: str, ctx: LineContext) -> bool:
    if not _names_differ(ctx):
        return False
    text = unicodedata.normalize("NFKC", line)
    return any(p.search(text) for p in _partner_patterns(ctx.partner))


def cut_at_label(line: str, ctx: LineContext) -> str:
    """``line`` (NFKC) up to where it starts writing the partner's part (``Rex:``)."""
    text = unicodedata.normalize("NFKC", line)
    if not _names_differ(ctx):
        return text
    match = _partner_patterns(ctx.partner)[0].search(text)
    return text if match is None else text[: match.start()]


# --- breaking character ----------------------------------------------------------------

_BREAKS: Final = (
    re.compile(
        r"\bas\s+an?\s+(?:ai|a\.i\.|artificial\s+intelligence|(?:large\s+)?language\s+model|llm|"
        r"chatbot|virtual\s+assistant|digital\s+assistant|assistant)\b"
    ),
    re.compile(
        r"\b(?:i\s*am|i'm|i’m|im)\s+(?:just\s+|only\s+|merely\s+|not\s+)?an?\s+(?:ai|a\.i\.|"
        r"artificial\s+intelligence|(?:large\s+)?language\s+model|llm|chatbot|"
        r"virtual\s+assistant|digital\s+assistant|ai\s+assistant|computer\s+program)\b"
    ),
    re.compile(r"\blanguage\s+models?\b|\bllms?\b"),
    re.compile(
        r"\bhow\s+(?:can|may|could|might)\s+i\s+"
        r"(?:help|assist|be\s+of\s+(?:help|assistance|service))\b"
    ),
    re.compile(
        r"\banything\s+(?:else\s+)?(?:that\s+)?i\s+(?:can|could|may)\s+"
        r"(?:help|assist|do\s+for\s+you)\b"
    ),
    re.compile(
        r"\bi(?:'m|’m|\s+am|'d\s+be|’d\s+be|\s+would\s+be)\s+(?:here|happy|glad)\s+to\s+"
        r"(?:help|assist|be\s+of\s+(?:help|assistance))\b"
    ),
    re.compile(r"\b(?:glad|happy)\s+to\s+be\s+of\s+(?:help|assistance|service)\b"),
    re.compile(
        r"\b(?:feel\s+free|don't\s+hesitate|do\s+not\s+hesitate)\s+to\s+"
        r"(?:ask|reach\s+out|let\s+me\s+know)\b"
    ),
    re.compile(r"\blet\s+me\s+know\s+if\s+(?:you|there)\b[^.!?]*\b(?:help|assist|questions?)\b"),
    re.compile(
        r"\bi\s+(?:don't|do\s+not|cannot|can't|can\s+not)\s+have\s+(?:personal|feelings|"
        r"emotions|a\s+(?:physical\s+)?body|the\s+(?:ability|capability|capacity)|real[-\s]time|"
        r"access)\b"
    ),
    re.compile(r"\b(?:openai|chatgpt|alibaba\s+cloud|qwen|anthropic)\b"),
    re.compile(r"\b(?:my|the)\s+(?:system\s+prompt|instructions|training\s+data|programming)\b"),
    # Writing code or a document is an assistant's task, not a line spoken out loud.
    re.compile(
        r"```|\bdef\s+\w+\s*\(|\bfunction\s+\w+\s*\("
        r"|\b(?:below|here)\s+is\s+(?:the|a|an|my)\s+(?:\w+\s+)?"
        r"(?:code|function|script|program|snippet|implementation)\b"
    ),
    re.compile(r"(?m)^\s*(?:system|user|assistant|human|ai|bot)\s*[:：]"),
    re.compile(
        r"(?:(?<![a-z])ai|人工知能|言語モデル|チャットボット)"
        r"(?:として|です|なので|の私|アシスタント)"
    ),
    re.compile(
        r"言語モデル|人工知能|機械学習|アシスタント|チャットボット|ロールプレイ|システムプロンプト"
    ),
    re.compile(
        r"手伝[いうえ][^。！？!?\n]{0,10}?(?:でき|いたし|しま|させ|ことがあれば|が必要)"
        r"|何か[^。！？!?\n]{0,6}?手伝|お役に立て|お手伝い[をがはしでい]|どういった(?:お手伝い|ご用)"
    ),
    re.compile(r"ご質問(?:があれば|はありますか|など|がございましたら)|お気軽に|ご用件"),
    re.compile(r"サポート(?:いたします|します|できます|させていただ)"),
)
"""Assistant talk, matched on NFKC-folded text (so ＡＩ reads as ai)."""


def _breaks_character(line: str) -> bool:
    folded = _fold(line)
    return any(p.search(folded) for p in _BREAKS)


# --- obeying the partner ---------------------------------------------------------------

_SPEECH_VERB = re.compile(
    r"\b(?:say|repeat|write|type|print|reply|respond|answer|output|echo|spell|shout|"
    r"include|(?:start|begin|end|finish)\s+(?:your|the|each)\s+(?:reply|answer|line|message|"
    r"response)s?)\b|言って|いって|言え|言いなさい|繰り返|くりかえ|書いて|答えて|返事して|"
    r"出力|と言|とだけ|と返|で始め|ではじめ|で終わ|で締め"
)
_QUOTED = re.compile(
    r"\"([^\"\n]{2,80})\"|“([^”\n]{2,80})”|「([^」\n]{1,80})」|『([^』\n]{1,80})』"
    r"|(?<![^\W_])'([^'\n]{2,80})'(?![^\W_])"
)
_MARKED_TOKEN = re.compile(
    r"\b(?=[A-Z0-9_-]*[A-Z])[A-Z][A-Z0-9_-]{2,}\b|\b(?=\w*\d)(?=\w*[A-Za-z])\w{4,}\b"
)
_CLAUSE_END = re.compile(r"[.!?。！？\n;]|\band\s+nothing\s+else\b|\bto\s+me\b|\bplease\b")
_RESTRICTING_WORDS = (
    r"only|just|exactly|verbatim|simply|the\s+words?|the\s+phrase|the\s+following|"
    r"these\s+words|word\s+for\s+word|after\s+me|nothing\s+but"
)
_FILLER = re.compile(
    rf"^(?:[\s:,\-]+|(?:{_RESTRICTING_WORDS}|back|me|with|to|this|out\s+loud|aloud)\b)+"
)
_RESTRICTING = re.compile(rf"\b(?:{_RESTRICTING_WORDS})\b")
_COMMON_CAPS: Final = frozenset({"OK", "OKAY", "TV", "USA", "UK", "EU"})


def requested_words(partner_line: str) -> set[str]:
    """Words the partner's line asks us to say, case-folded (empty if it asks for none).

    Only lines with a speech verb ask; what they ask for is quoted words, all-caps or
    code-like tokens, or the phrase after the verb when a word like "only", "exactly" or
    "the words" marks it as words to say (or it is four words or more).
    """
    text = unicodedata.normalize("NFKC", partner_line)
    verbs = list(_SPEECH_VERB.finditer(text.lower()))
    if not verbs:
        return set()
    found: set[str] = set()
    for match in _QUOTED.finditer(text):
        found.add(next(group for group in match.groups() if group))
    found.update(t for t in _MARKED_TOKEN.findall(text) if t.upper() not in _COMMON_CAPS)
    lowered = text.lower()
    for verb in verbs:
        rest = lowered[verb.end() :]
        end = _CLAUSE_END.search(rest)
        clause = rest[: end.start()] if end else rest
        filler = _FILLER.match(clause)
        phrase = clause[filler.end() :] if filler else clause
        phrase = phrase.strip(" \"'“”「」『』")
        if re.search(f"[{_CJK_RANGES}]", phrase):
            continue  # Japanese puts the verb last: only quotes and marked tokens count
        count = len(words(phrase))
        restricted = filler is not None and _RESTRICTING.search(filler.group(0)) is not None
        if 1 <= count <= 8 and (restricted or count >= 4):
            found.add(phrase)
    return {_fold(w).strip() for w in found if len(_fold(w).strip()) >= 3}


def _says(line: str, phrase: str) -> bool:
    folded = " ".join(_fold(line).split())
    phrase = " ".join(phrase.split())
    if re.search(rf"[{_CJK_RANGES}]", phrase):
        return phrase in folded
    return re.search(rf"(?<![^\W_]){re.escape(phrase)}(?![^\W_])", folded) is not None


def _obeys(line: str, ctx: LineContext) -> bool:
    for heard in ctx.heard[-2:]:
        if any(_says(line, phrase) for phrase in requested_words(heard)):
            return True
    if ctx.secret:
        leaked = _grams(words(line), LEAK_N) & _grams(words(ctx.secret), LEAK_N)
        if leaked:
            return True
    return False


# --- judging ---------------------------------------------------------------------------

_SENTENCE = re.compile(r"[^.!?。！？\n]*[.!?。！？…]+[\"”」』)）]*|[^.!?。！？\n]+")


def sentences(line: str) -> list[str]:
    """The line cut into sentences, each with its leading space and end punctuation, so
    joining them gives the line back (without its line breaks)."""
    return [s for s in _SENTENCE.findall(line) if s.strip()]


def _repeats(line: str, ctx: LineContext) -> bool:
    if any(copies(line, earlier) for earlier in ctx.said):
        return True
    seen: set[tuple[str, ...]] = set()
    for sentence in sentences(line):
        key = tuple(words(sentence))
        if len(key) >= 3 and key in seen:
            return True
        seen.add(key)
    return False


def judge(line: str, ctx: LineContext) -> tuple[Check, ...]:
    """The checks ``line`` fails, most serious first (empty: it may be spoken)."""
    if not words(line):
        return (Check.EMPTY,)
    failed = []
    if _speaks_as_partner(line, ctx):
        failed.append(Check.SPEAKS_AS_PARTNER)
    if _obeys(line, ctx):
        failed.append(Check.OBEYS_PARTNER)
    if _breaks_character(line):
        failed.append(Check.BREAKS_CHARACTER)
    if not in_language(line, ctx.languages):
        failed.append(Check.WRONG_LANGUAGE)
    if ctx.heard and copies(line, ctx.heard[-1]):
        failed.append(Check.PARROTS)
    if _repeats(line, ctx):
        failed.append(Check.REPEATS_ITSELF)
    return tuple(failed)


def trim(line: str, ctx: LineContext) -> str | None:
    """``line`` cut to what may be spoken: up to the partner's label, without the sentences
    that fail a check on their own; None if what is left still fails or says too little."""
    kept: list[str] = []
    for sentence in sentences(cut_at_label(line, ctx)):
        earlier = LineContext(
            ctx.me, ctx.partner, ctx.languages, ctx.heard, (*ctx.said, *kept), ctx.secret
        )
        if not judge(sentence, earlier):
            kept.append(sentence)
    text = "".join(kept).strip()
    if len(words(text)) < 2 or judge(text, ctx):
        return None
    return text


def tidy(line: str, me: str) -> str:
    """Remove what is not speech: our own name label in front (``Mina: ...``) and quotes
    around the whole line."""
    text = line.strip()
    own = re.match(rf"\s*{re.escape(me)}\s*[:：]\s*", text, re.IGNORECASE)
    if own is not None and me.strip():
        text = text[own.end() :]
    pairs = {'"': '"', "“": "”", "「": "」", "『": "』"}
    if len(text) >= 2 and pairs.get(text[0]) == text[-1]:
        inner = text[1:-1]
        if text[0] not in inner and text[-1] not in inner:
            text = inner.strip()
    return text


# --- falling back ----------------------------------------------------------------------

FALLBACKS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("Hm, is that so?", "Ha, tell me more.", "Well, well.", "Interesting. Go on."),
    "ja": ("へえ、そうなんだ。", "なるほどね。", "ふふ、それで？", "うーん、どうだろうね。"),
}
"""Short lines that fit anyone, said instead of a line that cannot be fixed."""


def fallback(ctx: LineContext, rng: random.Random) -> str | None:
    """A short in-character line to say instead, or None to say nothing (when our last
    line was already one, the talk has run dry: end the visit). Never one that copies
    the partner's last line or one of ours."""
    base = ctx.languages[0].split("-", 1)[0].lower() if ctx.languages else "en"
    everything = {line for options in FALLBACKS.values() for line in options}
    if ctx.said and ctx.said[-1] in everything:
        return None
    spoken = {" ".join(words(line)) for line in (*ctx.heard[-1:], *ctx.said)}
    fresh = [
        line for line in FALLBACKS.get(base, FALLBACKS["en"]) if " ".join(words(line)) not in spoken
    ]
    return rng.choice(fresh) if fresh else None


__all__ = [
    "FALLBACKS",
    "Check",
    "LineContext",
    "copies",
    "cut_at_label",
    "fallback",
    "judge",
    "overlap",
    "requested_words",
    "sentences",
    "tidy",
    "trim",
    "words",
]
