"""What the host reports: delivered pubsub messages, and peers connecting or leaving."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import multiaddr
import trio
from libp2p.abc import INetConn, INetStream, INetwork, INotifee

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PubsubMessage:
    """A gossipsub message as delivered to us, signature already checked by libp2p."""

    topic: str
    data: bytes
    origin: bytes
    """PeerID bytes of the gossipsub author (strict signing binds it to ``data``)."""


@dataclass(frozen=True, slots=True)
class PeerEvent:
    kind: Literal["connected", "disconnected"]
    peer_id: str
    remote_addr: str | None


class ConnectionNotifee(INotifee):
    def __init__(self, send: trio.MemorySendChannel[PeerEvent]) -> None:
        self._send = send
        self.opened_at: dict[int, float] = {}
        """``id(connection)`` → when it was opened (trio time): tells a simultaneous
        dial's twins from an old connection and its replacement. Pruned by the host."""

    def _emit(self, kind: Literal["connected", "disconnected"], conn: INetConn) -> None:
        try:
            peer = conn.muxed_conn.peer_id.to_base58()
        except AttributeError:
            return
        remote = _remote_addr(conn)
        try:
            self._send.send_nowait(PeerEvent(kind, peer, remote))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            logger.warning("peer event for %s not delivered (event buffer full)", peer)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self.opened_at[id(conn)] = trio.current_time()
        self._emit("connected", conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._emit("disconnected", conn)

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


def _remote_addr(conn: INetConn) -> str | None:
    try:
        addrs = conn.get_transport_addresses()
    except Exception:  # py-libp2p raises assorted types for closed connections
        return None
    return str(addrs[0]) if addrs else None
