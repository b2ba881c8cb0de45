"""What a character's configuration is: the frozen settings a running node reads.

Reading and checking a file is :mod:`node.config.loading`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

DEFAULT_LISTEN = ("/ip4/0.0.0.0/tcp/0",)
ENGINE_PRESETS = ("embedded", "ollama", "lmstudio", "koboldcpp", "openai-compatible")
MAX_TEXT = 2000
# The directory's name-card bounds (registry_crdt.limits), checked here so that a bad
# config fails at start with the field named, not when the card is signed.
MAX_DESCRIPTION = 280
MAX_TAGS = 16
MAX_TAG_CHARS = 32
MAX_LANGUAGES = 8
LANGUAGE_PATTERN = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,3}$")
"""A BCP 47 language tag as the name card accepts it (``en``, ``ja``, ``pt-BR``)."""

NAME_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")


@dataclass(frozen=True, slots=True)
class Persona:
    personality: str = ""
    background: str = ""
    greeting: str = ""
    languages: tuple[str, ...] = ("en",)
    """BCP 47 tags, the one the character speaks first first: its lines are in that
    language, and the guard accepts lines in any of them."""


@dataclass(frozen=True, slots=True)
class EngineSettings:
    name: str = "embedded"
    """Unique per character; names the engine in logs, status and the key store."""
    preset: str = "embedded"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (the key is never stored here)."""
    timeout_s: float = 60.0
    cheap: bool = False
    """Tried first when the day's token budget runs low."""
    tools: bool = True
    """Offer it a partner's lent tools (souvenirs); false for an engine that calls them
    badly. A server that refuses tools is found out and treated as false anyway."""


OVERRIDE_ENGINE = "override"
"""The engine named by ``--engine-url`` / ``ROOMVERSE_ENGINE_URL``; it replaces the list."""


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    daily_tokens: int = 200_000
    low_at: float = 0.5
    critical_at: float = 0.8


VISIT_POLICIES = ("open", "friends", "ask-owner")
"""The name card's visit modes (registry_crdt.VisitMode)."""


@dataclass(frozen=True, slots=True)
class VisitSettings:
    policy: str = "open"
    """open: anyone; friends: only partners we have met before; ask-owner: nobody until
    the owner approves (approvals come with the dashboard; until then, declined)."""
    max_turns: int = 8
    """Turns of ``say`` in a visit we host, both sides counted."""
    max_minutes: float = 10.0
    private: bool = False
    """Private visits publish only "A is visiting B", never the speech."""
    per_visitor_per_hour: int = 4


@dataclass(frozen=True, slots=True)
class AutonomySettings:
    enabled: bool = True
    interval_s: float = 3600.0
    jitter: float = 0.2
    """Each wait is the interval times a random factor in [1 - jitter, 1 + jitter]."""
    cooldown_s: float = 6 * 3600.0
    """No autonomous visit to the same host again within this time."""
    choose: str = "weighted"
    """weighted: by affinity and novelty; engine: the LLM picks from the online list."""


@dataclass(frozen=True, slots=True)
class ReactionSettings:
    """How a character reacts between visits to what it hears (:mod:`node.agent.reacting`)."""

    enabled: bool = True
    per_hour: int = 20
    """Reactions in any hour, whatever they answer."""
    exchange_turns: int = 3
    """Reactions to one other character before a public exchange with it rests."""
    exchange_quiet_s: float = 600.0
    """An exchange is over (and may start again) after this long without a reaction."""
    pause_min_s: float = 2.0
    pause_max_s: float = 8.0
    """A reaction waits a random pause in this range first (nobody answers instantly)."""


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    listen: tuple[str, ...] = DEFAULT_LISTEN
    bootstrap: tuple[str, ...] = ()
    mdns: bool = True


SOUVENIR_NAME_PATTERN = re.compile(r"^[a-z0-9-]{1,32}$")
"""A plugin's name: unique per character, safe in logs, uids and tool-name prefixes."""
MCP_TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
"""What MCP allows as a tool name."""
LEND_MODES = ("lend", "ask")
"""lend: lent when the server marks the tool read-only; ask: lent, every call approved."""


@dataclass(frozen=True, slots=True)
class SouvenirSettings:
    """One stdio MCP server the owner lends tools from (character file ``"souvenirs"`` or
    ``<data_dir>/plugins/<name>.json``). Tools not listed in ``tools`` are never lent."""

    name: str
    command: tuple[str, ...]
    """argv; argv[0] is resolved on PATH when the plugin starts."""
    tools: tuple[tuple[str, str], ...] = ()
    """(MCP tool name, "lend" | "ask")."""
    network: bool = False
    unsandboxed: bool = False
    """The owner allows running this plugin without the sandbox when it is unavailable."""
    env: tuple[tuple[str, str], ...] = ()
    paths: tuple[str, ...] = ()
    """Absolute paths bound read-only into the sandbox."""
    writable_paths: tuple[str, ...] = ()
    """Absolute paths bound read-write into the sandbox."""


@dataclass(frozen=True, slots=True)
class IconSettings:
    """The character's picture (``"icon": {"file", "sha256"}``), read and checked at load.

    It goes on the name card when it fits there (at most 8 KiB); a larger one (a
    character card's avatar) stays local and is what ``roomverse character export``
    puts the card in."""

    path: Path
    sha256: str
    mime: str
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class CharacterConfig:
    name: str
    persona: Persona = field(default_factory=Persona)
    description: str = ""
    """One line about the character for the directory (at most 280 characters)."""
    tags: tuple[str, ...] = ()
    engines: tuple[EngineSettings, ...] = (EngineSettings(),)
    """In failover order."""
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    visits: VisitSettings = field(default_factory=VisitSettings)
    autonomy: AutonomySettings = field(default_factory=AutonomySettings)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    data_dir: Path | None = None
    souvenirs: tuple[SouvenirSettings, ...] = ()
    """From the character file; ``plugins/*.json`` in the data directory are read at
    start (:func:`node.souvenirs.read_plugin_files`)."""
    icon: IconSettings | None = None
    reactions: ReactionSettings = field(default_factory=ReactionSettings)

    def resolved_data_dir(self) -> Path:
        """The data directory: configured, or one per character under the user data dir."""
        if self.data_dir is not None:
            return self.data_dir
        return Path(platformdirs.user_data_dir("roomverse")) / "characters" / slug(self.name)


def slug(name: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return cleaned or "character"
