"""Reading a character's configuration: a JSON file, then environment overrides, then
command-line flags. Every problem raises :class:`keys.errors.ConfigError` naming the field
(dotted path) and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from keys.errors import ConfigError
from node.config.settings import (
    DEFAULT_LISTEN,
    ENGINE_PRESETS,
    LANGUAGE_PATTERN,
    LEND_MODES,
    MAX_DESCRIPTION,
    MAX_LANGUAGES,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TEXT,
    MCP_TOOL_NAME_PATTERN,
    NAME_PATTERN,
    OVERRIDE_ENGINE,
    SOUVENIR_NAME_PATTERN,
    VISIT_POLICIES,
    AutonomySettings,
    BudgetSettings,
    CharacterConfig,
    EngineSettings,
    IconSettings,
    NetworkSettings,
    Persona,
    ReactionSettings,
    SouvenirSettings,
    VisitSettings,
)


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
        obj,
        "",
        {
            "name",
            "description",
            "tags",
            "persona",
            "engine",
            "engines",
            "budget",
            "visits",
            "autonomy",
            "network",
            "data_dir",
            "souvenirs",
            "icon",
            "reactions",
        },
    )
    name = _string(obj.get("name"), "name", required=True, limit=64)
    if not NAME_PATTERN.match(name):
        raise ConfigError("name", "must be 1-64 printable characters")
    description = _string(obj.get("description"), "description", limit=MAX_DESCRIPTION)
    tags = _tags(obj.get("tags", []))
    persona = _persona(obj.get("persona", {}))
    engines = _engines(obj)
    budget = _budget(obj.get("budget", {}))
    visits = _visits(obj.get("visits", {}))
    autonomy = _autonomy(obj.get("autonomy", {}))
    network = _network(obj.get("network", {}))
    souvenirs = _souvenirs(obj.get("souvenirs", []))
    data_dir = None
    if obj.get("data_dir") is not None:
        data_dir = Path(_string(obj["data_dir"], "data_dir", required=True, limit=4096))
        if not data_dir.is_absolute() and base_dir is not None:
            data_dir = base_dir / data_dir
    icon = None if obj.get("icon") is None else _icon(obj["icon"], base_dir)
    return CharacterConfig(
        name,
        persona,
        description,
        tags,
        engines,
        budget,
        visits,
        autonomy,
        network,
        data_dir,
        souvenirs,
        icon,
        _reactions(obj.get("reactions", {})),
    )


ICON_TYPES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF8": "image/gif",
}
MAX_ICON_FILE_BYTES = 16 * 1024 * 1024


def _icon(raw: Any, base_dir: Path | None) -> IconSettings:
    """``{"file": PATH, "sha256": HEX}``: the file is read and must hash to ``sha256``."""
    obj = _object(raw, "icon")
    _no_unknown(obj, "icon.", {"file", "sha256"})
    path = Path(_string(obj.get("file"), "icon.file", required=True, limit=4096))
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    expected = _string(obj.get("sha256"), "icon.sha256", required=True, limit=64).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ConfigError("icon.sha256", "must be the sha256 of the file, 64 hex characters")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_ICON_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError("icon.file", f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_ICON_FILE_BYTES:
        raise ConfigError("icon.file", f"{path} is over 16 MiB")
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ConfigError("icon.sha256", f"{path} hashes to {actual}, not {expected}")
    riff_webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    mime = (
        "image/webp"
        if riff_webp
        else next((kind for magic, kind in ICON_TYPES.items() if data.startswith(magic)), None)
    )
    if mime is None:
        raise ConfigError("icon.file", f"{path} is not a PNG, JPEG, WebP or GIF image")
    return IconSettings(path, expected, mime, data)


def apply_env(config: CharacterConfig, env: Mapping[str, str]) -> CharacterConfig:
    config = with_engine_override(
        config, env.get("ROOMVERSE_ENGINE_URL") or None, env.get("ROOMVERSE_ENGINE_MODEL") or None
    )
    network = config.network
    if "ROOMVERSE_MDNS" in env:
        network = replace(network, mdns=_env_bool(env["ROOMVERSE_MDNS"], "ROOMVERSE_MDNS"))
    data_dir = Path(env["ROOMVERSE_DATA_DIR"]) if env.get("ROOMVERSE_DATA_DIR") else None
    return replace(config, network=network, data_dir=data_dir or config.data_dir)


def with_engine_override(
    config: CharacterConfig, url: str | None, model: str | None
) -> CharacterConfig:
    """``--engine-url``/``--engine-model`` (or their environment variables): a URL replaces
    the engine list with one OpenAI-compatible engine; a model alone changes the first."""
    engines = config.engines
    if url is not None:
        if not re.match(r"^https?://", url):
            raise ConfigError("engine url", f"must start with http:// or https://, not {url!r}")
        engines = (
            EngineSettings(
                name=OVERRIDE_ENGINE, preset="openai-compatible", base_url=url, model=model
            ),
        )
    elif model is not None:
        engines = (replace(engines[0], model=model), *engines[1:])
    return replace(config, engines=engines)


def with_overrides(
    config: CharacterConfig,
    *,
    listen: list[str] | None = None,
    bootstrap: list[str] | None = None,
    mdns: bool | None = None,
    data_dir: Path | None = None,
    engine_url: str | None = None,
    engine_model: str | None = None,
    autonomy: bool | None = None,
    visit_interval_s: float | None = None,
) -> CharacterConfig:
    """Apply command-line flags (they win over the file and the environment)."""
    config = with_engine_override(config, engine_url, engine_model)
    schedule = config.autonomy
    if autonomy is not None:
        schedule = replace(schedule, enabled=autonomy)
    if visit_interval_s is not None:
        if not visit_interval_s >= 1:
            raise ConfigError("--visit-interval", "must be at least 1 second")
        schedule = replace(schedule, interval_s=visit_interval_s)
    config = replace(config, autonomy=schedule)
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
    langs = _languages(obj.get("languages", ["en"]))
    return Persona(
        personality=_string(obj.get("personality"), "persona.personality", limit=MAX_TEXT),
        background=_string(obj.get("background"), "persona.background", limit=MAX_TEXT),
        greeting=_string(obj.get("greeting"), "persona.greeting", limit=500),
        languages=langs,
    )


def _languages(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LANGUAGES:
        raise ConfigError(
            "persona.languages",
            f"must be a list of 1 to {MAX_LANGUAGES} language codes, first the one spoken first",
        )
    languages: list[str] = []
    for i, value in enumerate(raw):
        where = f"persona.languages[{i}]"
        tag = _string(value, where, required=True, limit=35)
        if not LANGUAGE_PATTERN.match(tag):
            raise ConfigError(where, f'not a language code like "en", "ja" or "pt-BR": {tag!r}')
        if tag.lower() in (known.lower() for known in languages):
            raise ConfigError(where, f"{tag!r} is listed twice")
        languages.append(tag)
    return tuple(languages)


def _tags(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_TAGS:
        raise ConfigError("tags", f"must be a list of at most {MAX_TAGS} short words")
    return tuple(
        _string(tag, f"tags[{i}]", required=True, limit=MAX_TAG_CHARS) for i, tag in enumerate(raw)
    )


def _engines(obj: Mapping[str, Any]) -> tuple[EngineSettings, ...]:
    if "engine" in obj and "engines" in obj:
        raise ConfigError("engines", 'give either "engine" or "engines", not both')
    if "engines" not in obj:
        return (_engine(obj.get("engine", {}), "engine"),)
    raw = obj["engines"]
    if not isinstance(raw, list) or not 1 <= len(raw) <= 8:
        raise ConfigError("engines", "must be a list of 1 to 8 engines, in failover order")
    engines = tuple(_engine(item, f"engines[{i}]") for i, item in enumerate(raw))
    names = [engine.name for engine in engines]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"engines[{i}].name", f"duplicate engine name {name!r}")
    return engines


def _engine(raw: Any, where: str) -> EngineSettings:
    obj = _object(raw, where)
    _no_unknown(
        obj,
        f"{where}.",
        {"name", "preset", "base_url", "model", "api_key_env", "timeout_s", "cheap", "tools"},
    )
    preset = _string(obj.get("preset"), f"{where}.preset", limit=32) or "embedded"
    if preset not in ENGINE_PRESETS:
        raise ConfigError(f"{where}.preset", f"must be one of {', '.join(ENGINE_PRESETS)}")
    name = _string(obj.get("name"), f"{where}.name", limit=32) or preset
    if not re.match(r"^[A-Za-z0-9_.-]+$", name):
        raise ConfigError(f"{where}.name", "letters, digits, '.', '_' and '-' only")
    base_url = _string(obj.get("base_url"), f"{where}.base_url", limit=2048) or None
    if base_url is not None and not re.match(r"^https?://", base_url):
        raise ConfigError(f"{where}.base_url", "must start with http:// or https://")
    if preset == "openai-compatible" and base_url is None:
        raise ConfigError(f"{where}.base_url", "required when preset is openai-compatible")
    key_env = _string(obj.get("api_key_env"), f"{where}.api_key_env", limit=128) or None
    if key_env is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key_env):
        raise ConfigError(f"{where}.api_key_env", "must be an environment variable name")
    model = _string(obj.get("model"), f"{where}.model", limit=256) or None
    timeout_s = _number(obj.get("timeout_s", 60.0), f"{where}.timeout_s", 0.1, 3600.0)
    cheap = _bool(obj.get("cheap", False), f"{where}.cheap")
    tools = _bool(obj.get("tools", True), f"{where}.tools")
    return EngineSettings(name, preset, base_url, model, key_env, timeout_s, cheap, tools)


def _budget(raw: Any) -> BudgetSettings:
    obj = _object(raw, "budget")
    _no_unknown(obj, "budget.", {"daily_tokens", "low_at", "critical_at"})
    daily = obj.get("daily_tokens", 200_000)
    if isinstance(daily, bool) or not isinstance(daily, int) or daily <= 0:
        raise ConfigError("budget.daily_tokens", "must be a positive whole number of tokens")
    low = _number(obj.get("low_at", 0.5), "budget.low_at", 0.01, 0.99)
    critical = _number(obj.get("critical_at", 0.8), "budget.critical_at", 0.01, 0.99)
    if not low < critical:
        raise ConfigError("budget.critical_at", "must be greater than budget.low_at")
    return BudgetSettings(daily, low, critical)


def _visits(raw: Any) -> VisitSettings:
    obj = _object(raw, "visits")
    _no_unknown(
        obj, "visits.", {"policy", "max_turns", "max_minutes", "private", "per_visitor_per_hour"}
    )
    policy = _string(obj.get("policy"), "visits.policy", limit=16) or "open"
    if policy not in VISIT_POLICIES:
        raise ConfigError("visits.policy", f"must be one of {', '.join(VISIT_POLICIES)}")
    return VisitSettings(
        policy=policy,
        max_turns=_whole(obj.get("max_turns", 8), "visits.max_turns", 2, 64),
        max_minutes=_number(obj.get("max_minutes", 10.0), "visits.max_minutes", 0.05, 240.0),
        private=_bool(obj.get("private", False), "visits.private"),
        per_visitor_per_hour=_whole(
            obj.get("per_visitor_per_hour", 4), "visits.per_visitor_per_hour", 1, 120
        ),
    )


def _autonomy(raw: Any) -> AutonomySettings:
    obj = _object(raw, "autonomy")
    _no_unknown(obj, "autonomy.", {"enabled", "interval_s", "jitter", "cooldown_s", "choose"})
    choose = _string(obj.get("choose"), "autonomy.choose", limit=16) or "weighted"
    if choose not in ("weighted", "engine"):
        raise ConfigError("autonomy.choose", "must be weighted or engine")
    return AutonomySettings(
        enabled=_bool(obj.get("enabled", True), "autonomy.enabled"),
        interval_s=_number(obj.get("interval_s", 3600.0), "autonomy.interval_s", 1.0, 7 * 86400.0),
        jitter=_number(obj.get("jitter", 0.2), "autonomy.jitter", 0.0, 0.9),
        cooldown_s=_number(
            obj.get("cooldown_s", 6 * 3600.0), "autonomy.cooldown_s", 0.0, 30 * 86400.0
        ),
        choose=choose,
    )


def _reactions(raw: Any) -> ReactionSettings:
    obj = _object(raw, "reactions")
    _no_unknown(
        obj,
        "reactions.",
        {"enabled", "per_hour", "exchange_turns", "exchange_quiet_s", "pause_min_s", "pause_max_s"},
    )
    pause_min = _number(obj.get("pause_min_s", 2.0), "reactions.pause_min_s", 0.0, 600.0)
    pause_max = _number(obj.get("pause_max_s", 8.0), "reactions.pause_max_s", 0.0, 600.0)
    if pause_max < pause_min:
        raise ConfigError("reactions.pause_max_s", "must not be less than pause_min_s")
    return ReactionSettings(
        enabled=_bool(obj.get("enabled", True), "reactions.enabled"),
        per_hour=_whole(obj.get("per_hour", 20), "reactions.per_hour", 1, 3600),
        exchange_turns=_whole(obj.get("exchange_turns", 3), "reactions.exchange_turns", 1, 100),
        exchange_quiet_s=_number(
            obj.get("exchange_quiet_s", 600.0), "reactions.exchange_quiet_s", 1.0, 86400.0
        ),
        pause_min_s=pause_min,
        pause_max_s=pause_max,
    )


def _network(raw: Any) -> NetworkSettings:
    obj = _object(raw, "network")
    _no_unknown(obj, "network.", {"listen", "bootstrap", "mdns"})
    listen = _multiaddr_list(obj.get("listen", list(DEFAULT_LISTEN)), "network.listen")
    if not listen:
        raise ConfigError("network.listen", "needs at least one multiaddr")
    bootstrap = _multiaddr_list(obj.get("bootstrap", []), "network.bootstrap")
    mdns = _bool(obj.get("mdns", True), "network.mdns")
    return NetworkSettings(listen, bootstrap, mdns)


MAX_SOUVENIRS = 32
SOUVENIR_FIELDS = {
    "name",
    "command",
    "tools",
    "network",
    "unsandboxed",
    "env",
    "paths",
    "writable_paths",
}


def _souvenirs(raw: Any) -> tuple[SouvenirSettings, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_SOUVENIRS:
        raise ConfigError("souvenirs", f"must be a list of at most {MAX_SOUVENIRS} plugins")
    plugins = tuple(parse_souvenir(item, f"souvenirs[{i}]") for i, item in enumerate(raw))
    names = [plugin.name for plugin in plugins]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"souvenirs[{i}].name", f"duplicate souvenir name {name!r}")
    return plugins


def parse_souvenir(raw: Any, where: str, *, default_name: str | None = None) -> SouvenirSettings:
    """One plugin object (from the character file, or a ``plugins/*.json`` file whose
    stem is ``default_name``); a problem raises :class:`ConfigError` naming
    ``where.field``."""
    obj = _object(raw, where)
    _no_unknown(obj, f"{where}.", SOUVENIR_FIELDS)
    if "name" in obj or default_name is None:
        name = _string(obj.get("name"), f"{where}.name", required=True, limit=32)
    else:
        name = default_name
    if not SOUVENIR_NAME_PATTERN.match(name):
        raise ConfigError(f"{where}.name", f"must be 1-32 of a-z, 0-9 and '-', not {name!r}")
    command = obj.get("command")
    if not isinstance(command, list) or not 1 <= len(command) <= 64:
        raise ConfigError(f"{where}.command", "must be a list of 1 to 64 strings (argv)")
    argv = tuple(
        _string(arg, f"{where}.command[{i}]", required=i == 0, limit=4096)
        for i, arg in enumerate(command)
    )
    for i, arg in enumerate(argv):
        if "\x00" in arg:
            raise ConfigError(f"{where}.command[{i}]", "must not contain a NUL character")
    return SouvenirSettings(
        name=name,
        command=argv,
        tools=_lent_tools(obj.get("tools", {}), f"{where}.tools"),
        network=_bool(obj.get("network", False), f"{where}.network"),
        unsandboxed=_bool(obj.get("unsandboxed", False), f"{where}.unsandboxed"),
        env=_plugin_env(obj.get("env", {}), f"{where}.env"),
        paths=_absolute_paths(obj.get("paths", []), f"{where}.paths"),
        writable_paths=_absolute_paths(obj.get("writable_paths", []), f"{where}.writable_paths"),
    )


def _lent_tools(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    obj = _object(raw, where)
    if len(obj) > 256:
        raise ConfigError(where, "at most 256 tools")
    tools = []
    for tool, mode in obj.items():
        if not MCP_TOOL_NAME_PATTERN.match(tool):
            raise ConfigError(f"{where}.{tool}", "not an MCP tool name ([A-Za-z0-9._-]{1,128})")
        if mode not in LEND_MODES:
            raise ConfigError(f"{where}.{tool}", f"must be one of {', '.join(LEND_MODES)}")
        tools.append((tool, mode))
    return tuple(tools)


def _plugin_env(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    obj = _object(raw, where)
    env = []
    for key, value in obj.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", key):
            raise ConfigError(f"{where}.{key}", "must be an environment variable name")
        env.append((key, _string(value, f"{where}.{key}", limit=4096)))
    return tuple(env)


def _absolute_paths(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or len(raw) > 64:
        raise ConfigError(where, "must be a list of at most 64 absolute paths")
    paths = []
    for i, value in enumerate(raw):
        text = _string(value, f"{where}[{i}]", required=True, limit=4096)
        if not text.startswith("/") or "\x00" in text:
            raise ConfigError(f"{where}[{i}]", f"must be an absolute path, not {text!r}")
        paths.append(text)
    return tuple(paths)


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


def _bool(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise ConfigError(where, "must be true or false")
    return raw


def _number(raw: Any, where: str, low: float, high: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not low <= raw <= high:
        raise ConfigError(where, f"must be a number from {low:g} to {high:g}")
    return float(raw)


def _whole(raw: Any, where: str, low: int, high: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
        raise ConfigError(where, f"must be a whole number from {low} to {high}")
    return raw


def _env_bool(value: str, name: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"must be 0/1/true/false, not {value!r}")
