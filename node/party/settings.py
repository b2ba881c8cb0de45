"""What a party is made of: its characters, where they keep their memories, its engine,
and how each character's config is adjusted to live at a party."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs

from keys.errors import ConfigError
from node.config import (
    CharacterConfig,
    EngineSettings,
    VisitSettings,
    load_config,
    slug,
    with_engine_override,
)
from node.engine.model_pack import DEFAULT_MODEL

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "configs"
"""The sample characters of a checkout (``configs/*.json``)."""

LOCAL_LISTEN = ("/ip4/127.0.0.1/tcp/0",)
LAN_LISTEN = ("/ip4/0.0.0.0/tcp/0",)

ENGINE_TIMEOUT_S = 180.0
"""A line may wait behind the other characters' lines on the one shared engine."""
PARTY_COOLDOWN_S = 300.0
"""A character visits the same host again after five minutes at the earliest."""
PARTY_VISITS_PER_HOUR = 12
"""What a host accepts from one visitor per hour at a party (a visit every five minutes)."""


@dataclass(frozen=True, slots=True)
class PartySettings:
    characters: tuple[Path, ...] = ()
    """Character files; empty: the samples in ``configs/``."""
    data_dir: Path | None = None
    """Where each character keeps its key and memories (``<dir>/<name>``) and the
    firehose its own; None: the per-user party directory."""
    http: str = "127.0.0.1:8080"
    """Where the firehose serves its viewer."""
    model: str = DEFAULT_MODEL
    """The embedded model all characters share (when no ``engine_url``)."""
    engine_url: str | None = None
    """An OpenAI-compatible server every character uses instead of the embedded model."""
    engine_model: str | None = None
    lan: bool = False
    """Listen on every interface and find (and be found by) others by mDNS; by default a
    party stays on this machine (loopback, no multicast)."""
    firehose: bool = True
    threads: int | None = None
    """llama.cpp threads (None: every core, at most 8)."""

    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        return Path(platformdirs.user_data_dir("roomverse")) / "party"


def character_files(settings: PartySettings) -> tuple[Path, ...]:
    if settings.characters:
        return settings.characters
    samples = tuple(sorted(SAMPLES_DIR.glob("*.json")))
    if not samples:
        raise ConfigError(
            "--characters", f"no sample characters in {SAMPLES_DIR}; name character files"
        )
    return samples


def load_party(settings: PartySettings) -> list[CharacterConfig]:
    """The characters' configs as they live at this party (see :func:`at_party`)."""
    configs = [at_party(load_config(path), settings) for path in character_files(settings)]
    names = [slug(config.name) for config in configs]
    twins = sorted({name for name in names if names.count(name) > 1})
    if twins:
        raise ConfigError("--characters", f"two characters share the name {twins[0]!r}")
    if len(configs) < 2:
        raise ConfigError("--characters", "a party needs at least two characters")
    return configs


def at_party(config: CharacterConfig, settings: PartySettings) -> CharacterConfig:
    """A character at the party: its own directory under the party's, the party's engine,
    the party's network, and a host who lets friends drop in often. Its own autonomy timer
    is off: the party's conductor paces the visits (and asks the character whom to visit)."""
    data_dir = settings.resolved_data_dir() / slug(config.name)
    engines = (
        with_engine_override(config, settings.engine_url, settings.engine_model).engines
        if settings.engine_url is not None
        else (EngineSettings(name="party", model=settings.model, timeout_s=ENGINE_TIMEOUT_S),)
    )
    network = replace(
        config.network,
        listen=LAN_LISTEN if settings.lan else LOCAL_LISTEN,
        mdns=settings.lan,
    )
    visits: VisitSettings = replace(
        config.visits,
        per_visitor_per_hour=max(config.visits.per_visitor_per_hour, PARTY_VISITS_PER_HOUR),
    )
    autonomy = replace(config.autonomy, enabled=False, cooldown_s=PARTY_COOLDOWN_S)
    return replace(
        config,
        data_dir=data_dir,
        engines=engines,
        network=network,
        visits=visits,
        autonomy=autonomy,
    )


__all__ = ["DEFAULT_MODEL", "PartySettings", "at_party", "character_files", "load_party"]
