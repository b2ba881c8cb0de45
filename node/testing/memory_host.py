"""An in-memory libp2p network for tests: :class:`MemoryNetwork`, :class:`MemoryHost`.

Why: code that talks to peers (directory sync, visits, liveness, the running character)
should be testable with several hosts in one process, fast and deterministic, without
sockets. :class:`MemoryHost` has :class:`~node._libp2p.host.P2PHost`'s methods, signatures
and error types (both satisfy :class:`node._libp2p.interface.Host`), and
``tests/node/testing/test_host_conformance.py`` runs one suite against both::

    network = MemoryNetwork()
    async with network.open_host(Identity.generate()) as a, network.open_host(ident_b) as b:
        await a.dial(f"{b.listen_addrs()[0]}/p2p/{b.peer_id}")

What it does as the real host does (measured on py-libp2p 0.8.1, pinned by the suite):

* a host listens on ``/memory/<n>``; dialling checks the PeerID at the address
  (:class:`DialError` otherwise, and for our own id); both sides get ``connected``
  :class:`PeerEvent` s, and ``disconnected`` ones when either side disconnects or closes;
* gossip: a publish runs the publisher's own validator first (a refusal drops it for
  everyone, silently), then reaches every connected subscriber of the topic, each of
  which runs its validator before delivering and relays only what it accepted to its own
  subscribed peers; a message is delivered at most once per host, the publisher's own
  subscription included, with ``origin`` = the publisher's PeerID bytes;
* streams: ``aclose`` closes our sending side only (the peer reads ``b""``, may still
  write, and we may still read); ``reset`` fails our own reads and writes, the peer's
  reads return ``b""`` and its writes fail; a lost connection fails both sides; the
  handler's stream is closed when it returns and reset when it raises; opening a stream
  to a peer we were connected to before dials it again (libp2p remembers addresses);
  every host serves ``/ipfs/ping/1.0.0``.

What it leaves out, on purpose:

* messages are delivered before :meth:`MemoryHost.publish` returns (the real host
  delivers later: tests must wait for them either way);
* no gossip (IHAVE/IWANT): a real host that subscribes late may still be sent messages
  published in the last few heartbeats; here only current subscribers get anything;
* no meshes: :meth:`MemoryHost.mesh_peers` is every subscribed peer while we subscribe;
* no dead links or slow peers: nothing times out (no :class:`StreamOpenTimeout`, no
  ``PingTimeout``), :meth:`MemoryHost.close_wedged` finds nothing, outgoing queues are
  always empty, and stream buffers have no flow-control window;
* calling :meth:`MemoryHost.subscribe` twice for one topic gives two channels that
  both get every message (the real host would split them between the two).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from keys import Identity, InvalidPeerId, LocalError, peer_id_from_str
from node._libp2p import (
    DialError,
    DropCounters,
    P2PHost,
    PeerEvent,
    PubsubMessage,
    StreamOpenFailed,
    Validator,
    split_peer_addr,
    validate_listen_addr,
)
from node._libp2p.host import SUBSCRIPTION_BUFFER
from node._libp2p.interface import Host
from node._libp2p.streams import PING_BYTES, PING_PROTOCOL, ping_over
from node.errors import PublishError
from node.testing.memory_stream import MemoryConnection, MemoryStream
from node.wire.frames import StreamFailed

logger = logging.getLogger(__name__)

PEER_EVENT_BUFFER = 4096
"""As the real host's: events beyond it are logged and lost."""

MemoryStreamHandler = Callable[["MemoryStream"], Awaitable[None]]


class MemoryNetwork:
    """Where :class:`MemoryHost` s listen, find and reach each other."""

    def __init__(self) -> None:
        self._by_addr: dict[str, MemoryHost] = {}
        self._by_peer: dict[str, MemoryHost] = {}
        self._next_port = 1
        self._changed = trio.lowlevel.ParkingLot()
        """Woken on every connection, disconnection and subscription."""

    @asynccontextmanager
    async def open_host(
        self,
        identity: Identity,
        *,
        on_drop: Callable[[str, str], None] = lambda topic, why: None,
    ) -> AsyncIterator[MemoryHost]:
        """Run a host with ``identity`` on this network until the block exits.

        As :func:`~node._libp2p.open_p2p_host`: on exit its peers see it disconnect,
        its subscriptions end (``trio.EndOfChannel``) and its stream handlers are
        cancelled. One host per identity at a time (:class:`LocalError` otherwise).
        """
        if identity.peer_id_str in self._by_peer:
            raise LocalError(f"{identity.peer_id_str} already runs on this network")
        addr = f"/memory/{self._next_port}"
        self._next_port += 1
        async with trio.open_nursery() as nursery:
            host = MemoryHost(self, identity, addr, nursery, on_drop)
            self._by_addr[addr] = host
            self._by_peer[host.peer_id] = host
            try:
                yield host
            finally:
                del self._by_addr[addr]
                del self._by_peer[host.peer_id]
                host._shut_down()
                nursery.cancel_scope.cancel()

    def _running(self, peer_id: str) -> MemoryHost | None:
        return self._by_peer.get(peer_id)

    def _host_at(self, addr: str) -> MemoryHost | None:
        return self._by_addr.get(addr)

    def _connect(self, dialer: MemoryHost, listener: MemoryHost) -> None:
        if listener.peer_id in dialer._connections:
            return
        connection = MemoryConnection(dialer, listener)
        for host, remote in ((dialer, listener), (listener, dialer)):
            host._connections[remote.peer_id] = connection
            host._met.add(remote.peer_id)
            host._emit(PeerEvent("connected", remote.peer_id, remote._addr))
        self._changed.unpark_all()

    def _disconnect(self, connection: MemoryConnection[MemoryHost]) -> None:
        first, second = connection.ends
        if first._connections.get(second.peer_id) is not connection:
            return
        for host, remote in ((first, second), (second, first)):
            del host._connections[remote.peer_id]
            host._emit(PeerEvent("disconnected", remote.peer_id, remote._addr))
        for stream in connection.streams:
            stream._lose_connection()
        connection.streams.clear()
        self._changed.unpark_all()

    def _gossip(self, publisher: MemoryHost, topic: str, data: bytes) -> None:
        """Flood ``data`` from ``publisher`` through the subscribers that accept it."""
        msg = PubsubMessage(topic, data, publisher.identity.peer_id)
        if not publisher._accepts(msg, publisher.peer_id):
            return
        publisher._deliver(msg)
        seen = {publisher.peer_id}
        forwarders = [publisher]
        while forwarders:
            accepted: list[MemoryHost] = []
            for forwarder in forwarders:
                for peer_id, connection in list(forwarder._connections.items()):
                    peer = connection.other(forwarder)
                    if peer_id in seen or topic not in peer._topics:
                        continue
                    seen.add(peer_id)
                    if peer._accepts(msg, forwarder.peer_id):
                        peer._deliver(msg)
                        accepted.append(peer)
            forwarders = accepted


class MemoryHost:
    """A host on a :class:`MemoryNetwork`; open it with :meth:`MemoryNetwork.open_host`.

    Same methods, signatures and errors as :class:`~node._libp2p.P2PHost`; the
    module docstring lists what the double leaves out.
    """

    def __init__(
        self,
        network: MemoryNetwork,
        identity: Identity,
        addr: str,
        nursery: trio.Nursery,
        on_drop: Callable[[str, str], None],
    ) -> None:
        self.identity = identity
        self.peer_id: str = identity.peer_id_str
        self.drops = DropCounters()
        events_send, self.peer_events = trio.open_memory_channel[PeerEvent](PEER_EVENT_BUFFER)
        self._events = events_send
        self._network = network
        self._addr = addr
        self._nursery = nursery
        self._on_drop = on_drop
        self._closed = False
        self._connections: dict[str, MemoryConnection[MemoryHost]] = {}
        self._met: set[str] = set()
        """Peers we were ever connected to: opening a stream to one dials it again."""
        self._handlers: dict[str, MemoryStreamHandler] = {}
        self._topics: set[str] = set()
        self._subscriptions: dict[str, list[trio.MemorySendChannel[PubsubMessage]]] = {}
        self._validators: dict[str, Validator] = {}
        self.set_stream_handler(PING_PROTOCOL, _echo)

    # -- addresses and peers -------------------------------------------------------

    def listen_addrs(self) -> list[str]:
        return [self._addr]

    def connected_peers(self) -> list[str]:
        return list(self._connections)

    def is_connected(self, peer_id: str) -> bool:
        return peer_id in self._connections

    def pubsub_peers(self, topic: str) -> list[str]:
        """Connected peers that subscribe to ``topic``."""
        return [
            peer_id
            for peer_id, connection in self._connections.items()
            if topic in connection.other(self)._topics
        ]

    def mesh_peers(self, topic: str) -> list[str]:
        """No meshes here: every subscribed peer, while we subscribe to ``topic`` too."""
        return self.pubsub_peers(topic) if topic in self._topics else []

    def outgoing_queues(self) -> dict[str, int]:
        return {}

    async def dial(self, addr: str, *, timeout: float = 10.0) -> str:
        """Connect to ``.../p2p/<peer id>``; returns the peer id. DialError on failure."""
        transport, peer_id = split_peer_addr(addr)
        if peer_id == self.peer_id:
            raise DialError("refusing to dial ourselves")
        return await self.dial_peer(peer_id, [transport], timeout=timeout)

    async def dial_peer(self, peer_id: str, addrs: Sequence[str], *, timeout: float = 10.0) -> str:
        await trio.lowlevel.checkpoint()
        try:
            peer_id_from_str(peer_id)
            wanted = [validate_listen_addr(a) for a in addrs]
        except (InvalidPeerId, DialError) as exc:
            raise DialError(f"bad peer id or address for {peer_id}: {exc}") from exc
        if peer_id in self._connections:
            return peer_id
        if peer_id == self.peer_id:
            raise DialError(f"dial {peer_id} failed: that is us")
        for addr in wanted:
            remote = self._network._host_at(addr)
            if remote is not None and remote.peer_id == peer_id and not self._closed:
                self._network._connect(self, remote)
                return peer_id
        raise DialError(f"dial {peer_id} failed: no such peer listens at {list(addrs)}")

    async def disconnect(self, peer_id: str, *, timeout: float = 2.0) -> None:
        await trio.lowlevel.checkpoint()
        connection = self._connections.get(peer_id)
        if connection is not None:
            self._network._disconnect(connection)

    async def close_wedged(self, silence_s: float) -> list[str]:
        """No link is ever wedged in memory."""
        await trio.lowlevel.checkpoint()
        return []

    def close_all_sockets(self) -> None:
        for connection in list(self._connections.values()):
            self._network._disconnect(connection)

    # -- stream protocols --------------------------------------------------------------

    def set_stream_handler(self, protocol: str, handler: MemoryStreamHandler) -> None:
        """Serve ``protocol``: ``handler`` gets each inbound stream; the stream is closed
        (or reset, if the handler raised) when it returns."""

        async def run(stream: MemoryStream) -> None:
            try:
                await handler(stream)
            except Exception as exc:  # as the real host: log it, keep serving
                if not isinstance(exc, StreamFailed):
                    logger.exception("%s handler failed for %s", protocol, stream.peer_id)
                await stream.reset()
            else:
                await stream.aclose()

        self._handlers[protocol] = run

    async def open_stream(self, peer_id: str, protocol: str, *, timeout: float) -> MemoryStream:
        """Open a stream to a peer (dialling it again if we met it before);
        :class:`StreamOpenFailed` if it cannot be."""
        await trio.lowlevel.checkpoint()
        what = f"opening {protocol} to {peer_id}"
        try:
            peer_id_from_str(peer_id)
        except InvalidPeerId as exc:
            raise StreamOpenFailed(f"bad peer id {peer_id!r}") from exc
        connection = self._connections.get(peer_id)
        if connection is None and peer_id in self._met and not self._closed:
            remote = self._network._running(peer_id)
            if remote is not None:
                self._network._connect(self, remote)
                connection = self._connections.get(peer_id)
        if connection is None:
            raise StreamOpenFailed(f"{what} failed: no connection and no known address")
        remote = connection.other(self)
        handler = remote._handlers.get(protocol)
        if handler is None:
            raise StreamOpenFailed(f"{what} failed: protocol not supported")
        mine, theirs = connection.stream_pair(self)
        remote._nursery.start_soon(handler, theirs)
        return mine

    async def ping(self, peer_id: str, *, timeout: float) -> float:
        """Round-trip ``/ipfs/ping/1.0.0``, as the real host does; return seconds."""
        started = trio.current_time()
        stream = await self.open_stream(peer_id, PING_PROTOCOL, timeout=timeout)
        return await ping_over(stream, peer_id, started=started, timeout=timeout)

    # -- pubsub ----------------------------------------------------------------------

    def set_validator(self, topic: str, validator: Validator) -> None:
        self._validators[topic] = validator

    async def subscribe(self, topic: str) -> trio.MemoryReceiveChannel[PubsubMessage]:
        """Subscribe and return our own buffer of delivered messages."""
        await trio.lowlevel.checkpoint()
        send, receive = trio.open_memory_channel[PubsubMessage](SUBSCRIPTION_BUFFER)
        if self._closed:
            send.close()
            return receive
        self._subscriptions.setdefault(topic, []).append(send)
        self._topics.add(topic)
        self._network._changed.unpark_all()
        return receive

    async def publish(self, topic: str, data: bytes) -> None:
        """Deliver to every subscriber now (see the module docstring)."""
        await self.wait_for_queue_room()
        if self._closed:
            raise PublishError(f"publish on {topic} failed: the host is closed")
        self._network._gossip(self, topic, bytes(data))

    async def wait_for_queue_room(self) -> None:
        await trio.lowlevel.checkpoint()

    async def flush(self, timeout: float) -> bool:
        await trio.lowlevel.checkpoint()
        return True

    async def wait_for_subscriber(self, topic: str, peer_id: str, timeout: float) -> bool:
        """Wait (bounded) until ``peer_id`` subscribes to ``topic``; True if it did."""
        return await self._wait(lambda: peer_id in self.pubsub_peers(topic), timeout)

    async def wait_for_topic_peers(self, topic: str, count: int, timeout: float) -> bool:
        """Wait (bounded) until ``count`` peers subscribe to ``topic``; True if they did."""
        return await self._wait(lambda: len(self.pubsub_peers(topic)) >= count, timeout)

    # -- the network's side ------------------------------------------------------------

    async def _wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        with trio.move_on_after(timeout):
            while not condition():
                await self._network._changed.park()
            return True
        return False

    def _emit(self, event: PeerEvent) -> None:
        try:
            self._events.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            logger.warning("peer event for %s not delivered (event buffer full)", event.peer_id)

    def _accepts(self, msg: PubsubMessage, forwarder: str) -> bool:
        """Run our validator for ``msg.topic``; a raising one refuses (and, on our own
        publish, fails it, as py-libp2p does)."""
        validator = self._validators.get(msg.topic)
        if validator is None:
            return True
        try:
            return bool(validator(msg.origin, msg.data))
        except Exception as exc:
            if forwarder == self.peer_id:
                raise PublishError(f"publish on {msg.topic} failed: {exc}") from exc
            logger.warning("pubsub message from %s refused: %s", forwarder, exc)
            self._on_drop(f"peer:{forwarder}", f"garbage_rpc:{type(exc).__name__}")
            return False

    def _deliver(self, msg: PubsubMessage) -> None:
        channels = self._subscriptions.get(msg.topic, [])
        for send in list(channels):
            try:
                send.send_nowait(msg)
            except trio.WouldBlock:
                self.drops.buffer_overflow += 1
                self._on_drop(msg.topic, "subscription_buffer_full")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                channels.remove(send)  # the reader went away; we stay subscribed

    def _shut_down(self) -> None:
        self._closed = True
        self.close_all_sockets()
        for channels in self._subscriptions.values():
            for send in channels:
                send.close()
        self._subscriptions.clear()
        self._topics.clear()


async def _echo(stream: MemoryStream) -> None:
    """libp2p's ping handler: send back whatever arrives, until the stream ends."""
    while data := await stream.receive_some(PING_BYTES):
        await stream.send_all(data)


if TYPE_CHECKING:
    # The adapter and its double satisfy the one interface the node is written against.
    _REAL: type[Host] = P2PHost
    _DOUBLE: type[Host] = MemoryHost


__all__ = ["MemoryHost", "MemoryNetwork", "MemoryStream", "MemoryStreamHandler"]
