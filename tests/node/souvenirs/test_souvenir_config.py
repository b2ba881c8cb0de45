"""Souvenir settings: the character file's ``"souvenirs"`` and ``plugins/*.json``, with
errors that name the field (or the file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keys.errors import ConfigError
from node.config.loading import parse_config
from node.config.settings import SouvenirSettings
from node.souvenirs import all_souvenirs, read_plugin_files

TIME: dict[str, Any] = {
    "name": "time",
    "command": ["mcp-server-time", "--local-timezone", "Asia/Tokyo"],
    "tools": {"get_current_time": "lend", "convert_time": "lend", "git_commit": "ask"},
}


def config_with(*plugins: Any) -> Any:
    return parse_config({"name": "Kai", "souvenirs": list(plugins)})


def test_a_full_plugin_entry_parses_with_defaults() -> None:
    (time,) = config_with(TIME).souvenirs
    assert time == SouvenirSettings(
        name="time",
        command=("mcp-server-time", "--local-timezone", "Asia/Tokyo"),
        tools=(("get_current_time", "lend"), ("convert_time", "lend"), ("git_commit", "ask")),
    )
    assert (time.network, time.unsandboxed, time.env, time.paths) == (False, False, (), ())
    assert parse_config({"name": "Kai"}).souvenirs == ()


def test_every_field_parses() -> None:
    entry = {
        **TIME,
        "network": True,
        "unsandboxed": True,
        "env": {"TZ": "UTC"},
        "paths": ["/srv/repo"],
        "writable_paths": ["/srv/out"],
    }
    (time,) = config_with(entry).souvenirs
    assert time.network and time.unsandboxed
    assert time.env == (("TZ", "UTC"),)
    assert (time.paths, time.writable_paths) == (("/srv/repo",), ("/srv/out",))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "Time"}, "souvenirs[0].name"),
        ({"name": "x" * 33}, "souvenirs[0].name"),
        ({"name": None}, "souvenirs[0].name"),
        ({"command": []}, "souvenirs[0].command"),
        ({"command": "mcp-server-time"}, "souvenirs[0].command"),
        ({"command": [1]}, "souvenirs[0].command[0]"),
        ({"command": [""]}, "souvenirs[0].command[0]"),
        ({"tools": {"get_current_time": "yes"}}, "souvenirs[0].tools.get_current_time"),
        ({"tools": {"bad name!": "lend"}}, "souvenirs[0].tools.bad name!"),
        ({"tools": ["get_current_time"]}, "souvenirs[0].tools"),
        ({"network": "no"}, "souvenirs[0].network"),
        ({"unsandboxed": 1}, "souvenirs[0].unsandboxed"),
        ({"env": {"TZ": 1}}, "souvenirs[0].env.TZ"),
        ({"env": {"1X": "a"}}, "souvenirs[0].env.1X"),
        ({"paths": ["relative/dir"]}, "souvenirs[0].paths[0]"),
        ({"writable_paths": "/srv"}, "souvenirs[0].writable_paths"),
        ({"colour": "red"}, "souvenirs[0].colour"),
    ],
)
def test_bad_entries_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with({**TIME, **change})
    assert caught.value.field == field


def test_names_are_unique_and_souvenirs_is_a_list() -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(TIME, TIME)
    assert caught.value.field == "souvenirs[1].name"
    with pytest.raises(ConfigError) as caught:
        parse_config({"name": "Kai", "souvenirs": TIME})
    assert caught.value.field == "souvenirs"


def test_plugin_files_are_named_by_their_stem(tmp_path: Path) -> None:
    assert read_plugin_files(tmp_path) == ()
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "git.json").write_text(json.dumps({"command": ["mcp-server-git"]}))
    (folder / "clock.json").write_text(json.dumps(TIME))
    (folder / "notes.txt").write_text("not a plugin")
    plugins = read_plugin_files(tmp_path)
    assert [p.name for p in plugins] == ["time", "git"]  # clock.json names itself
    assert plugins[1].command == ("mcp-server-git",) and plugins[1].tools == ()


@pytest.mark.parametrize(
    ("file_name", "text"),
    [
        ("broken.json", "{not json"),
        ("Bad Name.json", json.dumps({"command": ["x"]})),
        ("list.json", json.dumps([TIME])),
        ("nocmd.json", json.dumps({"tools": {}})),
    ],
)
def test_a_bad_plugin_file_is_an_error_naming_the_file(
    tmp_path: Path, file_name: str, text: str
) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / file_name).write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_plugin_files(tmp_path)
    assert caught.value.field.startswith(str(folder / file_name))


def test_file_and_character_plugins_may_not_share_a_name(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "time.json").write_text(json.dumps({"command": ["x"]}))
    configured = config_with(TIME).souvenirs
    with pytest.raises(ConfigError, match="'time' is declared twice"):
        all_souvenirs(configured, tmp_path)
    (tmp_path / "plugins" / "time.json").rename(tmp_path / "plugins" / "other.json")
    assert [p.name for p in all_souvenirs(configured, tmp_path)] == ["time", "other"]
