"""Which of this host's addresses to advertise for a listen address.

``/ip4/0.0.0.0`` (or ``/ip6/::``) is where a node listens, never where anyone can reach
it: it is expanded to the addresses of the interfaces that are up. Pure apart from
reading the interface list (``ifaddr``) when no addresses are given.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

import ifaddr

# zeroconf re-exports these from its package only implicitly (mypy --strict refuses that)

logger = logging.getLogger(__name__)


_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IFF_UP = 0x1

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


def is_loopback_addr(addr: str) -> bool:
    parts = addr.split("/")
    try:
        return parts[1] in ("ip4", "ip6") and ipaddress.ip_address(parts[2]).is_loopback
    except (IndexError, ValueError):
        return False
