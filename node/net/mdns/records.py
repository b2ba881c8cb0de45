"""What mDNS records say about libp2p peers (pure: no sockets, no trio).

``dnsaddr=<multiaddr>/p2p/<peer id>`` TXT strings are how libp2p peers advertise
themselves over mDNS (py-libp2p, js-libp2p and go-libp2p alike). This module encodes and
parses them, and keeps the :class:`PeerTable` that decides which sightings to report.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

# zeroconf re-exports these from its package only implicitly (mypy --strict refuses that)
from node.net.lan_addrs import is_loopback_addr

logger = logging.getLogger(__name__)


SERVICE_TYPE = "_p2p._udp.local."
"""The DNS-SD service every libp2p implementation browses for."""

SERVICE_LOWER = SERVICE_TYPE.lower()
INSTANCE_SUFFIX = "." + SERVICE_LOWER
TYPE_PTR = 12
TYPE_TXT = 16
CLASS_IN = 1

MAX_TXT_STRING = 255
"""A TXT character-string holds at most 255 bytes (RFC 6763 §6.1)."""

MAX_TXT_TOTAL = 1200
"""Our TXT record must fit one mDNS packet together with PTR, SRV and A records."""

MAX_INSTANCES = 4096
"""Most service instances tracked at once; bounds memory against a flooding neighbour."""

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


# --- multiaddrs and TXT records ----------------------------------------------------------

_PEER_ID_RE = re.compile(r"(?:[1-9A-HJ-NP-Za-km-z]{32,128}|b[a-z2-7]{32,128})")
_DNS_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_PORT_RE = re.compile(r"[0-9]{1,5}")
_HOST_PROTOCOLS = frozenset({"ip4", "ip6", "dns", "dns4", "dns6"})
PORT_PROTOCOLS = frozenset({"tcp", "udp"})
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
    if transport not in PORT_PROTOCOLS or not _PORT_RE.fullmatch(port):
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
        DiscoveredPeer(peer_id, tuple(sorted(addrs, key=is_loopback_addr)))
        for peer_id, addrs in by_peer.items()
    ]


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
