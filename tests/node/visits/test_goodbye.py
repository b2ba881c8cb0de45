"""Recognising a goodbye, in English and Japanese: lines people leave with count, lines
that only mention leaving, greet, or still ask something do not, and nothing counts
before the visit's fifth line."""

from __future__ import annotations

import pytest

from node.visits.goodbye import FIRST_GOODBYE_TURN, counts_as_goodbye, says_goodbye

GOODBYES = [
    "Goodbye, Kai!",
    "It was lovely talking with you. Take care, Kai!",
    "See you soon!",
    "Well, that's my tea finished. See you!",
    "Well, I should get going. Thanks for the tea!",
    "Bye-bye now.",
    "Have a lovely evening, Mina.",
    "Until next time, friend.",
    "I hope we meet again. Good night!",
    "Thanks so much for coming by today.",
    "Come back soon, okay?",
    "Farewell, traveller.",
    "I'd better get going.",
    "Time for me to go home.",
    "ＧＯＯＤＢＹＥ!",  # full-width, read after NFKC
    "またね！",
    "今日はありがとう。またね",
    "さようなら、カイさん。",
    "そろそろ失礼します。",
    "お邪魔しました！",
    "また遊びに来てね。",
    "では、また明日。",
    "またお会いしましょう。",
    "気をつけて帰ってね。",
    "おやすみなさい。",
    "来てくれてありがとう！楽しかったよ。",
]
NOT_GOODBYES = [
    "Nice to see you again!",
    "Hello! How are you?",
    "I said goodbye to my old shop last year.",
    "Take care of the roses, they need water.",
    "It was a good night for fishing.",
    "I see you like tea.",
    "Take care! Will you come again next week?",  # still asks: it waits for an answer
    "We will head out to the market tomorrow.",
    "It is time to go fishing!",
    "I would love to see you try my bread.",
    "Goodbye is such a sad word, is it not? What do you bake?",
    "Goodbye, I said, and then I came back. The sea called me home. Funny, isn't it?",
    "",
    "またお茶を入れますね。",
    "この猫はまたねこじゃらしで遊んでる。",
    "今度のおやすみの日に海へ行こう。",
    "それでは、お茶をどうぞ。",
    "お暇ですか？",
    "ようこそ！どうぞ座って。",
]


@pytest.mark.parametrize("line", GOODBYES)
def test_a_goodbye_is_recognised(line: str) -> None:
    assert says_goodbye(line)


@pytest.mark.parametrize("line", NOT_GOODBYES)
def test_what_only_mentions_leaving_is_not_a_goodbye(line: str) -> None:
    assert not says_goodbye(line)


def test_a_goodbye_counts_only_from_the_fifth_line() -> None:
    assert FIRST_GOODBYE_TURN == 4
    for turn in range(FIRST_GOODBYE_TURN):
        assert not counts_as_goodbye(turn, "Thanks for coming! Goodbye!")
    assert counts_as_goodbye(FIRST_GOODBYE_TURN, "Thanks for coming! Goodbye!")
    assert not counts_as_goodbye(10, "Tell me more about the sea.")


def test_only_the_end_of_a_line_counts() -> None:
    assert not says_goodbye("Bye! No wait. I have one more story. It is about a whale.")
    assert says_goodbye("One more story, then. It was about a whale. Anyway, see you!")
