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


UNACKNOWLEDGED = "tcp_unacknowledged"
SUPERSEDED = "superseded"


def dead_connections(
    conns: list[T], silence_s: float, opened_at: list[float] | None = None
) -> list[tuple[T, str]]:
    """The connections to one peer that should be closed, each with why.

    ``tcp_unacknowledged``: the peer has not acknowledged data we sent for ``silence_s``.
    The kernel knows, per TCP socket, whether bytes await an acknowledgement and how long
    ago the last one came, and a live peer's kernel acknowledges within a round trip
    however busy its program is. So this tells a dead path (partition, pulled cable, TCP
    in retransmission backoff after a heal) from a slow peer, with no traffic of its own.
    Only this one means the peer is unreachable.

    ``superseded``: with several connections, one that has carried nothing for
    ``silence_s`` while a connection opened *later* is fresher: after a heal the peer
    dials again, and the old connection (which it has dropped) would otherwise keep
    py-libp2p's pubsub from using the new one. The peer is fine — it is on the new one.
    Two connections opened together (``opened_at``, seconds on any one clock, within
    ``silence_s`` of each other: a simultaneous dial, each side's pubsub writing on the
    one it opened and reading the other) are twins, not old and new: both stay, however
    quiet one of them is, since closing either would cut a live pubsub stream.
    """
    opened = opened_at if opened_at is not None else [0.0] * len(conns)
    silence = [connection_silent_for_s(c) for c in conns]
    dead: list[tuple[T, str]] = []
    for i, conn in enumerate(conns):
        if any(unacked_for_s(s) >= silence_s for s in sockets_under(conn)):
            dead.append((conn, UNACKNOWLEDGED))
        elif silence[i] >= silence_s and any(
            silence[j] < silence_s and opened[j] - opened[i] >= silence_s
            for j in range(len(conns))
            if j != i
        ):
            dead.append((conn, SUPERSEDED))
    return dead
