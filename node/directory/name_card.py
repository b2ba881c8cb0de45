"""Our character's name card (the directory's and ``/manifest``'s), made from its config."""

from __future__ import annotations

from collections.abc import Sequence

from keys import Identity
from keys.errors import ConfigError
from node.clock import now_ms
from node.config import CharacterConfig
from registry_crdt import (
    Capabilities,
    DirectoryUsageError,
    InlineIcon,
    Interfaces,
    NameCard,
    Persona,
    Souvenir,
    VisitMode,
    VisitPolicy,
    sign_card,
)
from registry_crdt.limits import (
    MAX_GREETING_CHARS,
    MAX_INLINE_ICON_BYTES,
    MAX_INTERFACE_ADDRS,
    MAX_LANGUAGES,
    MAX_PERSONALITY_CHARS,
    MAX_SOUVENIRS,
)


def card_for(
    config: CharacterConfig,
    identity: Identity,
    addrs: Sequence[str],
    now: int,
    souvenirs: Sequence[Souvenir] = (),
) -> NameCard:
    """The name card of our character, from its config and the souvenirs it lends now
    (unsigned)."""
    persona = config.persona
    return NameCard(
        id=identity.peer_id_str,
        name=config.name,
        description=config.description,
        updated_at_ms=now,
        persona=Persona(
            personality=_one_paragraph(persona.personality)[:MAX_PERSONALITY_CHARS],
            greeting=_one_paragraph(persona.greeting)[:MAX_GREETING_CHARS],
            languages=persona.languages[:MAX_LANGUAGES],
        ),
        tags=config.tags,
        interfaces=Interfaces(libp2p=tuple(addrs[:MAX_INTERFACE_ADDRS])),
        visit_policy=VisitPolicy(
            mode=VisitMode(config.visits.policy),
            max_minutes=max(1, round(config.visits.max_minutes)),
            max_turns=config.visits.max_turns,
            visits_per_hour=config.visits.per_visitor_per_hour,
        ),
        icon=_icon(config),
        capabilities=Capabilities(souvenirs=bool(souvenirs)),
        souvenirs=tuple(souvenirs[:MAX_SOUVENIRS]),
    )


def _icon(config: CharacterConfig) -> InlineIcon | None:
    """The character's picture on its card, when it is small enough to ride along."""
    icon = config.icon
    if icon is None or len(icon.data) > MAX_INLINE_ICON_BYTES:
        return None
    return InlineIcon(mime=icon.mime, data=icon.data)


def check_card(config: CharacterConfig, identity: Identity) -> None:
    """Sign our card once before starting, so a config whose card peers would refuse
    fails at once with a clear message (ConfigError), not at the first heartbeat."""
    try:
        sign_card(identity, card_for(config, identity, [], now_ms()))
    except DirectoryUsageError as exc:
        raise ConfigError("character", f"cannot make the directory card: {exc}") from exc


def _one_paragraph(text: str) -> str:
    """Card text is one line: fold newlines and tabs from the config into spaces."""
    return " ".join(text.split())
