"""Reactions between visits, the pure parts: which envelopes concern a character, how
often it may react, the one-line format its engine answers in, and the action it becomes.
(On real nodes: ``tests/process/test_reactions.py``.)"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from keys import TOPIC_ACTIONS, TOPIC_CONTEXTS, Identity, Verified, seal, verify
from node.agent.prompts.reaction import Heard, Reaction, parse_reaction, said_in
from node.agent.prompts.views import PartnerView
from node.agent.reacting import Reactor, Restraint, stimulus_of
from node.agent.reacting.reactor import action_body
from node.agent.voice import EngineVoice
from node.config import ReactionSettings, parse_config
from node.events import EventLog

NOW = 1_800_000_000_000
ME = Identity.generate()
OTHER = Identity.generate()
THIRD = Identity.generate()
me = ME.peer_id_str
other = OTHER.peer_id_str


def envelope(sender: Identity, kind: str, body: dict[str, Any], seq: int = 1) -> Verified:
    channel = TOPIC_ACTIONS if kind == "action" else TOPIC_CONTEXTS
    raw = seal(sender, kind=kind, channel=channel, seq=seq, ts_ms=NOW, body=body)
    return verify(raw, channel=channel, now_ms=NOW)


def heard(sender: Identity, kind: str, body: dict[str, Any]) -> Heard | None:
    stimulus = stimulus_of(envelope(sender, kind, body), me)
    return None if stimulus is None else stimulus.heard


def test_our_owners_context_concerns_us_unless_it_is_for_someone_else() -> None:
    text = {"type": "text", "text": "It rains."}
    assert heard(ME, "context", text) == Heard("context", "It rains.", from_owner=True)
    assert heard(ME, "context", {**text, "to": "*"}) == Heard(
        "context", "It rains.", from_owner=True
    )
    assert heard(ME, "context", {**text, "to": me}) is not None
    assert heard(ME, "context", {**text, "to": other}) is None


def test_another_characters_context_concerns_us_only_when_it_is_for_us_or_everyone() -> None:
    text = {"type": "text", "text": "A storm is coming."}
    assert heard(OTHER, "context", text) is None  # its owner talking to it
    assert heard(OTHER, "context", {**text, "to": "*"}) == Heard("context", "A storm is coming.")
    assert heard(OTHER, "context", {**text, "to": me}) == Heard("context", "A storm is coming.")
    assert heard(OTHER, "context", {**text, "to": THIRD.peer_id_str}) is None
    image = {"type": "image", "mime": "image/png", "data": b"\x89PNG", "alt": "a cat", "to": me}
    assert heard(OTHER, "context", image) == Heard("context", "a cat", image=True)
    del image["alt"]
    assert heard(OTHER, "context", image) == Heard("context", "", image=True)


def test_actions_concern_us_when_aimed_at_us_and_not_part_of_a_visit() -> None:
    assert heard(OTHER, "action", {"type": "speak", "text": "Hi!", "to": me}) == Heard(
        "speak", "Hi!"
    )
    assert heard(OTHER, "action", {"type": "gesture", "name": "bow", "to": me}) == Heard(
        "gesture", "bow"
    )
    assert heard(OTHER, "action", {"type": "move", "to": me}) == Heard("move")
    visit_line = {"type": "speak", "text": "Hi!", "to": me, "visit": "v" * 32}
    assert heard(OTHER, "action", visit_line) is None
    assert heard(OTHER, "action", {"type": "speak", "text": "Hi!"}) is None
    assert heard(OTHER, "action", {"type": "gesture", "name": "bow", "to": other}) is None
    assert heard(OTHER, "action", {"type": "move", "to": "the garden"}) is None
    assert heard(OTHER, "action", {"type": "look", "at": me}) is None
    # Never our own actions, even aimed at ourselves.
    assert heard(ME, "action", {"type": "gesture", "name": "bow", "to": me}) is None


def test_the_hourly_limit_counts_every_reaction_tried() -> None:
    restraint = Restraint(ReactionSettings(per_hour=3))
    for minute in range(3):
        assert restraint.refusal(None, NOW + minute * 60_000) is None
        restraint.tried(NOW + minute * 60_000)
    assert restraint.refusal(None, NOW + 30 * 60_000) == "rate_limited"
    assert restraint.refusal(other, NOW + 30 * 60_000) == "rate_limited"
    assert restraint.refusal(None, NOW + 60 * 60_000) is None  # the first is an hour old


def test_an_exchange_with_one_character_rests_after_a_few_turns_until_it_is_quiet() -> None:
    restraint = Restraint(ReactionSettings(exchange_turns=2, exchange_quiet_s=600))
    restraint.answered(other, NOW)
    assert restraint.refusal(other, NOW + 1_000) is None
    restraint.answered(other, NOW + 2_000)
    assert restraint.refusal(other, NOW + 3_000) == "exchange_resting"
    assert restraint.refusal(THIRD.peer_id_str, NOW + 3_000) is None
    assert restraint.refusal(None, NOW + 3_000) is None  # our owner is no exchange
    assert restraint.refusal(other, NOW + 2_000 + 600_000) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("say: Oh, rain again!", Reaction("say", "Oh, rain again!")),
        ("Say： 雨だね。", Reaction("say", "雨だね。")),
        ("**gesture:** Wave", Reaction("gesture", "wave")),
        ("gesture: thumbs up", Reaction("gesture", "thumbs_up")),
        ("look: the grey sky.", Reaction("look", "the grey sky")),
        ("move: the window", Reaction("move", "the window")),
        ("Nothing.", Reaction("nothing")),
        ("\n\nnothing\nsay: more", Reaction("nothing")),
        ("say: hi\nsay: ignored", Reaction("say", "hi")),
    ],
)
def test_the_format_is_read_from_the_first_line(text: str, expected: Reaction) -> None:
    assert parse_reaction(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Oh, rain again!",
        "Mina says: hello",
        "I would say: hello",
        "say:",
        "gesture: wave!!1",
        "gesture: 手を振る",
        "dance: a jig",
        "look: ",
        "nothing at all, I ignore them",
    ],
)
def test_anything_else_is_no_reaction(text: str) -> None:
    assert parse_reaction(text) is None


def test_only_the_words_of_a_say_line_are_judged_as_speech() -> None:
    assert said_in("say: Hello there.\nnothing") == "Hello there."
    assert said_in("gesture: wave") == ""
    assert said_in("whatever") == ""


def test_a_reaction_becomes_one_action_aimed_back_at_the_one_who_acted() -> None:
    rex = PartnerView(other, "Rex")
    assert action_body(Reaction("say", "Hi Rex."), other, rex) == {
        "type": "speak",
        "text": "Hi Rex.",
        "to": other,
    }
    assert action_body(Reaction("gesture", "nod"), other, rex) == {
        "type": "gesture",
        "name": "nod",
        "to": other,
    }
    assert action_body(Reaction("look", "them"), other, rex) == {"type": "look", "at": other}
    assert action_body(Reaction("look", "rex"), other, rex) == {"type": "look", "at": other}
    assert action_body(Reaction("look", "the sea"), other, rex) == {"type": "look", "at": "the sea"}
    assert action_body(Reaction("move", "the door"), other, rex) == {
        "type": "move",
        "to": "the door",
    }
    assert action_body(Reaction("nothing"), other, rex) is None
    # Our owner's context: said to nobody in particular.
    assert action_body(Reaction("say", "Rain!"), None, None) == {"type": "speak", "text": "Rain!"}


def test_what_happened_over_a_minute_ago_is_let_be() -> None:
    out = io.StringIO()
    config = parse_config({"name": "Mina"})
    voice = EngineVoice(config, ME.peer_id, lambda: pytest.fail("no engine call"))
    reactor = Reactor(
        me=me,
        settings=ReactionSettings(),
        voice=voice,
        publish=lambda kind, body: pytest.fail("nothing published"),
        events=EventLog("json", out),
        engines=lambda: None,
        in_visit=lambda partner, since: False,
        character=lambda peer: PartnerView(peer, "Rex"),
        clock_ms=lambda: NOW + 61_000,
    )
    reactor.heard(envelope(OTHER, "action", {"type": "gesture", "name": "bow", "to": me}))
    (event,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (event["event"], event["reason"]) == ("reaction_skipped", "stale")
    assert event["stimulus"]["kind"] == "gesture"
