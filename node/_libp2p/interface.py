"""What the rest of the node asks of a host, as protocols: :class:`Host` and :class:`Stream`.

:class:`~node._libp2p.host.P2PHost` (with :class:`~node._libp2p.streams.P2PStream`) is
the real thing; :class:`node.testing.memory_host.MemoryHost` (with its ``MemoryStream``)
is the in-memory double. Both satisfy these protocols (mypy checks it in
:mod:`node.testing.memory_host`), and one conformance suite,
``tests/node/testing/test_host_conformance.py``, runs against both, so code typed
against :class:`Host` behaves the same on either.

Error types are part of the contract: a dial fails with
:class:`~node._libp2p.addrs.DialError`; opening a stream with
:class:`~node._libp2p.streams.StreamOpenFailed` (:class:`StreamOpenTimeout` when the peer
stays silent); reading or writing a broken stream with
:class:`~node.wire.frames.StreamFailed`; a publish with :class:`~node.errors.PublishError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import trio

from node._libp2p.host import Validator
from node._libp2p.peer_events import PeerEvent, PubsubMessage
from node._libp2p.routers import DropCounters


class Stream(Protocol):
    """A bidirectional byte stream to one peer, with trio's ``Stream`` methods.

    ``aclose`` closes our sending side only: the peer reads ``b""`` once it has read
    everything, and may still write to us. ``reset`` ends both sides at once: the peer's
    reads return ``b""`` and its writes fail.
    """

    @property
    def peer_id(self) -> str:
        """The peer at the other end (base58)."""
        ...

    async def receive_some(self, max_bytes: int | None = None) -> bytes: ...

    async def send_all(self, data: bytes) -> None: ...

    async def aclose(self) -> None: ...

    async def reset(self) -> None: ...


class Host(Protocol):
    """A running host: peers, stream protocols and gossip topics (see the module doc)."""

    @property
    def peer_id(self) -> str:
        """Our own PeerID (base58)."""
        ...

    @property
    def peer_events(self) -> trio.MemoryReceiveChannel[PeerEvent]:
        """Peers connecting and leaving, in order."""
        ...

    @property
    def drops(self) -> DropCounters:
        """Messages that were dropped on the way to our subscriptions."""
        ...

    # -- addresses and peers
    def listen_addrs(self) -> list[str]: ...

    def connected_peers(self) -> list[str]: ...

    def is_connected(self, peer_id: str) -> bool: ...

    def pubsub_peers(self, topic: str) -> list[str]: ...

    def mesh_peers(self, topic: str) -> list[str]: ...

    def outgoing_queues(self) -> dict[str, int]: ...

    async def dial(self, addr: str, *, timeout: float = 10.0) -> str: ...

    async def dial_peer(
        self, peer_id: str, addrs: Sequence[str], *, timeout: float = 10.0
    ) -> str: ...

    async def disconnect(self, peer_id: str, *, timeout: float = 2.0) -> None: ...

    async def close_wedged(self, silence_s: float) -> list[str]: ...

    def close_all_sockets(self) -> None: ...

    # -- stream protocols
    def set_stream_handler(
        self, protocol: str, handler: Callable[[Stream], Awaitable[None]]
    ) -> None: ...

    async def open_stream(self, peer_id: str, protocol: str, *, timeout: float) -> Stream: ...

    async def ping(self, peer_id: str, *, timeout: float) -> float: ...

    # -- pubsub
    def set_validator(self, topic: str, validator: Validator) -> None: ...

    async def subscribe(self, topic: str) -> trio.MemoryReceiveChannel[PubsubMessage]: ...

    async def publish(self, topic: str, data: bytes) -> None: ...

    async def wait_for_queue_room(self) -> None: ...

    async def flush(self, timeout: float) -> bool: ...

    async def wait_for_subscriber(self, topic: str, peer_id: str, timeout: float) -> bool: ...

    async def wait_for_topic_peers(self, topic: str, count: int, timeout: float) -> bool: ...


__all__ = ["Host", "Stream"]
