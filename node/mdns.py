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

The module has a pure part (address expansion, TXT encoding and parsing, the table that
decides what to report) and a thin trio adapter, :func:`open_mdns_discovery`. Zeroconf
runs on its own thread and asyncio loop; the trio side only hands it work and drains a
bounded, coalescing inbox, so the trio loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import random
import re
import secrets
import string
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ifaddr
import trio
from zeroconf import (
    InterfaceChoice,
    RecordUpdate,
    RecordUpdateListener,
    ServiceInfo,
    Zeroconf,
    current_time_millis,
)

# zeroconf re-exports these from its package only implicitly (mypy --strict refuses that)
from zeroconf._dns import DNSPointer, DNSQuestion, DNSText
from zeroconf._protocol.outgoing import DNSOutgoing

logger = logging.getLogger(__name__)

SERVICE_TYPE = "_p2p._udp.local."
"""The DNS-SD service every libp2p implementation browses for."""

RECORD_TTL_S = 120
"""TTL of our PTR/SRV/TXT/A records, as js-libp2p uses; zeroconf's 75-minute default
for PTR/TXT would keep a crashed peer in everyone's cache for over an hour."""

MAX_TXT_STRING = 255
"""A TXT character-string holds at most 255 bytes (RFC 6763 §6.1)."""

MAX_TXT_TOTAL = 1200
"""Our TXT record must fit one mDNS packet together with PTR, SRV and A records."""

MAX_INSTANCES = 4096
"""Most service instances tracked at once; bounds memory against a flooding neighbour."""

MAX_PENDING = 1024
"""Most distinct peers waiting to be received; duplicates coalesce and never count."""

_SERVICE_LOWER = SERVICE_TYPE.lower()
_INSTANCE_SUFFIX = "." + _SERVICE_LOWER
_TYPE_PTR = 12
_TYPE_TXT = 16
_CLASS_IN = 1
_FLAGS_QUERY = 0x0000
_IFF_UP = 0x1
_NAME_ALPHABET = string.ascii_lowercase + string.digits
_CLOSE_TIMEOUT_S = 3.0

_T = TypeVar("_T")
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class DiscoveredPeer:
    """A peer seen on the LAN.

    ``addrs`` are transport multiaddrs *without* the ``/p2p/<peer id>`` suffix (the
    form ``PeerInfo`` and a peer book keep), deduplicated, in the order advertised except
    that loopback addresses come last. Never empty.
    """

    peer_id: str
    addrs: tuple[str, ...]


# --- addresses -------------------------------------------------------------------------


def advertisable_addrs(
    listen_addrs: Sequence[str], *, host_ips: Sequence[str] | None = None
) -> list[str]:
    """Turn listen multiaddrs into addresses a LAN neighbour can dial.

    ``/ip4/0.0.0.0/...`` (and ``/ip6/::/...``) become one address per IP of each
    interface that is up, loopback only when nothing else is available; unspecified
    addresses are never returned. Explicit addresses, loopback included, are kept as
    given, except ``/ip4``/``/ip6`` ones whose IP does not parse (dropped). A trailing
    ``/p2p/<id>`` is dropped. Order is kept and duplicates removed.

    ``host_ips`` replaces the interface scan (tests pass it; ``None`` reads ``ifaddr``).
    """
    ips: list[_IPAddress] | None = None
    out: dict[str, None] = {}
    for raw in listen_addrs:
        addr = _strip_p2p(raw)
        parts = addr.split("/")
        if len(parts) >= 3 and parts[0] == "" and parts[1] in ("ip4", "ip6"):
            try:
                ip = ipaddress.ip_address(parts[2])
            except ValueError:
                continue
            if (parts[1] == "ip4") != (ip.version == 4):
                continue
            if ip.is_unspecified:
                if ips is None:
                    ips = _host_ips(host_ips)
                for concrete in _expand_wildcard(ip.version, ips):
                    out["/".join(["", parts[1], str(concrete), *parts[3:]])] = None
                continue
        out[addr] = None
    return list(out)


def _strip_p2p(addr: str) -> str:
    head, sep, _ = addr.partition("/p2p/")
    return head if sep else addr


def _expand_wildcard(version: int, ips: Sequence[_IPAddress]) -> list[_IPAddress]:
    usable = [
        ip
        for ip in ips
        if ip.version == version
        and not ip.is_unspecified
        and not ip.is_multicast
        and not (ip.version == 6 and ip.is_link_local)  # would need an /ip6zone
    ]
    outside = [ip for ip in usable if not ip.is_loopback]
    return outside or usable


def _host_ips(given: Sequence[str] | None) -> list[_IPAddress]:
    if given is not None:
        return [ipaddress.ip_address(ip) for ip in given]
    found: list[_IPAddress] = []
    for adapter in ifaddr.get_adapters():
        if not _interface_is_up(adapter.name):
            continue
        for entry in adapter.ips:
            text = entry.ip if isinstance(entry.ip, str) else entry.ip[0]
            try:
                found.append(ipaddress.ip_address(text.split("%", 1)[0]))
            except ValueError:
                continue
    return found


def _interface_is_up(name: str) -> bool:
    """Administratively up with a carrier ("unknown" is what lo and tunnels report).

    Linux only; where sysfs is missing every interface counts as up.
    """
    try:
        with open(f"/sys/class/net/{name}/flags", encoding="ascii") as f:
            flags = int(f.read().strip(), 16)
        with open(f"/sys/class/net/{name}/operstate", encoding="ascii") as f:
            operstate = f.read().strip()
    except (OSError, ValueError):
        return True
    return bool(flags & _IFF_UP) and operstate in ("up", "unknown")


# --- multiaddrs and TXT records ----------------------------------------------------------

_PEER_ID_RE = re.compile(r"(?:[1-9A-HJ-NP-Za-km-z]{32,128}|b[a-z2-7]{32,128})")
_DNS_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_PORT_RE = re.compile(r"[0-9]{1,5}")
_HOST_PROTOCOLS = frozenset({"ip4", "ip6", "dns", "dns4", "dns6"})
_PORT_PROTOCOLS = frozenset({"tcp", "udp"})
_FLAG_PROTOCOLS = frozenset(
    {"quic", "quic-v1", "ws", "wss", "tls", "noise", "webtransport", "webrtc-direct", "http"}
)
_VALUE_PROTOCOLS = frozenset({"certhash", "sni"})
_DNSADDR_KEY_RE = re.compile(rb"dnsaddr[0-9]*", re.IGNORECASE)
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def parse_dnsaddr(value: str) -> tuple[str, str] | None:
    """Split ``<multiaddr>/p2p/<peer id>`` into (multiaddr, peer id), or None if unusable.

    Accepts what a LAN peer can be dialled on: ``/ip4|ip6|dns*/<host>/tcp|udp/<port>``
    then optional transport protocols. Refuses unspecified, multicast and broadcast IPs,
    port 0, relay addresses and anything this parser does not know. Never raises.
    """
    if len(value) > MAX_TXT_STRING or not value.isascii():
        return None
    head, sep, peer_id = value.rpartition("/p2p/")
    if not sep or not _PEER_ID_RE.fullmatch(peer_id):
        return None
    parts = head.split("/")
    if len(parts) < 5 or parts[0] != "":
        return None
    proto, host, transport, port = parts[1:5]
    if proto not in _HOST_PROTOCOLS or not _host_ok(proto, host):
        return None
    if transport not in _PORT_PROTOCOLS or not _PORT_RE.fullmatch(port):
        return None
    if not 0 < int(port) < 65536:
        return None
    rest = parts[5:]
    i = 0
    while i < len(rest):
        name = rest[i]
        if name in _FLAG_PROTOCOLS:
            i += 1
        elif name in _VALUE_PROTOCOLS and i + 1 < len(rest) and rest[i + 1]:
            i += 2
        else:
            return None
    return head, peer_id


def _host_ok(proto: str, host: str) -> bool:
    if proto.startswith("dns"):
        return bool(_DNS_NAME_RE.fullmatch(host))
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if (proto == "ip4") != (ip.version == 4):
        return False
    if ip.is_unspecified or ip.is_multicast:
        return False
    return ip != _BROADCAST


def dnsaddr_strings(peer_id: str, addrs: Iterable[str]) -> list[bytes]:
    """The TXT strings advertising ``addrs`` for ``peer_id``: ``dnsaddr=<addr>/p2p/<id>``.

    Addresses we would refuse from a neighbour (see :func:`parse_dnsaddr`), addresses of
    another peer, and those that do not fit a TXT record are left out and logged.
    """
    out: list[bytes] = []
    total = 0
    for addr in addrs:
        head, sep, owner = addr.partition("/p2p/")
        if sep and owner != peer_id:
            logger.warning("mdns: not advertising %s: it names another peer", addr)
            continue
        full = f"{head}/p2p/{peer_id}"
        if parse_dnsaddr(full) is None:
            logger.warning("mdns: not advertising %s: not dialable from the LAN", head)
            continue
        encoded = b"dnsaddr=" + full.encode("ascii")
        if len(encoded) > MAX_TXT_STRING or total + 1 + len(encoded) > MAX_TXT_TOTAL:
            logger.warning("mdns: not advertising %s: TXT record full", head)
            continue
        if encoded not in out:
            out.append(encoded)
            total += 1 + len(encoded)
    return out


def encode_txt(strings: Sequence[bytes]) -> bytes:
    """TXT rdata: each string prefixed by its length (RFC 1035 §3.3.14)."""
    return b"".join(bytes([len(s)]) + s for s in strings)


def decode_txt(rdata: bytes) -> list[bytes]:
    """Split TXT rdata into its strings; a truncated tail is dropped, never raised."""
    out: list[bytes] = []
    i = 0
    while i < len(rdata):
        n = rdata[i]
        if i + 1 + n > len(rdata):
            break
        out.append(rdata[i + 1 : i + 1 + n])
        i += 1 + n
    return out


def peers_from_txt(strings: Iterable[bytes]) -> list[DiscoveredPeer]:
    """The peers named by ``dnsaddr`` TXT strings; unusable strings are skipped.

    Keys ``dnsaddr`` and ``dnsaddrN`` (py-libp2p's built-in mDNS numbers them) are read,
    case-insensitively. Strings naming different peer ids give one peer each. Loopback
    addresses (js-libp2p advertises them, first) are kept but put last: they only reach a
    peer on the same machine.
    """
    by_peer: dict[str, dict[str, None]] = {}
    for s in strings:
        key, sep, value = s.partition(b"=")
        if not sep or not _DNSADDR_KEY_RE.fullmatch(key):
            continue
        try:
            parsed = parse_dnsaddr(value.decode("ascii"))
        except UnicodeDecodeError:
            continue
        if parsed is not None:
            addr, peer_id = parsed
            by_peer.setdefault(peer_id, {})[addr] = None
    return [
        DiscoveredPeer(peer_id, tuple(sorted(addrs, key=_is_loopback_addr)))
        for peer_id, addrs in by_peer.items()
    ]


def _is_loopback_addr(addr: str) -> bool:
    parts = addr.split("/")
    try:
        return parts[1] in ("ip4", "ip6") and ipaddress.ip_address(parts[2]).is_loopback
    except (IndexError, ValueError):
        return False


# --- what to report ---------------------------------------------------------------------


@dataclass
class _PeerState:
    addrs: tuple[str, ...]
    reported_at: float
    instances: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class TableChanges:
    """What one observation changed: peers to report, and peer ids no longer seen."""

    found: tuple[DiscoveredPeer, ...] = ()
    lost: tuple[str, ...] = ()


class PeerTable:
    """Which service instances name which peers, and when each peer was last reported.

    Pure: no I/O, time passed in. A peer is reported when first seen, when its address
    set changes, and again when seen ``rediscover_after`` seconds after its last report
    (so a peer book can reset its backoff); never for our own peer id. A peer is lost
    when no live instance names it any more, and reported afresh if it comes back.
    """

    def __init__(
        self,
        own_peer_id: str,
        *,
        rediscover_after: float | None = 30.0,
        max_instances: int = MAX_INSTANCES,
    ) -> None:
        self._own = own_peer_id
        self._rediscover_after = rediscover_after
        self._max_instances = max_instances
        self._instances: dict[str, frozenset[str]] = {}
        self._peers: dict[str, _PeerState] = {}

    def __len__(self) -> int:
        return len(self._peers)

    def observe(self, instance: str, peers: Sequence[DiscoveredPeer], now: float) -> TableChanges:
        """Record that ``instance`` now names ``peers`` (none: it is gone)."""
        peers = [p for p in peers if p.peer_id != self._own and p.addrs]
        if (
            instance not in self._instances
            and peers
            and len(self._instances) >= self._max_instances
        ):
            logger.warning("mdns: ignoring instance %s: tracking too many", instance)
            return TableChanges()
        before = self._instances.pop(instance, frozenset())
        now_named = frozenset(p.peer_id for p in peers)
        if now_named:
            self._instances[instance] = now_named
        lost: list[str] = []
        for peer_id in before - now_named:
            state = self._peers.get(peer_id)
            if state is None:
                continue
            state.instances.discard(instance)
            if not state.instances:
                del self._peers[peer_id]
                lost.append(peer_id)
        found: list[DiscoveredPeer] = []
        for peer in peers:
            state = self._peers.get(peer.peer_id)
            if state is None:
                self._peers[peer.peer_id] = _PeerState(peer.addrs, now, {instance})
                found.append(peer)
                continue
            state.instances.add(instance)
            changed = set(state.addrs) != set(peer.addrs)
            due = (
                self._rediscover_after is not None
                and now - state.reported_at >= self._rediscover_after
            )
            if changed or due:
                state.addrs = peer.addrs
                state.reported_at = now
                found.append(peer)
        return TableChanges(tuple(found), tuple(lost))


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


# --- zeroconf side --------------------------------------------------------------------


class _Inbox:
    """Zeroconf thread → trio: latest TXT strings per instance name, coalesced.

    ``put`` runs on zeroconf's thread and never blocks; it wakes the trio side at most once
    per batch through the trio token. ``()`` means the instance is gone.
    """

    def __init__(self, token: trio.lowlevel.TrioToken, capacity: int = MAX_INSTANCES) -> None:
        self._token = token
        self._capacity = capacity
        self._lock = threading.Lock()
        self._items: dict[str, tuple[bytes, ...]] = {}
        self._event = trio.Event()
        self._wake_scheduled = False

    def put(self, name: str, strings: tuple[bytes, ...]) -> None:
        with self._lock:
            if name not in self._items and len(self._items) >= self._capacity:
                return  # the next query round brings it back
            self._items[name] = strings
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
            event = self._event
        with suppress(trio.RunFinishedError):
            self._token.run_sync_soon(event.set)

    async def get_batch(self) -> dict[str, tuple[bytes, ...]]:
        await self._event.wait()
        with self._lock:
            items, self._items = self._items, {}
            self._wake_scheduled = False
            self._event = trio.Event()
        return items


class _RecordListener(RecordUpdateListener):
    """Runs on zeroconf's loop: hands the TXT strings of every ``_p2p`` instance a packet
    touched to the inbox.

    A packet's own TXT records are used as they are (js sends one TXT record per address,
    all in one packet; zeroconf one record with every address). Only when a packet names
    an instance without carrying its TXT (a lone PTR, an expiry) is the cache read: its
    view of a *changed* TXT lags, because zeroconf re-arms superseded cache-flush records
    for another second each time the new record arrives.
    """

    def __init__(self, zc: Zeroconf, inbox: _Inbox) -> None:
        self._zc = zc
        self._inbox = inbox
        self._gone: dict[str, bool] = {}  # instance name -> a goodbye/expired PTR came
        self._carried: dict[str, list[bytes]] = {}  # instance name -> TXT strings in packet

    def async_update_records(self, zc: Zeroconf, now: float, records: list[RecordUpdate]) -> None:
        for update in records:
            record = update.new
            if isinstance(record, DNSPointer):
                if record.name.lower() != _SERVICE_LOWER:
                    continue
                name = record.alias.lower()
                gone = record.is_expired(now)
            elif isinstance(record, DNSText):
                name = record.name.lower()
                gone = False
            else:
                continue
            if not name.endswith(_INSTANCE_SUFFIX):
                continue
            if name not in self._gone:
                if len(self._gone) >= MAX_INSTANCES:
                    continue
                self._gone[name] = False
            self._gone[name] = self._gone[name] or gone
            if isinstance(record, DNSText) and not record.is_expired(now):
                self._carried.setdefault(name, []).extend(decode_txt(record.text))

    def async_update_records_complete(self) -> None:
        touched, self._gone = self._gone, {}
        carried, self._carried = self._carried, {}
        now = current_time_millis()
        for name, gone in touched.items():
            strings: tuple[bytes, ...] = ()
            if gone:
                pass
            elif name in carried:
                strings = tuple(carried[name])
            else:
                strings = tuple(
                    s
                    for record in self._zc.cache.async_all_by_details(name, _TYPE_TXT, _CLASS_IN)
                    if isinstance(record, DNSText) and not record.is_expired(now)
                    for s in decode_txt(record.text)
                )
            self._inbox.put(name, strings)


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
            if port == 0 and parts[3] in _PORT_PROTOCOLS:
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
        out.add_question(DNSQuestion(SERVICE_TYPE, _TYPE_PTR, _CLASS_IN))
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

    async def _run_pump(self, inbox: _Inbox) -> None:
        while True:
            batch = await inbox.get_batch()
            now = trio.current_time()
            for name, strings in batch.items():
                changes = self._table.observe(name, peers_from_txt(strings), now)
                for peer_id in changes.lost:
                    self._mailbox.discard(peer_id)
                for peer in changes.found:
                    self._mailbox.put(peer)

    async def _shutdown(self, listener: _RecordListener) -> None:
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
    inbox = _Inbox(trio.lowlevel.current_trio_token())
    zc = await trio.to_thread.run_sync(lambda: Zeroconf(interfaces=chosen, use_asyncio=False))
    discovery = MdnsDiscovery(
        zc, peer_id, addrs=advertised, interval=interval, rediscover_after=rediscover_after
    )
    listener = _RecordListener(zc, inbox)
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
    "SERVICE_TYPE",
    "DiscoveredPeer",
    "MdnsDiscovery",
    "PeerTable",
    "TableChanges",
    "advertisable_addrs",
    "decode_txt",
    "dnsaddr_strings",
    "encode_txt",
    "open_mdns_discovery",
    "parse_dnsaddr",
    "peers_from_txt",
]
