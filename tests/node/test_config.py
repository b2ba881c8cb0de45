"""Character config: file → environment → flags, and errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keys.errors import ConfigError
from node.cli.main import main
from node.config import apply_env, load_config, parse_config, with_overrides
from tests.support.procs import REPO

SAMPLES = REPO / "configs"


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_shipped_samples_load(sample: Path) -> None:
    config = load_config(sample, env={})
    assert config.name
    assert config.network.listen


def test_languages_are_language_codes_the_first_one_spoken_first() -> None:
    assert parse_config({"name": "A"}).persona.languages == ("en",)
    config = parse_config({"name": "A", "persona": {"languages": ["ja", "en", "pt-BR"]}})
    assert config.persona.languages == ("ja", "en", "pt-BR")


def test_defaults() -> None:
    config = parse_config({"name": "Mina"})
    assert config.network.mdns is True
    assert config.network.listen == ("/ip4/0.0.0.0/tcp/0",)
    assert [e.preset for e in config.engines] == ["embedded"]
    assert config.autonomy.enabled is True
    assert config.autonomy.interval_s == 3600.0
    reactions = config.reactions
    assert (reactions.enabled, reactions.per_hour, reactions.exchange_turns) == (True, 20, 3)
    assert (reactions.pause_min_s, reactions.pause_max_s) == (2.0, 8.0)
    assert config.visits.policy == "open"
    assert config.resolved_data_dir().name == "mina"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 3}, "name"),
        ({"name": "A", "colour": "red"}, "colour"),
        ({"name": "A", "persona": {"languages": []}}, "persona.languages"),
        ({"name": "A", "persona": {"languages": "en"}}, "persona.languages"),
        ({"name": "A", "persona": {"languages": ["en"] * 9}}, "persona.languages"),
        ({"name": "A", "persona": {"languages": ["english!"]}}, "persona.languages[0]"),
        ({"name": "A", "persona": {"languages": ["en", "ja", "JA"]}}, "persona.languages[2]"),
        ({"name": "A", "persona": {"languages": [7]}}, "persona.languages[0]"),
        ({"name": "A", "persona": {"greeting": "x" * 501}}, "persona.greeting"),
        ({"name": "A", "engine": {"preset": "gpt-9"}}, "engine.preset"),
        ({"name": "A", "engine": {"base_url": "ftp://x"}}, "engine.base_url"),
        ({"name": "A", "engine": {"preset": "openai-compatible"}}, "engine.base_url"),
        ({"name": "A", "engine": {"api_key_env": "not a name"}}, "engine.api_key_env"),
        ({"name": "A", "engine": {"timeout_s": 0}}, "engine.timeout_s"),
        ({"name": "A", "engine": {}, "engines": []}, "engines"),
        ({"name": "A", "engines": []}, "engines"),
        ({"name": "A", "engines": [{"preset": "ollama"}, {"preset": "ollama"}]}, "engines[1].name"),
        ({"name": "A", "engines": [{"cheap": "yes"}]}, "engines[0].cheap"),
        ({"name": "A", "engines": [{"tools": "no"}]}, "engines[0].tools"),
        ({"name": "A", "budget": {"daily_tokens": 0}}, "budget.daily_tokens"),
        ({"name": "A", "budget": {"low_at": 0.9, "critical_at": 0.5}}, "budget.critical_at"),
        ({"name": "A", "visits": {"policy": "known"}}, "visits.policy"),
        ({"name": "A", "visits": {"max_turns": 1}}, "visits.max_turns"),
        ({"name": "A", "autonomy": {"interval_s": "hourly"}}, "autonomy.interval_s"),
        ({"name": "A", "autonomy": {"choose": "dice"}}, "autonomy.choose"),
        ({"name": "A", "reactions": {"enabled": "yes"}}, "reactions.enabled"),
        ({"name": "A", "reactions": {"per_hour": 0}}, "reactions.per_hour"),
        ({"name": "A", "reactions": {"exchange_turns": 1.5}}, "reactions.exchange_turns"),
        ({"name": "A", "reactions": {"pause_min_s": 5, "pause_max_s": 1}}, "reactions.pause_max_s"),
        ({"name": "A", "reactions": {"vision": True}}, "reactions.vision"),
        ({"name": "A", "network": {"listen": "x"}}, "network.listen"),
        ({"name": "A", "network": {"listen": []}}, "network.listen"),
        ({"name": "A", "network": {"bootstrap": ["tcp/1"]}}, "network.bootstrap[0]"),
        ({"name": "A", "network": {"mdns": "yes"}}, "network.mdns"),
        ({"name": "A", "description": "x" * 281}, "description"),
        ({"name": "A", "tags": "tea"}, "tags"),
        ({"name": "A", "tags": ["t"] * 17}, "tags"),
        ({"name": "A", "tags": ["ok", ""]}, "tags[1]"),
    ],
)
def test_invalid_config_names_the_field(raw: object, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert info.value.field == field


def test_environment_then_flags_override(tmp_path: Path) -> None:
    config = parse_config({"name": "Mina", "network": {"mdns": True}})
    config = apply_env(
        config,
        {
            "ROOMVERSE_MDNS": "0",
            "ROOMVERSE_DATA_DIR": str(tmp_path / "env"),
            "ROOMVERSE_ENGINE_URL": "http://127.0.0.1:11434/v1",
        },
    )
    assert config.network.mdns is False
    assert config.data_dir == tmp_path / "env"
    (engine,) = config.engines
    assert (engine.name, engine.base_url) == ("override", "http://127.0.0.1:11434/v1")
    config = with_overrides(
        config,
        mdns=True,
        data_dir=tmp_path / "flag",
        listen=["/ip4/1.2.3.4/tcp/1"],
        engine_url="http://127.0.0.1:9/v1",
        engine_model="tiny",
        autonomy=False,
        visit_interval_s=30.0,
    )
    (engine,) = config.engines
    assert (engine.base_url, engine.model) == ("http://127.0.0.1:9/v1", "tiny")
    assert (config.autonomy.enabled, config.autonomy.interval_s) == (False, 30.0)
    assert config.network.mdns is True
    assert config.data_dir == tmp_path / "flag"
    assert config.network.listen == ("/ip4/1.2.3.4/tcp/1",)


def test_engine_list_keeps_failover_order() -> None:
    config = parse_config(
        {
            "name": "A",
            "engines": [
                {"preset": "ollama", "model": "llama3.2"},
                {"name": "small", "preset": "lmstudio", "cheap": True, "timeout_s": 5},
                {"name": "no-tools", "preset": "koboldcpp", "tools": False},
            ],
        }
    )
    assert [(e.name, e.cheap, e.timeout_s, e.tools) for e in config.engines] == [
        ("ollama", False, 60.0, True),
        ("small", True, 5.0, True),
        ("no-tools", False, 60.0, False),
    ]
    only_model = with_overrides(config, engine_model="qwen")
    assert [e.model for e in only_model.engines] == ["qwen", None, None]


def test_bad_env_value_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        apply_env(parse_config({"name": "A"}), {"ROOMVERSE_MDNS": "maybe"})
    assert info.value.field == "ROOMVERSE_MDNS"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"name": "A", "network": {"mdns": 1}}), "network.mdns"),
        (
            json.dumps({"name": "A", "network": {"listen": ["/ip4/1.2.3.4/tcp/notaport"]}}),
            "network.listen[0]",
        ),
        (
            json.dumps({"name": "A", "network": {"bootstrap": ["/ip4/1.2.3.4/tcp/1"]}}),
            "network.bootstrap[0]",
        ),
    ],
)
def test_cli_reports_config_errors_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    code = main(["node", "--character", str(path), "--data-dir", str(tmp_path / "d"), "--no-mdns"])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "--character", str(tmp_path / "nope.json")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_a_card_the_directory_would_refuse_fails_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "A", "tags": ["same", "same"]}))
    code = main(["node", "--character", str(path), "--data-dir", str(tmp_path / "d"), "--no-mdns"])
    assert code == 2
    assert "cannot make the directory card" in capsys.readouterr().err
