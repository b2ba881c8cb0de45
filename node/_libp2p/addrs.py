"""Multiaddr parsing for the adapter: what can be dialled, what can be listened on."""

from __future__ import annotations

import logging

import multiaddr
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr

from keys.errors import LocalError

logger = logging.getLogger(__name__)


class DialError(LocalError):
    """A multiaddr could not be parsed or dialled."""


def peer_info(addr: str) -> PeerInfo:
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(addr))
    except Exception as exc:  # multiaddr and py-libp2p raise assorted types
        raise DialError(f"not a dialable multiaddr with /p2p/<peer id>: {addr!r}") from exc


def split_peer_addr(addr: str) -> tuple[str, str]:
    """``/ip4/1.2.3.4/tcp/5/p2p/12D3...`` → (transport part, peer id); DialError if bad."""
    info = peer_info(addr)
    transport = str(info.addrs[0]) if info.addrs else ""
    return transport, info.peer_id.to_base58()


def validate_listen_addr(addr: str) -> str:
    """Check a listen multiaddr parses; return it normalised."""
    try:
        parsed = multiaddr.Multiaddr(addr)
    except Exception as exc:
        raise DialError(f"not a valid multiaddr: {addr!r}") from exc
    return str(parsed)
