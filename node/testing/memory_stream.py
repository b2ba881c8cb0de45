"""The streams of the in-memory host double: one end of a stream, and the link between
two :class:`~node.testing.memory_host.MemoryHost` s that carries them."""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

import trio

from node.wire.frames import StreamFailed


class HostEnd(Protocol):
    """What a link needs of the hosts at its ends (``MemoryHost``; no import back)."""

    @property
    def peer_id(self) -> str: ...


End = TypeVar("End", bound=HostEnd)


class MemoryStream:
    """One end of an in-memory stream, with :class:`~node._libp2p.P2PStream`'s methods."""

    def __init__(self, connection: MemoryConnection[Any], peer_id: str) -> None:
        self.peer_id = peer_id
        self._connection = connection
        self._other: MemoryStream = self  # set by _stream_pair
        self._inbox = bytearray()
        self._inbox_ended = False
        """The peer closed its sending side: ``b""`` once the inbox is empty."""
        self._write_closed = False
        self._reset_here = False
        self._reset_there = False
        self._connection_lost = False
        self._waiters = trio.lowlevel.ParkingLot()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the peer closed its side or reset."""
        await trio.lowlevel.checkpoint()
        while True:
            if self._reset_here or self._connection_lost:
                raise StreamFailed(f"read from {self.peer_id} failed: {self._why()}")
            if self._inbox:
                size = len(self._inbox) if max_bytes is None else max(1, max_bytes)
                chunk = bytes(self._inbox[:size])
                del self._inbox[:size]
                return chunk
            if self._inbox_ended or self._reset_there:
                return b""
            await self._waiters.park()

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        if self._reset_here or self._reset_there or self._connection_lost or self._write_closed:
            raise StreamFailed(f"write to {self.peer_id} failed: {self._why()}")
        if data:
            self._other._inbox += data
            self._other._waiters.unpark_all()

    async def aclose(self) -> None:
        """Close our sending side: the peer reads what we sent, then ``b""``."""
        await trio.lowlevel.checkpoint()
        if self._write_closed or self._reset_here or self._reset_there or self._connection_lost:
            return
        self._write_closed = True
        self._other._inbox_ended = True
        self._other._waiters.unpark_all()
        if self._other._write_closed:
            self._connection.streams.discard(self)
            self._connection.streams.discard(self._other)

    async def reset(self) -> None:
        """End both directions at once; what the peer had not read yet is lost."""
        await trio.lowlevel.checkpoint()
        if self._reset_here or self._reset_there or self._connection_lost:
            return
        self._reset_here = True
        self._other._reset_there = True
        self._inbox.clear()
        self._other._inbox.clear()
        self._waiters.unpark_all()
        self._other._waiters.unpark_all()
        self._connection.streams.discard(self)
        self._connection.streams.discard(self._other)

    def _lose_connection(self) -> None:
        self._connection_lost = True
        self._waiters.unpark_all()

    def _why(self) -> str:
        if self._connection_lost:
            return "connection closed"
        if self._reset_here:
            return "stream reset by us"
        if self._reset_there:
            return "stream reset by the peer"
        return "stream closed for writing"


class MemoryConnection(Generic[End]):
    """A link between two hosts and the streams that run over it."""

    def __init__(self, dialer: End, listener: End) -> None:
        self.ends = (dialer, listener)
        self.streams: set[MemoryStream] = set()

    def other(self, host: End) -> End:
        return self.ends[1] if host is self.ends[0] else self.ends[0]

    def stream_pair(self, opener: End) -> tuple[MemoryStream, MemoryStream]:
        """(opener's end, the other host's end)."""
        remote = self.other(opener)
        mine, theirs = MemoryStream(self, remote.peer_id), MemoryStream(self, opener.peer_id)
        mine._other, theirs._other = theirs, mine
        self.streams.update((mine, theirs))
        return mine, theirs


__all__ = ["MemoryConnection", "MemoryStream"]
