"""Character configuration: a JSON file, then environment overrides, then CLI flags.

The result is a frozen :class:`CharacterConfig`. Every problem raises
:class:`keys.errors.ConfigError` naming the field (dotted path) and what is wrong.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import platformdirs

from keys.errors import ConfigError

DEFAULT_LISTEN = ("/ip4/0.0.0.0/tcp/0",)
ENGINE_PRESETS = ("embedded", "ollama", "lmstudio", "koboldcpp", "openai-compatible")
MAX_TEXT = 2000
# The directory's name-card bounds (registry_crdt.limits), checked here so that a bad
# config fails at start with the field named, not when the card is signed.
MAX_DESCRIPTION = 280
MAX_TAGS = 16
MAX_TAG_CHARS = 32

_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")


@dataclass(frozen=True, slots=True)
class Persona:
    personality: str = ""
    background: str = ""
    greeting: str = ""
    languages: tuple[str, ...] = ("en",)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    preset: str = "embedded"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (the key is never stored here)."""


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    listen: tuple[str, ...] = DEFAULT_LISTEN
    bootstrap: tuple[str, ...] = ()
    mdns: bool = True


@dataclass(frozen=True, slots=True)
class CharacterConfig:
    name: str
    persona: Persona = field(default_factory=Persona)
    description: str = ""
    """One line about the character for the directory (at most 280 characters)."""
    tags: tuple[str, ...] = ()
    engine: EngineSettings = field(default_factory=EngineSettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    data_dir: Path | None = None

    def resolved_data_dir(self) -> Path:
        """The data directory: configured, or one per character under the user data dir."""
        if self.data_dir is not None:
            return self.data_dir
        return Path(platformdirs.user_data_dir("roomverse")) / "characters" / slug(self.name)


def slug(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return cleaned or "character"


def load_config(path: Path, env: Mapping[str, str] | None = None) -> CharacterConfig:
    """Read a character file and apply environment overrides (``ROOMVERSE_*``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(str(path), f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    config = parse_config(raw, base_dir=path.parent)
    return apply_env(config, os.environ if env is None else env)


def parse_config(raw: Any, *, base_dir: Path | None = None) -> CharacterConfig:
    obj = _object(raw, "config")
    _no_unknown(
        obj, "", {"name", "description", "tags", "persona", "engine", "network", "data_dir"}
    )
    name = _string(obj.get("name"), "name", required=True, limit=64)
    if not _NAME_RE.match(name):
        raise ConfigError("name", "must be 1-64 printable characters")
    description = _string(obj.get("description"), "description", limit=MAX_DESCRIPTION)
    tags = _tags(obj.get("tags", []))
    persona = _persona(obj.get("persona", {}))
    engine = _engine(obj.get("engine", {}))
    network = _network(obj.get("network", {}))
    data_dir = None
    if obj.get("data_dir") is not None:
        data_dir = Path(_string(obj["data_dir"], "data_dir", required=True, limit=4096))
        if not data_dir.is_absolute() and base_dir is not None:
            data_dir = base_dir / data_dir
    return CharacterConfig(name, persona, description, tags, engine, network, data_dir)


def apply_env(config: CharacterConfig, env: Mapping[str, str]) -> CharacterConfig:
    engine = config.engine
    if env.get("ROOMVERSE_ENGINE_URL"):
        engine = replace(engine, preset="openai-compatible", base_url=env["ROOMVERSE_ENGINE_URL"])
    if env.get("ROOMVERSE_ENGINE_MODEL"):
        engine = replace(engine, model=env["ROOMVERSE_ENGINE_MODEL"])
    network = config.network
    if "ROOMVERSE_MDNS" in env:
        network = replace(network, mdns=_env_bool(env["ROOMVERSE_MDNS"], "ROOMVERSE_MDNS"))
    data_dir = Path(env["ROOMVERSE_DATA_DIR"]) if env.get("ROOMVERSE_DATA_DIR") else None
    return replace(config, engine=engine, network=network, data_dir=data_dir or config.data_dir)


def with_overrides(
    config: CharacterConfig,
    *,
    listen: list[str] | None = None,
    bootstrap: list[str] | None = None,
    mdns: bool | None = None,
    data_dir: Path | None = None,
) -> CharacterConfig:
    """Apply command-line flags (they win over the file and the environment)."""
    network = config.network
    if listen:
        network = replace(network, listen=_multiaddrs(listen, "--listen"))
    if bootstrap:
        network = replace(network, bootstrap=_multiaddrs(bootstrap, "--bootstrap"))
    if mdns is not None:
        network = replace(network, mdns=mdns)
    return replace(config, network=network, data_dir=data_dir or config.data_dir)


def _persona(raw: Any) -> Persona:
    obj = _object(raw, "persona")
    _no_unknown(obj, "persona.", {"personality", "background", "greeting", "languages"})
    languages = obj.get("languages", ["en"])
    if not isinstance(languages, list) or not languages:
        raise ConfigError("persona.languages", "must be a non-empty list of language codes")
    langs = tuple(
        _string(lang, f"persona.languages[{i}]", required=True, limit=16)
        for i, lang in enumerate(languages)
    )
    return Persona(
        personality=_string(obj.get("personality"), "persona.personality", limit=MAX_TEXT),
        background=_string(obj.get("background"), "persona.background", limit=MAX_TEXT),
        greeting=_string(obj.get("greeting"), "persona.greeting", limit=500),
        languages=langs,
    )


def _tags(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_TAGS:
        raise ConfigError("tags", f"must be a list of at most {MAX_TAGS} short words")
    return tuple(
        _string(tag, f"tags[{i}]", required=True, limit=MAX_TAG_CHARS) for i, tag in enumerate(raw)
    )


def _engine(raw: Any) -> EngineSettings:
    obj = _object(raw, "engine")
    _no_unknown(obj, "engine.", {"preset", "base_url", "model", "api_key_env"})
    preset = _string(obj.get("preset"), "engine.preset", limit=32) or "embedded"
    if preset not in ENGINE_PRESETS:
        raise ConfigError("engine.preset", f"must be one of {', '.join(ENGINE_PRESETS)}")
    base_url = _string(obj.get("base_url"), "engine.base_url", limit=2048) or None
    if base_url is not None and not re.match(r"^https?://", base_url):
        raise ConfigError("engine.base_url", "must start with http:// or https://")
    if preset == "openai-compatible" and base_url is None:
        raise ConfigError("engine.base_url", "required when preset is openai-compatible")
    key_env = _string(obj.get("api_key_env"), "engine.api_key_env", limit=128) or None
    if key_env is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key_env):
        raise ConfigError("engine.api_key_env", "must be an environment variable name")
    model = _string(obj.get("model"), "engine.model", limit=256) or None
    return EngineSettings(preset, base_url, model, key_env)


def _network(raw: Any) -> NetworkSettings:
    obj = _object(raw, "network")
    _no_unknown(obj, "network.", {"listen", "bootstrap", "mdns"})
    listen = _multiaddr_list(obj.get("listen", list(DEFAULT_LISTEN)), "network.listen")
    if not listen:
        raise ConfigError("network.listen", "needs at least one multiaddr")
    bootstrap = _multiaddr_list(obj.get("bootstrap", []), "network.bootstrap")
    mdns = obj.get("mdns", True)
    if not isinstance(mdns, bool):
        raise ConfigError("network.mdns", "must be true or false")
    return NetworkSettings(listen, bootstrap, mdns)


def _multiaddr_list(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise ConfigError(where, "must be a list of multiaddrs")
    return _multiaddrs(raw, where)


def _multiaddrs(values: list[Any], where: str) -> tuple[str, ...]:
    out = []
    for i, value in enumerate(values):
        text = _string(value, f"{where}[{i}]", required=True, limit=1024)
        if not text.startswith("/"):
            raise ConfigError(f"{where}[{i}]", f"not a multiaddr: {text!r}")
        out.append(text)
    return tuple(out)


def _object(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a JSON object")
    return raw


def _no_unknown(obj: Mapping[str, Any], prefix: str, known: set[str]) -> None:
    for key in obj:
        if key not in known:
            raise ConfigError(f"{prefix}{key}", "unknown field")


def _string(raw: Any, where: str, *, required: bool = False, limit: int) -> str:
    if raw is None:
        if required:
            raise ConfigError(where, "is required")
        return ""
    if not isinstance(raw, str):
        raise ConfigError(where, "must be a string")
    if required and not raw.strip():
        raise ConfigError(where, "must not be empty")
    if len(raw) > limit:
        raise ConfigError(where, f"longer than {limit} characters")
    return raw


def _env_bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"must be 0/1/true/false, not {value!r}")
