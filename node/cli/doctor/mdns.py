"""mDNS multicast on the LAN interfaces: join 224.0.0.251 on each, send a probe query to
port 5353 and see it come back (multicast loopback), within a bounded wait.

What this proves: the group can be joined, the interface sends multicast, and port 5353
can be shared (zeroconf and other responders share it with SO_REUSEPORT). What it cannot
prove: that the LAN's switch or Wi-Fi forwards multicast to other hosts. The probe is a
query for a random name nobody owns, so no responder answers or caches anything.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
from collections.abc import Iterator
from typing import Final

from node.cli.doctor.report import Check, fail, ok, skip
from node.cli.doctor.target import Target
from node.clock import monotonic
from node.net.lan_addrs import advertisable_addrs, is_loopback_addr

MDNS_GROUP: Final = "224.0.0.251"
MDNS_PORT: Final = 5353
PROBE_WAIT_S: Final = 1.5
MAX_PACKETS: Final = 256
"""Other hosts' mDNS traffic read while waiting for ours, at most."""
FIX: Final = "allow UDP 5353 to 224.0.0.251 in the firewall, or turn mDNS off (--no-mdns)"


def mdns_check(target: Target) -> Check:
    if target.config is None:
        return skip("mdns", "no character file (pass --character)")
    if not target.config.network.mdns:
        return skip("mdns", "mDNS is off for this character (network.mdns)")
    ips = lan_ipv4s()
    if not ips:
        return skip("mdns", "no LAN interface is up: only bootstrap peers will be found")
    failures = {ip: why for ip in ips if (why := probe(ip)) is not None}
    if not failures:
        return ok("mdns", f"multicast probe sent and received on {', '.join(ips)}")
    said = "; ".join(f"{ip}: {why}" for ip, why in failures.items())
    return fail("mdns", f"multicast probe failed on {said}", FIX)


def lan_ipv4s() -> list[str]:
    """This host's IPv4 addresses on interfaces that are up, loopback left out (the ones
    mDNS advertises, :func:`node.net.lan_addrs.advertisable_addrs`)."""
    addrs = advertisable_addrs(["/ip4/0.0.0.0/tcp/0"])
    return [addr.split("/")[2] for addr in addrs if not is_loopback_addr(addr)]


def probe(interface_ip: str, *, wait_s: float = PROBE_WAIT_S) -> str | None:
    """Send one probe query from ``interface_ip`` and wait for it to loop back; None if
    it did, else why not."""
    query = _probe_query()
    try:
        with _group_socket(interface_ip) as sock:
            sock.sendto(query, (MDNS_GROUP, MDNS_PORT))
            return None if _came_back(sock, query, wait_s) else "the probe never came back"
    except OSError as exc:
        return exc.strerror or str(exc)


@contextlib.contextmanager
def _group_socket(interface_ip: str) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("", MDNS_PORT))
        iface = socket.inet_aton(interface_ip)
        membership = struct.pack("4s4s", socket.inet_aton(MDNS_GROUP), iface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        yield sock
    finally:
        sock.close()


def _came_back(sock: socket.socket, query: bytes, wait_s: float) -> bool:
    deadline = monotonic() + wait_s
    for _ in range(MAX_PACKETS):
        left = deadline - monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            data, _sender = sock.recvfrom(9000)
        except TimeoutError:
            return False
        if data == query:
            return True
    return False


def _probe_query() -> bytes:
    """A standard DNS query (RFC 6762 §18: id 0, no flags) for TXT of a random
    ``roomverse-doctor-<hex>.local``."""
    names = (f"roomverse-doctor-{secrets.token_hex(6)}", "local")
    qname = b"".join(bytes([len(label)]) + label.encode() for label in names) + b"\0"
    header = struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0)
    return header + qname + struct.pack("!HH", 16, 1)


__all__ = ["lan_ipv4s", "mdns_check", "probe"]
