"""What a bridge's node does besides what every node does: visit for a legacy HTTP
participant, and host visits for one (:mod:`node.visits.proxy` has the voices).

Functions of a running :class:`~node.character.CharacterNode` (a spectator: it has no
character of its own), used by ``bridge/`` through ``node``'s public API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from keys import PROTO_VISIT
from keys.errors import RemoteError
from node._libp2p import P2PStream
from node.character import CharacterNode
from node.clock import now_ms
from node.privacy.redact import redact
from node.storage.memory import Memory
from node.visits.contracts import OnLine, Partner, VisitResult, Voice
from node.visits.conversation import Line, VisitProtocolError
from node.visits.door import KNOCK_TIMEOUT_S
from node.visits.messages import MAX_TURNS, MAX_VISIT_MS, Knock
from node.visits.proxy import (
    KnockedChannel,
    LegacyHost,
    NoRelations,
    ProxyVisitor,
    RelayedHostVoice,
    RelayedLines,
    RelayFailed,
)
from node.visits.service import MAX_INBOUND_VISITS, VisitService
from node.visits.session import VisitSession
from node.visits.wire import VisitChannel
from node.wire.inbound import InboundLimit
from registry_crdt import Status

logger = logging.getLogger(__name__)

LegacyHostFor = Callable[[bytes], LegacyHost | None]
MAX_MINUTES = MAX_VISIT_MS / 60_000


class _NoLegacyHost:
    """Stands in where no participant answers (its knock is turned away before a line)."""

    async def first_reply(self, guest: Partner, line: str, context: str) -> tuple[str, bool]:
        raise RelayFailed("no legacy participant here")

    async def next_reply(self, guest: Partner, line: str) -> tuple[str, bool]:
        raise RelayFailed("no legacy participant here")


_NO_LEGACY_HOST = _NoLegacyHost()


def _session(
    node: CharacterNode, name: str, card: bytes, voice: Voice, on_line: OnLine
) -> tuple[VisitSession, VisitService]:
    """A visit session of the bridge's node speaking as ``name`` (a legacy participant),
    and the service it runs in; every line stored goes to ``on_line`` after the
    service's own handling (an event; the bridge's own lines published)."""

    async def said(visit: str, partner: Partner, line: Line, mine: bool) -> None:
        await service.line_said(visit, partner, line, mine)
        await on_line(visit, partner, line, mine)

    session = VisitSession(
        me=node.identity.peer_id,
        name=name,
        card=lambda: card,
        # The bridge sets no budget of its own: the character's side decides.
        settings=replace(node.config.visits, max_turns=MAX_TURNS, max_minutes=MAX_MINUTES),
        voice=voice,
        memory=Memory(node.store.db, redact),
        relations=NoRelations(),
        events=node.events,
        clock_ms=now_ms,
        status=lambda: Status.ONLINE,
        may_reply=lambda: True,
        on_line=said,
        reject=node.rejections.reject,
    )
    service = VisitService(
        session=session,
        host=node.host,
        directory=node.directory,
        seal=node.seal,
        publish=node.publish,
        clock_ms=now_ms,
    )
    return session, service


async def _nothing_more(visit: str, partner: Partner, line: Line, mine: bool) -> None:
    return None


async def proxy_visit(
    node: CharacterNode,
    target: str,
    visitor: ProxyVisitor,
    lines: RelayedLines,
    *,
    on_line: OnLine,
    context: str = "",
) -> VisitResult:
    """Visit ``target`` (a PeerID or name) as a bridge, for the legacy participant
    ``visitor``, its lines relayed through ``lines`` (:mod:`node.visits.proxy`);
    ``on_line`` hears every line once stored. Raises
    :class:`node.visits.service.VisitTargetError` for a target we cannot visit."""

    _, service = _session(node, visitor.name, visitor.card_digest, lines, on_line)
    return await service.visit(target, context=context, on_behalf_of=visitor.peer_id)


def host_for_legacy(node: CharacterNode, legacy_host_for: LegacyHostFor) -> None:
    """As a bridge: serve ``/roomverse/visit/1.0.0``, hosting each visit knocked ``to``
    a legacy participant we vouch for, its lines from ``legacy_host_for(peer)``
    (None: not one of ours; the knock is turned away as an unknown visitor)."""
    inbound = InboundLimit(MAX_INBOUND_VISITS)

    async def serve(stream: P2PStream) -> None:
        with inbound.admit(stream.peer_id) as admitted:
            if not admitted:
                await stream.reset()
                return
            await _host_for_legacy(node, stream, legacy_host_for)

    node.host.set_stream_handler(PROTO_VISIT, serve)


async def _host_for_legacy(
    node: CharacterNode, stream: P2PStream, legacy_host_for: LegacyHostFor
) -> None:
    channel = VisitChannel(stream, stream.peer_id, node.seal, now_ms)
    try:
        first = await channel.receive(KNOCK_TIMEOUT_S)
        knock = first[1]
        if not isinstance(knock, Knock):
            raise VisitProtocolError(f"a visit starts with a knock, not a {knock.TYPE}")
        entry = node.directory.directory.get(knock.to) if knock.to else None
        ours = (
            entry is not None and entry.vouch is not None and entry.signer == node.identity.peer_id
        )
        legacy = legacy_host_for(knock.to) if ours else None

        name = entry.card.name if entry is not None else ""
        voice = RelayedHostVoice(legacy or _NO_LEGACY_HOST, context=knock.context)
        session, service = _session(node, name, bytes(32), voice, _nothing_more)

        def describe(peer_id: str, knock: Knock) -> Partner:
            if legacy is None:
                raise VisitProtocolError("a knock for no participant this bridge vouches for")
            return service.describe(peer_id, replace(knock, to=b""))

        await session.host(KnockedChannel(channel, first), describe)
    except RemoteError as exc:
        logger.info("legacy visit from %s ended early: %s", stream.peer_id, exc)
    finally:
        await channel.close()


__all__ = ["LegacyHostFor", "host_for_legacy", "proxy_visit"]
