"""mDNS probes run inside test namespaces; they talk JSON lines on stdout.

``discover``  runs :func:`node.net.mdns.discovery.open_mdns_discovery` and prints ``ready``,
              ``advertised``, one ``peer`` line per report and, on exit, ``stopped`` with
              the threads still alive and the worst trio-loop lag seen (``max_lag_ms``).
              Reads commands on stdin: ``update ADDR...`` and ``stop`` (EOF also stops).

``jsmimic``   a js-libp2p stand-in built on a raw socket, following @libp2p/mdns
              ``query.ts`` rule by rule: it queries ``PTR _p2p._udp.local``; it answers a
              query only if ``questions[0].name == "_p2p._udp.local"`` exactly, with a PTR
              and one TXT record per address (no SRV, no A, no cache-flush bit); it accepts
              a response only if the answers hold a PTR named exactly ``_p2p._udp.local``
              and TXT strings (answers or additionals) start with ``dnsaddr=``, the first
              one ending in ``/p2p/<id>``. Prints ``answered`` for each query it answered
              and ``peer`` (with where the PTR/TXT records sat) for each peer it accepted.

Nothing here imports py-libp2p; the jsmimic codec is written from RFC 1035, independent
of zeroconf, so it checks zeroconf's wire format rather than agreeing with it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from node.net.mdns.discovery import MdnsDiscovery

MDNS_GROUP = "224.0.0.251"
MDNS_PORT = 5353
SERVICE_TAG = "_p2p._udp.local"
TYPE_PTR = 12
TYPE_TXT = 16
CLASS_IN = 1


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


# --- discover -----------------------------------------------------------------------


async def run_discover(args: argparse.Namespace) -> float:
    """Returns the longest the trio loop was late waking a 5 ms sleep, in seconds."""
    from node.net.mdns.discovery import open_mdns_discovery

    worst = 0.0

    async def watch_lag() -> None:
        nonlocal worst
        while True:
            start = trio.current_time()
            await trio.sleep(0.005)
            worst = max(worst, trio.current_time() - start - 0.005)

    async with trio.open_nursery() as outer:
        outer.start_soon(watch_lag)
        with trio.move_on_after(args.cancel_after):  # leave by cancellation, at any point
            async with open_mdns_discovery(
                args.peer_id, args.listen, interval=args.interval
            ) as mdns:
                emit("ready", instance=mdns.instance_name, addrs=list(mdns.addrs))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(report_peers, mdns)
                    nursery.start_soon(report_advertised, mdns)
                    await obey_stdin(mdns)
                    nursery.cancel_scope.cancel()
        outer.cancel_scope.cancel()
    return worst


async def report_peers(mdns: MdnsDiscovery) -> None:
    async for peer in mdns.peers:
        emit("peer", peer_id=peer.peer_id, addrs=list(peer.addrs))


async def report_advertised(mdns: MdnsDiscovery) -> None:
    await mdns.wait_advertised()
    emit("advertised", instance=mdns.instance_name)


async def obey_stdin(mdns: MdnsDiscovery) -> None:
    """``update ADDR...`` / ``stop``; EOF stops too."""
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stdin:
        buffer = b""
        while chunk := await stdin.receive_some(4096):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                words = line.decode().split()
                if words[:1] == ["update"]:
                    await mdns.update_addrs(words[1:])
                    emit("updated", addrs=list(mdns.addrs))
                elif words[:1] == ["stop"]:
                    return


# --- jsmimic: a small DNS codec -----------------------------------------------------


@dataclass
class Record:
    name: str
    type: int
    klass: int
    ttl: int
    rdata: bytes
    strings: list[bytes] = field(default_factory=list)  # TXT
    target: str = ""  # PTR


@dataclass
class Packet:
    flags: int
    questions: list[tuple[str, int, int]]
    answers: list[Record]
    authorities: list[Record]
    additionals: list[Record]

    @property
    def is_response(self) -> bool:
        return bool(self.flags & 0x8000)


class DecodeError(ValueError):
    pass


def read_name(buf: bytes, off: int) -> tuple[str, int]:
    """Read a possibly compressed name; returns (name without trailing dot, next offset)."""
    labels: list[str] = []
    end = -1
    for _ in range(128):  # bounded: a pointer loop must not hang us
        if off >= len(buf):
            raise DecodeError("name runs past the packet")
        n = buf[off]
        if n == 0:
            return ".".join(labels), (off + 1 if end < 0 else end)
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(buf):
                raise DecodeError("truncated pointer")
            if end < 0:
                end = off + 2
            off = ((n & 0x3F) << 8) | buf[off + 1]
            continue
        labels.append(buf[off + 1 : off + 1 + n].decode("utf-8", "replace"))
        off += 1 + n
    raise DecodeError("name too long or pointer loop")


def decode(buf: bytes) -> Packet:
    if len(buf) < 12:
        raise DecodeError("short header")
    _id, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", buf[:12])
    off = 12
    questions = []
    for _ in range(qd):
        name, off = read_name(buf, off)
        qtype, qclass = struct.unpack("!HH", buf[off : off + 4])
        off += 4
        questions.append((name, qtype, qclass))
    sections: list[list[Record]] = []
    for count in (an, ns, ar):
        records = []
        for _ in range(count):
            name, off = read_name(buf, off)
            rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", buf[off : off + 10])
            off += 10
            rdata = buf[off : off + rdlen]
            if len(rdata) != rdlen:
                raise DecodeError("truncated rdata")
            rec = Record(name, rtype, rclass & 0x7FFF, ttl, rdata)
            if rtype == TYPE_PTR:
                rec.target, _ = read_name(buf, off)
            elif rtype == TYPE_TXT:
                i = 0
                while i < len(rdata):
                    n = rdata[i]
                    rec.strings.append(rdata[i + 1 : i + 1 + n])
                    i += 1 + n
            off += rdlen
            records.append(rec)
        sections.append(records)
    return Packet(flags, questions, *sections)


def encode_name(name: str) -> bytes:
    # dns-packet writes names uncompressed
    out = b""
    for label in name.split("."):
        raw = label.encode()
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def encode_record(name: str, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return encode_name(name) + struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


def js_query() -> bytes:
    return (
        struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 0)
        + encode_name(SERVICE_TAG)
        + struct.pack("!HH", TYPE_PTR, CLASS_IN)
    )


def js_response(peer_name: str, multiaddrs: Sequence[str]) -> bytes:
    """What gotQuery() sends: PTR + one TXT per address, ttl 120, all in answers."""
    instance = f"{peer_name}.{SERVICE_TAG}"
    answers = [encode_record(SERVICE_TAG, TYPE_PTR, 120, encode_name(instance))]
    for ma in multiaddrs:
        data = f"dnsaddr={ma}".encode()
        answers.append(encode_record(instance, TYPE_TXT, 120, bytes([len(data)]) + data))
    header = struct.pack("!HHHHHH", 0, 0x8400, 0, len(answers), 0, 0)
    return header + b"".join(answers)


def js_got_response(pkt: Packet, local_peer_name: str) -> dict[str, object] | None:
    """gotResponse() from @libp2p/mdns query.ts, transcribed."""
    answer_ptr: Record | None = None
    txt: list[tuple[str, Record]] = []
    for rec in pkt.answers:
        if rec.type == TYPE_PTR:
            answer_ptr = rec
        elif rec.type == TYPE_TXT:
            txt.append(("answers", rec))
    for rec in pkt.additionals:
        if rec.type == TYPE_TXT:
            txt.append(("additionals", rec))
    if (
        answer_ptr is None
        or answer_ptr.name != SERVICE_TAG
        or not txt
        or answer_ptr.target.startswith(local_peer_name)
    ):
        return None
    strings = [s.decode() for _, rec in txt for s in rec.strings if s.startswith(b"dnsaddr=")]
    addrs = [s[len("dnsaddr=") :] for s in strings]
    if not addrs or any(not a.startswith("/") or "//" in a for a in addrs):
        return None  # multiaddr() would throw
    _, sep, peer_id = addrs[0].rpartition("/p2p/")
    if not sep or not peer_id or "/" in peer_id:
        return None  # "Multiaddr doesn't contain PeerId"
    return {
        "peer_id": peer_id,
        "addrs": [a.rpartition("/p2p/")[0] if "/p2p/" in a else a for a in addrs],
        "ptr_ttl": answer_ptr.ttl,
        "txt_in": sorted({where for where, _ in txt}),
    }


async def run_jsmimic(args: argparse.Namespace) -> None:
    peer_name = args.peer_name
    multiaddrs = [f"{a}/p2p/{args.peer_id}" for a in args.addr]
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    await sock.bind(("", MDNS_PORT))
    iface = socket.inet_aton(args.iface_addr)
    sock.setsockopt(
        socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(MDNS_GROUP) + iface
    )
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, iface)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    dest = (MDNS_GROUP, MDNS_PORT)
    seen: set[str] = set()
    emit("ready", peer_id=args.peer_id, instance=peer_name)

    async def query_loop() -> None:
        while True:
            await sock.sendto(js_query(), dest)
            await trio.sleep(args.interval)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(query_loop)
        while True:
            data, (src, _port) = await sock.recvfrom(9000)
            try:
                pkt = decode(data)
            except (DecodeError, struct.error) as exc:
                emit("undecodable", src=src, error=str(exc))
                continue
            if not pkt.is_response:
                if args.respond and pkt.questions and pkt.questions[0][0] == SERVICE_TAG:
                    await sock.sendto(js_response(peer_name, multiaddrs), dest)
                    if src != args.iface_addr:
                        emit("answered", src=src)
                continue
            found = js_got_response(pkt, peer_name)
            if found is None or found["peer_id"] == args.peer_id:
                continue
            key = json.dumps(found, sort_keys=True)
            if key not in seen:
                seen.add(key)
                emit("peer", src=src, **found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("discover")
    d.add_argument("--peer-id", required=True)
    d.add_argument("--listen", action="append", default=[])
    d.add_argument("--interval", type=float, default=1.0)
    d.add_argument("--cancel-after", type=float, default=float("inf"))
    j = sub.add_parser("jsmimic")
    j.add_argument("--peer-id", required=True)
    j.add_argument("--peer-name", required=True)
    j.add_argument("--addr", action="append", default=[])
    j.add_argument("--iface-addr", required=True)
    j.add_argument("--interval", type=float, default=1.0)
    j.add_argument("--no-respond", dest="respond", action="store_false")
    args = parser.parse_args(argv)
    lag = None
    try:
        if args.mode == "discover":
            lag = trio.run(run_discover, args)
        else:
            trio.run(run_jsmimic, args)
    except KeyboardInterrupt:
        pass
    # trio keeps idle worker threads ("Trio thread N") a few seconds; any other is a leak
    leftover = [
        t.name
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.name.startswith("Trio thread")
    ]
    emit("stopped", threads=leftover, max_lag_ms=None if lag is None else round(lag * 1000, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
