"""The TCP sockets under a py-libp2p connection, and what the kernel knows about them."""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from typing import TypeVar

import trio

T = TypeVar("T")

logger = logging.getLogger(__name__)

LAYER_ATTRS = ("muxed_conn", "secured_conn", "conn", "read_writer", "stream")
"""How py-libp2p 0.8.1 stacks a connection: swarm conn → muxer → secure session →
(noise reader) → raw connection → TrioTCPStream → trio.SocketStream."""


def sockets_under(conn: object) -> list[trio.SocketStream]:
    """The trio TCP sockets a py-libp2p connection is built on (a bounded walk)."""
    found: list[trio.SocketStream] = []
    layer: list[object] = [conn]
    for _ in range(2 * len(LAYER_ATTRS)):
        below: list[object] = []
        for obj in layer:
            if isinstance(obj, trio.SocketStream):
                found.append(obj)
            else:
                below.extend(v for a in LAYER_ATTRS if (v := getattr(obj, a, None)) is not None)
        layer = below
    return found


# Linux ``struct tcp_info``: u8 tcpi_backoff at offset 4 (retransmission timeouts in a
# row without an acknowledgement), u32 tcpi_unacked at 24, u32 tcpi_last_data_recv at
# 52 and u32 tcpi_last_ack_recv at 56 (milliseconds).
TCP_INFO_BYTES = 104
U32 = struct.Struct("=I")
MIN_RTO_BACKOFFS = 2


def unacked_for_s(sock: trio.SocketStream) -> float:
    """Seconds since the peer last acknowledged anything, counted only while data is
    outstanding *and* TCP has already timed out retransmitting it at least twice (so a
    send on a connection that was merely idle never counts); 0.0 otherwise, or when
    the kernel does not say (``TCP_INFO`` is Linux)."""
    try:
        info = sock.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
    except (OSError, AttributeError):
        return 0.0
    if len(info) < 60 or info[4] < MIN_RTO_BACKOFFS or not U32.unpack_from(info, 24)[0]:
        return 0.0
    return float(U32.unpack_from(info, 56)[0]) / 1000


def silent_for_s(sock: trio.SocketStream) -> float:
    """Seconds since anything at all arrived from the peer (0.0 if the kernel does not
    say). Only meaningful next to a fresher connection to the same peer."""
    try:
        info = sock.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
    except (OSError, AttributeError):
        return 0.0
    if len(info) < 60:
        return 0.0
    return float(U32.unpack_from(info, 52)[0]) / 1000


def connection_silent_for_s(conn: object) -> float:
    return max((silent_for_s(s) for s in sockets_under(conn)), default=0.0)


def close_sockets(conn: object) -> None:
    for sock in sockets_under(conn):
        with contextlib.suppress(Exception):
            sock.socket.close()


def dead_connections(conns: list[T], silence_s: float) -> list[T]:
    """The connections to one peer that should be closed.

    A connection whose peer has not acknowledged data we sent for ``silence_s`` is dead:
    the kernel knows, per TCP socket, whether bytes await an acknowledgement and how long
    ago the last one came, and a live peer's kernel acknowledges within a round trip
    however busy its program is. So this tells a dead path (partition, pulled cable, TCP
    in retransmission backoff after a heal) from a slow peer, with no traffic of its own.

    With several connections, one that has carried nothing for ``silence_s`` while
    another is fresher goes too: after a heal the peer dials again, and the old
    connection (which it has dropped) would otherwise keep py-libp2p's pubsub from using
    the new one. Two fresh connections from a simultaneous dial both stay.
    """
    silence = [connection_silent_for_s(c) for c in conns]
    freshest = min(silence, default=0.0)
    return [
        conn
        for conn, quiet in zip(conns, silence, strict=True)
        if any(unacked_for_s(s) >= silence_s for s in sockets_under(conn))
        or (len(conns) > 1 and quiet >= silence_s > freshest)
    ]
