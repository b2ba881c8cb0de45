"""Libp2p streams with trio's ``Stream`` methods, and their failures."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Protocol

import outcome
import trio
from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamEOF

from node.wire.frames import StreamFailed

logger = logging.getLogger(__name__)

STREAM_CLOSE_TIMEOUT_S = 2.0


class StreamOpenFailed(StreamFailed):
    """No stream could be opened: not connected, or the peer does not speak the protocol."""

    reason = "stream_open_failed"


class StreamOpenTimeout(StreamOpenFailed):
    """The peer did not answer a stream request in time: the connection may be dead."""

    reason = "stream_open_timeout"


class PingTimeout(StreamFailed):
    """A connected peer did not answer a ping in time: the connection is presumed dead."""

    reason = "ping_timeout"


class P2PStream:
    """A libp2p stream with trio's ``Stream`` methods; failures raise :class:`StreamFailed`."""

    def __init__(self, stream: INetStream) -> None:
        self._stream = stream
        self.peer_id: str = stream.muxed_conn.peer_id.to_base58()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the peer closed its side."""
        try:
            return bytes(await self._stream.read(max_bytes))
        except StreamEOF:
            return b""
        except Exception as exc:  # reset, connection gone, muxer errors of every kind
            raise StreamFailed(f"read from {self.peer_id} failed: {exc!r}") from exc

    async def send_all(self, data: bytes) -> None:
        try:
            await self._stream.write(data)
        except Exception as exc:
            raise StreamFailed(f"write to {self.peer_id} failed: {exc!r}") from exc

    async def aclose(self) -> None:
        """Close, bounded: on a dead connection the close frame may never be written."""
        with contextlib.suppress(Exception), trio.move_on_after(STREAM_CLOSE_TIMEOUT_S):
            await self._stream.close()

    async def reset(self) -> None:
        with contextlib.suppress(Exception), trio.move_on_after(STREAM_CLOSE_TIMEOUT_S):
            await self._stream.reset()


StreamHandler = Callable[[P2PStream], Awaitable[None]]


async def open_abandonable(
    nursery: trio.Nursery,
    request: Callable[[], Awaitable[INetStream]],
    timeout: float,
    what: str,
) -> P2PStream:
    """Run a py-libp2p stream request, waiting for it at most ``timeout``.

    py-libp2p cleans up a failed stream request in a *shielded* reset, which on a
    connection whose socket buffer is full (a partition) blocks until TCP gives up,
    minutes later: no timeout of ours could cancel it. So the request runs in a task of
    its own (in ``nursery``) that we stop waiting for; a stream it opens too late is
    reset. Raises :class:`StreamOpenTimeout` or :class:`StreamOpenFailed`.
    """
    done = trio.Event()
    box: list[outcome.Outcome[INetStream]] = []
    abandoned = False

    async def run() -> None:
        result: outcome.Outcome[INetStream]
        try:
            result = outcome.Value(await request())
        except Exception as exc:  # negotiation failures come as many unrelated types
            result = outcome.Error(exc)
        box.append(result)
        done.set()
        if abandoned and isinstance(result, outcome.Value):
            await P2PStream(result.value).reset()

    nursery.start_soon(run)
    try:
        with trio.move_on_after(timeout):
            await done.wait()
    finally:
        # Timed out, or we were cancelled: either way a late stream is nobody's.
        abandoned = not done.is_set()
    if abandoned:
        raise StreamOpenTimeout(f"{what} timed out")
    try:
        return P2PStream(box[0].unwrap())
    except Exception as exc:
        raise StreamOpenFailed(f"{what} failed: {exc}") from exc


PING_PROTOCOL = "/ipfs/ping/1.0.0"
PING_BYTES = 32


class _ByteStream(Protocol):
    async def send_all(self, data: bytes) -> None: ...

    async def receive_some(self, max_bytes: int | None = None) -> bytes: ...

    async def reset(self) -> None: ...


async def ping_over(stream: _ByteStream, peer_id: str, *, started: float, timeout: float) -> float:
    """Echo 32 random bytes over an open ``/ipfs/ping/1.0.0`` stream, reset it, and return
    the seconds since ``started`` (trio's clock), all within ``timeout`` of ``started``.

    Raises :class:`StreamFailed` (:class:`PingTimeout` when the peer is silent).
    """
    try:
        payload = secrets.token_bytes(PING_BYTES)
        with trio.fail_after(max(0.0, timeout - (trio.current_time() - started))):
            await stream.send_all(payload)
            echoed = b""
            while len(echoed) < PING_BYTES:
                chunk = await stream.receive_some(PING_BYTES - len(echoed))
                if not chunk:
                    raise StreamFailed(f"{peer_id} closed the ping stream")
                echoed += chunk
    except trio.TooSlowError:
        raise PingTimeout(f"{peer_id} did not answer a ping in {timeout:g}s") from None
    finally:
        await stream.reset()
    if echoed != payload:
        raise StreamFailed(f"{peer_id} answered a ping with other bytes")
    return trio.current_time() - started
