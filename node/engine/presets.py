"""Named engine presets, and resolving an engine's settings into what a client needs.

Owners of Ollama, LM Studio or KoboldCPP should only have to write the preset's name:
each preset knows its server's usual loopback URL, a default model where the server has
no notion of one being loaded, and the placeholder key it expects (these servers check
no key, but the SDK always sends one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit

from keys.errors import ConfigError

EMBEDDED: Final = "embedded"
OPENAI_COMPATIBLE: Final = "openai-compatible"
OVERRIDE_ENGINE: Final = "override"
"""Name of the engine built from ``--engine-url`` / ``ROOMVERSE_ENGINE_URL``."""
OVERRIDE_KEY_ENV: Final = "ROOMVERSE_ENGINE_KEY"
"""The override engine's key variable (no other engine reads it)."""


class EngineSettingsLike(Protocol):
    """The fields of ``node.config.EngineSettings`` this module reads."""

    @property
    def name(self) -> str: ...
    @property
    def preset(self) -> str: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def api_key_env(self) -> str | None: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def cheap(self) -> bool: ...
    @property
    def tools(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Preset:
    base_url: str | None
    model: str | None
    default_key: str | None
    """A placeholder the server accepts; not a secret."""


PRESETS: Final[dict[str, Preset]] = {
    # The embedded server's URL is only known once it runs (port 0), see resolve().
    EMBEDDED: Preset(base_url=None, model="embedded", default_key="embedded"),
    "ollama": Preset("http://127.0.0.1:11434/v1", "llama3.2", "ollama"),
    # LM Studio and KoboldCPP answer with whatever model is loaded, whatever name is sent.
    "lmstudio": Preset("http://127.0.0.1:1234/v1", "local-model", "lm-studio"),
    "koboldcpp": Preset("http://127.0.0.1:5001/v1", "koboldcpp", "koboldcpp"),
    OPENAI_COMPATIBLE: Preset(base_url=None, model=None, default_key=None),
}


@dataclass(frozen=True, slots=True)
class KeySource:
    """Where to look for an engine's API key (the recipe, never the key)."""

    store_name: str
    """The engine's entry in the encrypted key store."""
    env_var: str | None
    """Environment variable named by the config's ``api_key_env``."""
    override_env: bool
    """Also read ``ROOMVERSE_ENGINE_KEY`` (only the command-line override engine does)."""
    default: str | None
    """The preset's placeholder key, used when no real key is found."""


@dataclass(frozen=True, slots=True)
class ResolvedEngine:
    """An engine's effective connection settings: config over preset defaults."""

    name: str
    base_url: str
    model: str
    timeout_s: float
    cheap: bool
    key_source: KeySource


def resolve(settings: EngineSettingsLike, embedded_url: str | None) -> ResolvedEngine:
    """Fill in an engine's URL, model and key recipe from its preset.

    ``embedded_url`` is the base URL the running embedded server reports, or None when
    it is not running; an ``embedded`` engine then cannot be used.
    """
    field = f"engines[{settings.name}]"
    preset = PRESETS.get(settings.preset)
    if preset is None:
        known = ", ".join(sorted(PRESETS))
        raise ConfigError(f"{field}.preset", f"unknown preset {settings.preset!r} ({known})")
    if settings.preset == EMBEDDED:
        if embedded_url is None:
            raise ConfigError(f"{field}.preset", "the embedded engine is not running")
        base_url = settings.base_url or embedded_url
    else:
        base_url = settings.base_url or preset.base_url or ""
        if not base_url:
            raise ConfigError(f"{field}.base_url", f"required by preset {settings.preset!r}")
    _check_url(base_url, f"{field}.base_url")
    model = settings.model or preset.model
    if not model:
        raise ConfigError(f"{field}.model", f"required by preset {settings.preset!r}")
    if not (math.isfinite(settings.timeout_s) and settings.timeout_s > 0):
        raise ConfigError(f"{field}.timeout_s", "must be a positive number of seconds")
    key_source = KeySource(
        store_name=settings.name,
        env_var=settings.api_key_env,
        override_env=settings.name == OVERRIDE_ENGINE,
        default=preset.default_key,
    )
    return ResolvedEngine(
        settings.name, base_url, model, settings.timeout_s, settings.cheap, key_source
    )


def display_url(url: str) -> str:
    """The URL without any ``user:password@`` part, for logs and status output."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=host).geturl()


def _check_url(url: str, field: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise ConfigError(field, "not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(field, "must be an http:// or https:// URL with a host")
