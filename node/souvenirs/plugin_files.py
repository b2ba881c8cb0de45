"""Plugins dropped into ``<data_dir>/plugins/`` (one JSON object per file), read at start.

An owner can add a tool server without editing the character file: ``plugins/git.json``
declares the plugin ``git`` (the file's stem, unless the object names itself). A bad file
stops the start with a :class:`keys.errors.ConfigError` naming the file, as a bad
character file does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from keys.errors import ConfigError
from node.config.loading import parse_souvenir
from node.config.settings import SOUVENIR_NAME_PATTERN, SouvenirSettings

PLUGINS_DIR = "plugins"
MAX_PLUGIN_FILE_BYTES = 64 * 1024


def read_plugin_files(data_dir: Path) -> tuple[SouvenirSettings, ...]:
    """Every ``plugins/*.json`` in ``data_dir``, sorted by file name; none if no folder."""
    folder = data_dir / PLUGINS_DIR
    if not folder.is_dir():
        return ()
    plugins = []
    for path in sorted(folder.glob("*.json")):
        where = str(path)
        try:
            if path.stat().st_size > MAX_PLUGIN_FILE_BYTES:
                raise ConfigError(where, f"larger than {MAX_PLUGIN_FILE_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(where, f"cannot read: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(where, "not UTF-8 text") from None
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(where, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
        stem = path.stem
        named = isinstance(raw, dict) and "name" in raw
        if not named and not SOUVENIR_NAME_PATTERN.match(stem):
            raise ConfigError(where, "the file name must be 1-32 of a-z, 0-9 and '-'")
        plugins.append(parse_souvenir(raw, where, default_name=stem))
    return tuple(plugins)


def all_souvenirs(
    configured: Sequence[SouvenirSettings], data_dir: Path
) -> tuple[SouvenirSettings, ...]:
    """The character file's plugins, then the plugin folder's; a name used twice is a
    :class:`ConfigError` (names are how owners, logs and lent tools tell plugins apart)."""
    plugins = (*configured, *read_plugin_files(data_dir))
    seen: set[str] = set()
    for plugin in plugins:
        if plugin.name in seen:
            raise ConfigError(
                str(data_dir / PLUGINS_DIR), f"souvenir {plugin.name!r} is declared twice"
            )
        seen.add(plugin.name)
    return plugins


__all__ = ["PLUGINS_DIR", "all_souvenirs", "read_plugin_files"]
