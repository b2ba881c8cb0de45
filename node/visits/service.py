"""Visits on a running node: the ``/roomverse/visit/1.0.0`` handler and ``visit(target)``.

Finds the host in the directory (by PeerID or name), dials it if needed, opens the visit
stream and runs :class:`node.visits.session.VisitSession`. Our own lines are published as
``speak`` actions (the firehose shows them) unless the visit is private; a guest also
publishes a ``move`` to the host, which is all the public sees of a private visit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from keys import PROTO_VISIT, peer_id_from_str, peer_id_to_str
from keys.errors import InvalidPeerId, LocalError, RemoteError, RoomverseError
from node import _libp2p
from node.directory.replica import DirectoryService
from node.visits.contracts import Partner, VisitResult
from node.visits.conversation import Line, VisitProtocolError
from node.visits.messages import MAX_NAME, Knock
from node.visits.session import VisitSession
from node.visits.wire import Seal, VisitChannel
from node.wire.inbound import InboundLimit
from registry_crdt import Entry, Presence

logger = logging.getLogger(__name__)

OPEN_TIMEOUT_S: Final = 10.0
MAX_INBOUND_VISITS: Final = 8
"""Visit streams served at once (one per peer); the host talks to one guest at a time,
the others are told ``busy``, and anything beyond this is reset."""
DIAL_TIMEOUT_S: Final = 10.0

Publish = Callable[[str, Mapping[str, Any]], Awaitable[object]]


class VisitTargetError(LocalError):
    """The owner asked to visit someone we cannot visit (unknown, ambiguous, gone, us)."""


class VisitService:
    def __init__(
        self,
        *,
        session: VisitSession,
        host: _libp2p.P2PHost,
        directory: DirectoryService,
        seal: Seal,
        publish: Publish,
        clock_ms: Callable[[], int],
    ) -> None:
        self.session = session
        self.host = host
        self._directory = directory
        self._seal = seal
        self._publish = publish
        self._clock_ms = clock_ms
        self.inbound = InboundLimit(MAX_INBOUND_VISITS)

    # -- host side ----------------------------------------------------------------------

    async def serve(self, stream: _libp2p.P2PStream) -> None:
        """The stream handler: one knock, one visit."""
        with self.inbound.admit(stream.peer_id) as admitted:
            if not admitted:
                await stream.reset()
                return
            result = await self._host(stream)
        if result is not None:
            await self.session.remember(result)

    async def _host(self, stream: _libp2p.P2PStream) -> VisitResult | None:
        channel = VisitChannel(stream, stream.peer_id, self._seal, self._clock_ms)
        try:
            return await self.session.host(channel, self.describe)
        except RemoteError as exc:  # the guest left while we declined
            logger.info("visit from %s ended early: %s", stream.peer_id, exc)
            return None
        finally:
            await channel.close()

    def describe(self, peer_id: str, knock: Knock) -> Partner:
        """Who is at the door: the directory's card if we have one, else the knock's name.

        A knock ``for`` a legacy participant comes from a bridge: it is that participant
        at the door, if its directory entry is vouched for by this very bridge
        (:class:`VisitProtocolError` otherwise), so its memory and affinity are its own.
        """
        if knock.to and knock.to != self.session.me:
            raise VisitProtocolError(f"a knock for {_shown(knock.to)}, who does not live here")
        if knock.on_behalf_of:
            entry = self._directory.directory.get(knock.on_behalf_of)
            if entry is None or entry.vouch is None or peer_id_to_str(entry.signer) != peer_id:
                raise VisitProtocolError(
                    f"a knock for {_shown(knock.on_behalf_of)}, whom {peer_id} "
                    "does not vouch for in our directory"
                )
            return partner_of(entry)
        entry = self._entry(peer_id)
        if entry is None:
            return Partner(peer_id, knock.name[:MAX_NAME])
        return partner_of(entry)

    # -- guest side ---------------------------------------------------------------------

    def resolve(self, target: str) -> Entry:
        """The directory entry of ``target``: a PeerID, or a name (case-insensitive)."""
        now = self._clock_ms()
        entry = self._entry(target)
        if entry is None:
            wanted = target.casefold()
            entries = self._directory.directory.entries()
            matches = [e for e in entries if e.card.name.casefold() == wanted]
            present = [e for e in matches if e.presence(now) not in _GONE]
            if len(present) > 1:
                ids = ", ".join(e.peer_str for e in present)
                raise VisitTargetError(f"{len(present)} characters are called {target!r}: {ids}")
            found = present or matches
            entry = found[0] if found else None
        if entry is None:
            raise VisitTargetError(f"nobody called {target!r} is in the directory")
        if entry.peer == self.session.me:
            raise VisitTargetError("a character cannot visit itself")
        if entry.presence(now) in _GONE:
            raise VisitTargetError(
                f"{entry.card.name} is {entry.presence(now).value} (not in the directory now)"
            )
        if not entry.card.capabilities.accepts_visits:
            raise VisitTargetError(f"{entry.card.name} takes no visits (a bridge, not a character)")
        return entry

    async def visit(
        self,
        target: str,
        *,
        turns: int = 0,
        private: bool | None = None,
        on_start: Callable[[str], Awaitable[None]] | None = None,
        context: str = "",
        on_behalf_of: bytes = b"",
    ) -> VisitResult:
        entry = self.resolve(target)
        peer_id = entry.peer_str
        partner = partner_of(entry)
        first_line = await self.session.opening(partner)
        # A legacy HTTP participant is visited at the bridge that vouches for it.
        door, addrs, to = peer_id, entry.addrs, b""
        if entry.vouch is not None:
            door, to = peer_id_to_str(entry.signer), entry.peer
            bridge = self._entry(door)  # a bridge is a spectator: often not in the directory
            addrs = bridge.addrs if bridge is not None else ()
            if not addrs and not self.host.is_connected(door):
                raise VisitTargetError(
                    f"{entry.card.name} is reached through the bridge {door}, "
                    "which we are not connected to"
                )
        await self._connect(door, addrs)
        stream = await self.host.open_stream(door, PROTO_VISIT, timeout=OPEN_TIMEOUT_S)
        channel = VisitChannel(stream, door, self._seal, self._clock_ms)

        async def started(visit: str) -> None:
            await self._announce({"type": "move", "to": peer_id})
            if on_start is not None:
                await on_start(visit)

        try:
            return await self.session.guest(
                channel,
                partner,
                first_line,
                turns=turns,
                private=private,
                context=context,
                on_start=started,
                on_behalf_of=on_behalf_of,
                to=to,
            )
        finally:
            await channel.close()

    async def _connect(self, peer_id: str, addrs: tuple[str, ...]) -> None:
        if self.host.is_connected(peer_id):
            return
        transports = transports_for(peer_id, addrs)
        if not transports:
            raise VisitTargetError(f"{peer_id} has no address we can dial")
        await self.host.dial_peer(peer_id, transports, timeout=DIAL_TIMEOUT_S)

    # -- both ---------------------------------------------------------------------------

    async def line_said(self, visit: str, partner: Partner, line: Line, mine: bool) -> None:
        """After each stored line: an event, and our own speech published if public."""
        speaker = self.session.me_str if mine else partner.peer_id
        self.session.events.emit(
            "visit_line",
            visit=visit,
            turn=line.turn,
            speaker=speaker,
            mine=mine,
            partner=partner.peer_id,
            partner_name=partner.name,
            text=line.text,
        )
        if mine and visit not in self.session.private_visits:
            await self._announce(
                {"type": "speak", "text": line.text, "visit": visit, "to": partner.peer_id}
            )

    async def _announce(self, body: Mapping[str, Any]) -> None:
        try:
            await self._publish("action", body)
        except RoomverseError as exc:
            logger.warning("could not publish %s: %s", body.get("type"), exc)

    def _entry(self, peer_id: str) -> Entry | None:
        try:
            peer = peer_id_from_str(peer_id)
        except InvalidPeerId:
            return None
        return self._directory.directory.get(peer)


_GONE: Final = frozenset({Presence.OFFLINE, Presence.LEFT})


def transports_for(peer_id: str, addrs: tuple[str, ...]) -> tuple[str, ...]:
    """The dialable transport parts of ``peer_id``'s own ``/p2p/`` addresses."""
    transports = []
    for addr in addrs:
        try:
            transport, owner = _libp2p.split_peer_addr(addr)
        except _libp2p.DialError:
            continue
        if owner == peer_id and transport:
            transports.append(transport)
    return tuple(transports)


def partner_of(entry: Entry) -> Partner:
    """A partner as its directory entry describes it."""
    card = entry.card
    return Partner(
        entry.peer_str,
        card.name,
        card.description,
        _first(entry.addrs),
        tuple(card.persona.languages),
    )


def _shown(peer: bytes) -> str:
    """A PeerID as text, or its bytes in hex when they are not a PeerID."""
    try:
        return peer_id_to_str(peer)
    except InvalidPeerId:
        return peer.hex()


def _first(addrs: tuple[str, ...]) -> str:
    return addrs[0] if addrs else ""
