"""Length-prefixed frames over a byte stream (libp2p stream protocols).

A frame is a 4-byte big-endian length, then that many bytes. A zero-length frame ends a
multi-part message. Works over anything with trio's ``Stream`` methods
(``send_all``, ``receive_some``, ``aclose``): a libp2p stream through
:class:`node._libp2p.P2PStream`, or ``trio.testing.memory_stream_pair()`` in tests.
"""

from __future__ import annotations

from typing import Final, Protocol

from keys.errors import RemoteError

LENGTH_BYTES: Final = 4
READ_CHUNK: Final = 64 * 1024


class ByteStream(Protocol):
    async def send_all(self, data: bytes) -> None: ...

    async def receive_some(self, max_bytes: int | None = None) -> bytes: ...

    async def aclose(self) -> None: ...


class StreamFailed(RemoteError):
    """The peer closed or reset the stream, or sent frames we refuse."""

    reason = "stream_failed"


class FrameTooLarge(StreamFailed):
    reason = "frame_too_large"


class TruncatedFrame(StreamFailed):
    reason = "truncated_frame"


class FrameReader:
    """Reads whole frames, keeping whatever arrived beyond the current one."""

    def __init__(self, stream: ByteStream, max_frame: int) -> None:
        self._stream = stream
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._eof = False

    async def read_frame(self) -> bytes | None:
        """Return the next frame (``b""`` ends a message), or None at a clean end of stream.

        Raises :class:`FrameTooLarge` for a length over the cap (checked before reading
        the body) and :class:`TruncatedFrame` if the stream ends inside a frame.
        """
        if not await self._fill(LENGTH_BYTES):
            if self._buffer:
                raise TruncatedFrame("stream ended inside a frame header")
            return None
        length = int.from_bytes(self._buffer[:LENGTH_BYTES], "big")
        if length > self._max_frame:
            raise FrameTooLarge(f"frame of {length} bytes, cap {self._max_frame}")
        if not await self._fill(LENGTH_BYTES + length):
            raise TruncatedFrame(f"stream ended inside a {length}-byte frame")
        frame = bytes(self._buffer[LENGTH_BYTES : LENGTH_BYTES + length])
        del self._buffer[: LENGTH_BYTES + length]
        return frame

    async def _fill(self, size: int) -> bool:
        while len(self._buffer) < size and not self._eof:
            chunk = await self._stream.receive_some(READ_CHUNK)
            if not chunk:
                self._eof = True
            self._buffer += chunk
        return len(self._buffer) >= size


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(LENGTH_BYTES, "big") + data


END_OF_MESSAGE: Final = frame(b"")
