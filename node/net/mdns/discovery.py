"""LAN peer discovery over multicast DNS, as the libp2p mDNS spec describes it.

Spec: https://github.com/libp2p/specs/blob/master/discovery/mdns.md. We advertise the
service ``_p2p._udp.local.`` under a random instance name, with one TXT string
``dnsaddr=<multiaddr>/p2p/<peer id>`` per address, and we query ``PTR _p2p._udp.local.``.

We do not use py-libp2p's built-in mDNS because it blocks the trio loop while zeroconf
registers, advertises ``/ip4/0.0.0.0`` and never finds js-libp2p peers: js answers with
PTR + TXT only, and py-libp2p waits for SRV and A records. Here every TXT record that
arrives (answers or additionals, announcement or reply, with or without SRV/A) is read
straight from zeroconf's record stream, so both styles are understood.

What js-libp2p (``@libp2p/mdns``) does, read from its ``query.ts``:

- it queries ``PTR _p2p._udp.local`` every 10 s and answers a query only when the
  query's *first* question is named exactly ``_p2p._udp.local``, with a multicast
  response holding a PTR and one TXT record per private address, nothing else;
- it accepts a response when the answers section holds a PTR named exactly
  ``_p2p._udp.local`` and TXT records (answers or additionals) carry ``dnsaddr=``
  strings; every such string must parse and the first must end in ``/p2p/<id>``.

Zeroconf's reply to that query (PTR in answers; SRV, TXT, A in additionals) and its
announcements meet those rules: ``tests/test_mdns.py`` checks it on the wire with a
raw-socket stand-in and with js-libp2p 2.x itself (@libp2p/mdns 11). js also takes our
goodbye (PTR with TTL 0) for a sighting; the dial that follows fails, nothing worse.
js sends its multicast without choosing an interface, so a js host needs a route
covering 224.0.0.251 (any default route does).

For py-libp2p's built-in mDNS we also publish SRV and A records (it waits for them) and
read its ``dnsaddr2=``, ``dnsaddr3=``... keys.

The pure parts live beside it: :mod:`node.net.lan_addrs` (which addresses to advertise) and
:mod:`node.net.mdns.records` (TXT encoding and parsing, the table that decides what to
report). This module is the thin adapter, :func:`open_mdns_discovery`. Zeroconf
runs on its own thread and asyncio loop; the trio side only hands it work and drains a
bounded, coalescing inbox, so the trio loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import secrets
import string
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import trio
from zeroconf import (
    InterfaceChoice,
    ServiceInfo,
    Zeroconf,
)

# zeroconf re-exports these from its package only implicitly (mypy --strict refuses that)
from zeroconf._dns import DNSQuestion
from zeroconf._protocol.outgoing import DNSOutgoing

from node.net.lan_addrs import advertisable_addrs
from node.net.mdns.listener import Inbox, RecordListener
from node.net.mdns.records import (
    CLASS_IN,
    PORT_PROTOCOLS,
    SERVICE_TYPE,
    TYPE_PTR,
    DiscoveredPeer,
    PeerTable,
    dnsaddr_strings,
    encode_txt,
    peers_from_txt,
)

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

RECORD_TTL_S = 120
"""TTL of our PTR/SRV/TXT/A records, as js-libp2p uses; zeroconf's 75-minute default
for PTR/TXT would keep a crashed peer in everyone's cache for over an hour."""

MAX_PENDING = 1024
"""Most distinct peers waiting to be received; duplicates coalesce and never count."""

_FLAGS_QUERY = 0x0000
_NAME_ALPHABET = string.ascii_lowercase + string.digits
_CLOSE_TIMEOUT_S = 3.0

# --- trio side: the receive channel ---------------------------------------------------


class _PeerMailbox(trio.abc.ReceiveChannel[DiscoveredPeer]):
    """Latest report per peer, oldest peer first; a newer report replaces a pending one."""

    def __init__(self, capacity: int = MAX_PENDING) -> None:
        self._capacity = capacity
        self._pending: dict[str, DiscoveredPeer] = {}
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self._finished = False
        self.dropped = 0

    def put(self, peer: DiscoveredPeer) -> None:
        if self._closed:
            return
        if peer.peer_id not in self._pending and len(self._pending) >= self._capacity:
            self.dropped += 1
            logger.warning("mdns: %d peers unreceived, dropped %s", self._capacity, peer.peer_id)
            return
        self._pending[peer.peer_id] = peer
        self._lot.unpark()

    def discard(self, peer_id: str) -> None:
        self._pending.pop(peer_id, None)

    def finish(self) -> None:
        """No more reports will come: receivers get EndOfChannel once drained."""
        self._finished = True
        self._lot.unpark_all()

    async def receive(self) -> DiscoveredPeer:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._closed:
                raise trio.ClosedResourceError("mdns peer channel was closed")
            if self._pending:
                peer = self._pending.pop(next(iter(self._pending)))
                await trio.lowlevel.cancel_shielded_checkpoint()
                return peer
            if self._finished:
                raise trio.EndOfChannel
            await self._lot.park()

    async def aclose(self) -> None:
        self._closed = True
        self._lot.unpark_all()
        await trio.lowlevel.checkpoint()


async def _wait_future(fut: concurrent.futures.Future[_T]) -> _T:
    """Wait in trio for a future completed on another thread; cancelling cancels it."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def _wake(_: concurrent.futures.Future[_T]) -> None:
        with suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    fut.add_done_callback(_wake)
    try:
        await done.wait()
    finally:
        if not fut.done():
            fut.cancel()
    return fut.result()


def _dnsaddr_transport(encoded: bytes) -> str:
    """``b"dnsaddr=/ip4/…/p2p/<id>"`` (one of ours) → ``/ip4/…``."""
    return encoded.decode("ascii").partition("=")[2].rpartition("/p2p/")[0]


def _random_instance_name() -> str:
    # the spec asks for 32-63 random characters; 63 is the DNS label limit
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(63))


# --- the adapter ----------------------------------------------------------------------


class MdnsDiscovery:
    """A running discovery: advertises us and reports peers on :attr:`peers`.

    Get one from :func:`open_mdns_discovery`.
    """

    def __init__(
        self,
        zc: Zeroconf,
        peer_id: str,
        *,
        addrs: Sequence[str],
        interval: float,
        rediscover_after: float | None,
    ) -> None:
        self.peer_id = peer_id
        self._mailbox = _PeerMailbox()
        self.peers: trio.abc.ReceiveChannel[DiscoveredPeer] = self._mailbox
        """Reports of peers on the LAN; ends (EndOfChannel) when the discovery stops."""
        self._zc = zc
        self._interval = interval
        self._table = PeerTable(peer_id, rediscover_after=rediscover_after)
        self._instance = _random_instance_name()
        self._addrs = tuple(_dnsaddr_transport(s) for s in dnsaddr_strings(peer_id, addrs))
        self._info: ServiceInfo | None = None
        self._lock = trio.Lock()
        self._registered = trio.Event()

    @property
    def instance_name(self) -> str:
        """Our DNS-SD instance label (without the service type)."""
        return self._instance

    @property
    def addrs(self) -> tuple[str, ...]:
        """The transport addresses we advertise now (without ``/p2p``)."""
        return self._addrs

    async def wait_advertised(self) -> None:
        """Return once our records are registered and the first announcement is out.

        Never returns while we have no address to advertise."""
        await self._registered.wait()

    async def update_addrs(self, addrs: Sequence[str]) -> None:
        """Advertise ``addrs`` instead (expanded by :func:`advertisable_addrs`); an empty
        list withdraws our records (goodbye) while still browsing."""
        async with self._lock:
            await self._advertise(advertisable_addrs(addrs))

    # -- internals, all on the trio thread unless named _zc_*

    async def _advertise(self, addrs: Sequence[str]) -> None:
        strings = dnsaddr_strings(self.peer_id, addrs)
        self._addrs = tuple(_dnsaddr_transport(s) for s in strings)
        if not strings:
            if self._info is not None:
                info, self._info = self._info, None
                await _wait_future(self._run_in_zc(self._zc_unregister(info)))
            return
        if self._info is not None:
            info = self._make_info(strings)
            if info.text != self._info.text:
                await _wait_future(self._run_in_zc(self._zc_update(info)))
                self._info = info
            return
        info = self._make_info(strings)
        await _wait_future(self._run_in_zc(self._zc_register(info)))
        self._info = info
        self._registered.set()

    def _make_info(self, strings: Sequence[bytes]) -> ServiceInfo:
        ip4: list[str] = []
        port = 0
        for s in strings:
            parts = _dnsaddr_transport(s).split("/")
            if parts[1] == "ip4" and parts[2] not in ip4:
                ip4.append(parts[2])
            if port == 0 and parts[3] in PORT_PROTOCOLS:
                port = int(parts[4])
        # SRV and A are there for py-libp2p's built-in mDNS, which needs them;
        # js-libp2p and we read only the TXT record.
        return ServiceInfo(
            SERVICE_TYPE,
            f"{self._instance}.{SERVICE_TYPE}",
            port=port,
            properties=encode_txt(strings),
            server=f"{self._instance}.local.",
            host_ttl=RECORD_TTL_S,
            other_ttl=RECORD_TTL_S,
            parsed_addresses=ip4,
        )

    def _run_in_zc(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        loop = self._zc.loop
        assert loop is not None
        return asyncio.run_coroutine_threadsafe(coro, loop)

    async def _zc_register(self, info: ServiceInfo) -> None:
        # No probing (cooperating_responders): it would delay us ~1.6 s and only guards
        # human-chosen names; ours has 63 random characters. js-libp2p does not probe.
        await self._zc.async_register_service(info, cooperating_responders=True, strict=True)

    async def _zc_update(self, info: ServiceInfo) -> None:
        await self._zc.async_update_service(info)

    async def _zc_unregister(self, info: ServiceInfo) -> None:
        goodbyes = await self._zc.async_unregister_service(info)
        await goodbyes

    def _send_query(self) -> None:
        out = DNSOutgoing(_FLAGS_QUERY, multicast=True)
        # PTR question alone and first: js-libp2p answers only if questions[0] is ours
        out.add_question(DNSQuestion(SERVICE_TYPE, TYPE_PTR, CLASS_IN))
        self._zc.send(out)

    def _send_announcement(self) -> None:
        info = self._info
        loop = self._zc.loop
        if info is None or loop is None:
            return

        def _announce() -> None:
            self._zc.async_send(self._zc.generate_service_broadcast(info, None))

        loop.call_soon_threadsafe(_announce)

    async def _run_advertiser(self, addrs: Sequence[str]) -> None:
        self._send_query()  # browse before our own records are up
        async with self._lock:
            await self._advertise(addrs)
        while True:
            await trio.sleep(self._interval * random.uniform(0.9, 1.1))
            self._send_query()
            self._send_announcement()

    async def _run_pump(self, inbox: Inbox) -> None:
        while True:
            batch = await inbox.get_batch()
            now = trio.current_time()
            for name, strings in batch.items():
                changes = self._table.observe(name, peers_from_txt(strings), now)
                for peer_id in changes.lost:
                    self._mailbox.discard(peer_id)
                for peer in changes.found:
                    self._mailbox.put(peer)

    async def _shutdown(self, listener: RecordListener) -> None:
        """Goodbye, then stop zeroconf's thread. Must run shielded."""
        info, self._info = self._info, None
        if info is not None:
            with trio.move_on_after(_CLOSE_TIMEOUT_S) as scope:
                try:
                    await _wait_future(self._run_in_zc(self._zc_unregister(info)))
                except Exception as exc:
                    logger.warning("mdns: goodbye failed: %r", exc)
            if scope.cancelled_caught:
                logger.warning("mdns: goodbye timed out")
        self._zc.remove_listener(listener)
        try:
            # also sends goodbyes for anything still registered (a cancelled update)
            await trio.to_thread.run_sync(self._zc.close)
        except Exception as exc:
            logger.warning("mdns: closing zeroconf failed: %r", exc)


@asynccontextmanager
async def open_mdns_discovery(
    peer_id: str,
    addrs: Sequence[str],
    *,
    interval: float = 5.0,
    interfaces: InterfaceChoice | Sequence[str] = InterfaceChoice.All,
    rediscover_after: float | None = 30.0,
) -> AsyncIterator[MdnsDiscovery]:
    """Advertise ``peer_id`` at ``addrs`` on the LAN and report the peers found there.

    ``addrs`` go through :func:`advertisable_addrs` (so ``/ip4/0.0.0.0/tcp/P`` is fine).
    Every ``interval`` seconds (±10 %) we query ``_p2p._udp.local.`` and re-announce, so
    late joiners and missed packets are caught. ``interfaces`` is zeroconf's choice
    (all IPv4 interfaces by default, or a list of interface addresses).

    Entering returns once zeroconf's thread runs (a few ms); registering our records
    finishes in the background, see :meth:`MdnsDiscovery.wait_advertised`. Leaving, even
    by cancellation, sends goodbyes and stops zeroconf's thread before returning.
    Raises ``OSError`` if no multicast socket can be opened.
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    chosen = interfaces if isinstance(interfaces, InterfaceChoice) else list(interfaces)
    advertised = advertisable_addrs(addrs)
    inbox = Inbox(trio.lowlevel.current_trio_token())
    zc = await trio.to_thread.run_sync(lambda: Zeroconf(interfaces=chosen, use_asyncio=False))
    discovery = MdnsDiscovery(
        zc, peer_id, addrs=advertised, interval=interval, rediscover_after=rediscover_after
    )
    listener = RecordListener(zc, inbox)
    try:
        zc.add_listener(listener, None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(discovery._run_pump, inbox)
            nursery.start_soon(discovery._run_advertiser, advertised)
            try:
                yield discovery
            finally:
                nursery.cancel_scope.cancel()
    finally:
        discovery._mailbox.finish()
        with trio.CancelScope(shield=True):
            await discovery._shutdown(listener)


__all__ = [
    "MAX_PENDING",
    "RECORD_TTL_S",
    "DiscoveredPeer",
    "MdnsDiscovery",
    "open_mdns_discovery",
]
