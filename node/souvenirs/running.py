"""Souvenirs on a running character: its plugins up for as long as it runs, and its name
card saying what it lends.

:func:`lend` starts the owner's plugins (the character file's and ``plugins/``'s), hands
them to the :class:`~node.souvenirs.service.SouvenirService`, and keeps the card's
``souvenirs`` equal to what is lent now: a plugin that crashed lends nothing until it is
back, and the card says so within :data:`CARD_CHECK_S`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import trio

from keys import peer_id_from_str
from keys.errors import ConfigError, InvalidPeerId
from node.config.settings import SouvenirSettings
from node.directory.replica import DirectoryService
from node.events import EventLog
from node.souvenirs.lend_policy import LentTool
from node.souvenirs.plugins import open_plugins
from node.souvenirs.service import PartnerCard, SouvenirService
from registry_crdt import Souvenir, schema_digest
from registry_crdt.limits import MAX_DESCRIPTION_CHARS, MAX_SOUVENIRS

logger = logging.getLogger(__name__)

CARD_CHECK_S: Final = 5.0
"""How often the card is compared with what the plugins lend now."""


def card_souvenirs(lent: Sequence[LentTool]) -> tuple[Souvenir, ...]:
    """What the name card says of the tools we lend (descriptions capped)."""
    return tuple(
        Souvenir(
            name=tool.name,
            description=" ".join(tool.description.split())[:MAX_DESCRIPTION_CHARS],
            read_only=tool.read_only,
            schema_digest=schema_digest(tool.input_schema),
        )
        for tool in lent[:MAX_SOUVENIRS]
    )


def partner_cards(directory: DirectoryService) -> Callable[[str], PartnerCard | None]:
    """What a peer's name card (in our directory replica) says it lends."""

    def card_of(peer_id: str) -> PartnerCard | None:
        try:
            entry = directory.directory.get(peer_id_from_str(peer_id))
        except InvalidPeerId:
            return None
        if entry is None:
            return None
        card = entry.card
        return PartnerCard(card.name, {s.name: s.schema_digest for s in card.souvenirs})

    return card_of


async def lend(
    service: SouvenirService,
    settings: Sequence[SouvenirSettings],
    data_dir: Path,
    directory: DirectoryService,
    events: EventLog,
) -> None:
    """Run the plugins and keep the card current until cancelled (returns at once when
    the owner lends nothing)."""
    if not settings:
        return
    try:
        async with open_plugins(settings, data_dir, events=events) as plugins:
            service.lender = plugins
            announced: tuple[Souvenir, ...] | None = None
            while True:
                lent = card_souvenirs(plugins.lent())
                if lent != announced:
                    directory.souvenirs = lent
                    await directory.write_own()
                    events.emit("souvenirs_lent", tools=[s.name for s in lent])
                    announced = lent
                await trio.sleep(CARD_CHECK_S)
    except ConfigError as exc:
        logger.error("souvenirs not lent: %s", exc)
        events.emit("souvenirs_failed", error=str(exc))
    finally:
        service.lender = None
        directory.souvenirs = ()
