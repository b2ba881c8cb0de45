"""The party's rules: whose turn it is to go out, who is busy, how a character lives at a
party (its directory, engine, network, pace)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from keys.errors import ConfigError
from node.config import CharacterConfig, EngineSettings, NetworkSettings
from node.events import EventLog
from node.party.conductor import Conductor, next_visitor
from node.party.settings import (
    LOCAL_LISTEN,
    PARTY_COOLDOWN_S,
    PartySettings,
    at_party,
    character_files,
    load_party,
)

GUESTS = ["mina", "kai", "hana"]


def test_the_one_out_least_recently_goes_next_never_a_busy_or_tried_one() -> None:
    rng = random.Random(1)
    last = {"mina": 30.0, "kai": 10.0, "hana": 20.0}
    free = frozenset[str]()
    assert next_visitor(GUESTS, busy=free, last_out=last, tried=free, rng=rng) == "kai"
    assert (
        next_visitor(GUESTS, busy=frozenset({"kai"}), last_out=last, tried=free, rng=rng) == "hana"
    )
    assert (
        next_visitor(
            GUESTS, busy=frozenset({"kai"}), last_out=last, tried=frozenset({"hana"}), rng=rng
        )
        == "mina"
    )
    assert next_visitor(GUESTS, busy=frozenset(GUESTS), last_out=last, tried=free, rng=rng) is None
    # Never out beats any time out.
    assert (
        next_visitor(GUESTS, busy=free, last_out={"mina": 1.0, "kai": 2.0}, tried=free, rng=rng)
        == "hana"
    )


def test_a_character_is_busy_from_its_visit_start_to_its_end() -> None:
    conductor = Conductor([], EventLog("json"))
    conductor.visit_started("kai", "v1")
    conductor.visit_started("kai", "v2")  # hosting while out, say
    conductor.visit_ended("kai", "v1")
    assert conductor.busy_now() == {"kai"}
    conductor.visit_ended("kai", "v2")
    conductor.visit_ended("mina", "declined-before-it-started")
    assert conductor.busy_now() == frozenset()


def test_at_a_party_a_character_lives_in_the_party_dir_on_loopback_paced_by_the_party(
    tmp_path: Path,
) -> None:
    own = CharacterConfig(
        name="Kai",
        engines=(EngineSettings(name="ollama", preset="ollama", model="llama3.2"),),
        network=NetworkSettings(listen=("/ip4/0.0.0.0/tcp/4001",), mdns=True),
    )
    party = at_party(own, PartySettings(data_dir=tmp_path, model="smollm2-135m"))
    assert party.resolved_data_dir() == tmp_path / "kai"
    assert [(e.preset, e.model) for e in party.engines] == [("embedded", "smollm2-135m")]
    assert party.network.listen == LOCAL_LISTEN and not party.network.mdns
    assert not party.autonomy.enabled  # the conductor sends it out
    assert party.autonomy.cooldown_s == PARTY_COOLDOWN_S
    remote = at_party(
        own,
        PartySettings(data_dir=tmp_path, engine_url="http://127.0.0.1:9/v1", engine_model="x"),
    )
    assert [(e.base_url, e.model) for e in remote.engines] == [("http://127.0.0.1:9/v1", "x")]
    lan = at_party(own, PartySettings(data_dir=tmp_path, lan=True))
    assert lan.network.mdns and lan.network.listen == ("/ip4/0.0.0.0/tcp/0",)


def test_the_samples_are_at_least_three_one_speaking_japanese() -> None:
    configs = load_party(PartySettings())
    assert len(configs) >= 3
    assert any(c.persona.languages[0] == "ja" for c in configs)
    assert len({c.persona.personality for c in configs}) == len(configs)


def test_a_party_refuses_twins_and_loners(tmp_path: Path) -> None:
    mina = next(p for p in character_files(PartySettings()) if p.name == "mina.json")
    with pytest.raises(ConfigError, match="share the name"):
        load_party(PartySettings(characters=(mina, mina)))
    with pytest.raises(ConfigError, match="at least two"):
        load_party(PartySettings(characters=(mina,)))
