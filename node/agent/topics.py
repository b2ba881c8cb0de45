"""Something to talk about: one topic per visit, so a small model does not drift into
bland small talk.

A topic comes from what we know and trust: our own character's interests (its tags), the
time of day where we are, a memory we share with this partner (the summary our own engine
wrote), something our owner told our character lately (its text contexts), or a short
list of everyday subjects. Never from the partner's card or tags, nor from contexts other
characters sent: those are untrusted text, and the topic goes into the system message.

Pure: the hour and the random source are passed in, so a visit's topic is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class TopicKind(StrEnum):
    INTEREST = "interest"
    """One of our character's tags."""
    TIME = "time"
    """The time of day where we are."""
    MEMORY = "memory"
    """Something from our memory of this partner."""
    EVERYDAY = "everyday"
    """An everyday subject, when nothing else is known."""
    NEWS = "news"
    """Something our owner told our character lately (a text context)."""


@dataclass(frozen=True, slots=True)
class Topic:
    kind: TopicKind
    subject: str
    """The tag (``INTEREST``), the part of the day (``TIME``), the everyday subject's key
    (``EVERYDAY``), what our owner said (``NEWS``), or empty (``MEMORY``)."""


EVERYDAY: Final[dict[str, str]] = {
    "food you love": "好きな食べ物",
    "a place you would like to visit": "行ってみたい場所",
    "the weather today": "今日の天気",
    "something that made you laugh recently": "最近笑ったこと",
    "a book, a song or a film you like": "好きな本や歌や映画",
    "a small plan for tomorrow": "明日のちょっとした予定",
}
"""Everyday subjects, in English and Japanese."""

PARTS_OF_DAY: Final[dict[str, tuple[str, str]]] = {
    "morning": (
        "It is morning: talk about breakfast or your plans for the day.",
        "今は朝です。朝ごはんや今日の予定の話をしてください。",
    ),
    "afternoon": (
        "It is afternoon: talk about what you have been doing today.",
        "今は昼すぎです。今日なにをしていたか話してください。",
    ),
    "evening": (
        "It is evening: talk about how the day went.",
        "今は夕方です。今日一日がどうだったか話してください。",
    ),
    "night": (
        "It is late at night: talk about why you are both still up.",
        "今は夜遅くです。どうしてまだ起きているのか話してください。",
    ),
}


def part_of_day(hour: int) -> str:
    """``morning`` (5–11 h), ``afternoon`` (11–17 h), ``evening`` (17–22 h) or ``night``."""
    if not 0 <= hour <= 23:
        raise ValueError(f"hour {hour} outside 0..23")
    if 5 <= hour < 11:
        return "morning"
    if 11 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"


KIND_WEIGHTS: Final[dict[TopicKind, int]] = {
    TopicKind.INTEREST: 3,
    TopicKind.MEMORY: 2,
    TopicKind.TIME: 1,
    TopicKind.EVERYDAY: 1,
    TopicKind.NEWS: 3,
}
"""How often each available kind is drawn. Our own interests and what we share with this
partner make a visit about these two characters; the time of day and everyday subjects
are what anyone would say (issue 12's benchmark: with every kind equally likely, one
line in four used a persona word)."""


def pick_topic(
    tags: Sequence[str],
    *,
    has_memory: bool,
    hour: int,
    rng: random.Random,
    news: Sequence[str] = (),
) -> Topic:
    """A topic for one visit: first a kind (weighted by :data:`KIND_WEIGHTS` among the
    available ones), then a subject of that kind. ``tags`` are our own character's;
    ``has_memory`` says whether we remember something of this partner; ``news`` is what
    our owner told our character lately."""
    interests = [tag.strip() for tag in tags if tag.strip()]
    told = [text.strip() for text in news if text.strip()]
    kinds = [TopicKind.TIME, TopicKind.EVERYDAY]
    if interests:
        kinds.append(TopicKind.INTEREST)
    if has_memory:
        kinds.append(TopicKind.MEMORY)
    if told:
        kinds.append(TopicKind.NEWS)
    kind = rng.choices(kinds, weights=[KIND_WEIGHTS[k] for k in kinds])[0]
    if kind is TopicKind.INTEREST:
        return Topic(kind, rng.choice(interests))
    if kind is TopicKind.NEWS:
        return Topic(kind, rng.choice(told))
    if kind is TopicKind.TIME:
        return Topic(kind, part_of_day(hour))
    if kind is TopicKind.MEMORY:
        return Topic(kind, "")
    return Topic(kind, rng.choice(sorted(EVERYDAY)))


def topic_line(topic: Topic, japanese: bool) -> str:
    """The topic as one line of the system message, in English or Japanese."""
    if topic.kind is TopicKind.TIME:
        english, ja = PARTS_OF_DAY[topic.subject]
        return ja if japanese else english
    if topic.kind is TopicKind.NEWS:
        if japanese:
            return f"最近聞いたこと（話題にしてもいいし、しなくてもいい）: {topic.subject}"
        return f"Something you heard lately, to bring up if you like: {topic.subject}"
    if topic.kind is TopicKind.MEMORY:
        if japanese:
            return "相手についての記憶から、何かひとつ話題にしてください。"
        return "Bring up something from your memories of them."
    subject = topic.subject
    if topic.kind is TopicKind.EVERYDAY and japanese:
        subject = EVERYDAY.get(subject, subject)
    if japanese:
        return f"この訪問の話題: {subject}"
    return f"Something to talk about on this visit: {subject}."
