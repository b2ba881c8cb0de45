"""node.net.mdns.discovery: pure parts synchronously, the trio adapter across real namespaces.

The network tests run ``tests/support/mdns_probe.py`` inside namespaces made by
``tests/support/netns.py``: three of our nodes on one bridge must find each other, and a
raw-socket js-libp2p stand-in (PTR + TXT only, js's exact accept rules) must find us and be
found by us.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import trio
import trio.testing

from node.net.lan_addrs import advertisable_addrs
from node.net.mdns.discovery import _PeerMailbox
from node.net.mdns.records import (
    MAX_TXT_STRING,
    DiscoveredPeer,
    PeerTable,
    decode_txt,
    dnsaddr_strings,
    encode_txt,
    parse_dnsaddr,
    peers_from_txt,
)
from tests.support.jspeer import ensure_js_deps, js_skip_reason
from tests.support.line_reader import LineReader, plain_line
from tests.support.netns import (
    PREFIX,
    LanParty,
    Netns,
    iptables,
    list_namespaces,
    netns_skip_reason,
)
from tests.support.procs import REPO
from tests.support.waiting import wait_until

PROBE = str(REPO / "tests" / "support" / "mdns_probe.py")
# base58 peer ids, the shape of an Ed25519 PeerID (real keys are not needed: nobody dials)
PEER_A = "12D3KooWAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
PEER_B = "12D3KooWBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
PEER_C = "12D3KooWCccccccccccccccccccccccccccccccccccccccccccc"
PEER_JS = "12D3KooWJsjsjsjsjsjsjsjsjsjsjsjsjsjsjsjsjsjsjsjsjsjs"

_netns_reason = netns_skip_reason()
needs_netns = pytest.mark.skipif(_netns_reason is not None, reason=_netns_reason or "")


# --- advertisable_addrs -----------------------------------------------------------


HOST = ["127.0.0.1", "192.168.1.5", "10.0.0.2", "::1", "fe80::1", "2001:db8::7"]


@pytest.mark.parametrize(
    ("listen", "host_ips", "expected"),
    [
        (["/ip4/0.0.0.0/tcp/4001"], HOST, ["/ip4/192.168.1.5/tcp/4001", "/ip4/10.0.0.2/tcp/4001"]),
        (["/ip4/0.0.0.0/tcp/4001"], ["127.0.0.1"], ["/ip4/127.0.0.1/tcp/4001"]),
        (["/ip4/0.0.0.0/tcp/4001"], [], []),
        (["/ip4/0.0.0.0/tcp/4001"], ["2001:db8::7"], []),
        (
            ["/ip4/127.0.0.1/tcp/1", "/ip4/0.0.0.0/tcp/2"],
            ["127.0.0.1", "10.1.1.1"],
            ["/ip4/127.0.0.1/tcp/1", "/ip4/10.1.1.1/tcp/2"],
        ),
        (["/ip6/::/tcp/1"], HOST, ["/ip6/2001:db8::7/tcp/1"]),
        (["/ip6/::/tcp/1"], ["::1", "fe80::1"], ["/ip6/::1/tcp/1"]),
        (
            ["/ip4/0.0.0.0/udp/9/quic-v1", "/ip4/10.0.0.2/udp/9/quic-v1"],
            ["10.0.0.2"],
            ["/ip4/10.0.0.2/udp/9/quic-v1"],
        ),
        ([f"/ip4/10.0.0.2/tcp/5/p2p/{PEER_A}", "/ip4/10.0.0.2/tcp/5"], [], ["/ip4/10.0.0.2/tcp/5"]),
        (["/dns4/box.local/tcp/5", "/ip4/nonsense/tcp/5"], [], ["/dns4/box.local/tcp/5"]),
        (["/ip4/::/tcp/5", "/ip6/10.0.0.2/tcp/5"], HOST, []),
    ],
)
def test_advertisable_addrs(listen: list[str], host_ips: list[str], expected: list[str]) -> None:
    assert advertisable_addrs(listen, host_ips=host_ips) == expected


def test_advertisable_addrs_reads_interfaces() -> None:
    out = advertisable_addrs(["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001"])
    assert out, "at least loopback is up"
    assert all("/0.0.0.0/" not in a and not a.startswith("/ip6/::/") for a in out)
    assert all(a.endswith("/tcp/4001") for a in out)


# --- TXT records ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"/ip4/10.0.0.2/tcp/4001/p2p/{PEER_A}", ("/ip4/10.0.0.2/tcp/4001", PEER_A)),
        (
            f"/ip4/10.0.0.2/udp/4001/quic-v1/p2p/{PEER_A}",
            ("/ip4/10.0.0.2/udp/4001/quic-v1", PEER_A),
        ),
        (f"/ip6/fd00::1/tcp/1/ws/p2p/{PEER_A}", ("/ip6/fd00::1/tcp/1/ws", PEER_A)),
        (f"/dns4/box.local/tcp/1/p2p/{PEER_A}", ("/dns4/box.local/tcp/1", PEER_A)),
        (f"/ip4/127.0.0.1/tcp/1/p2p/{PEER_A}", ("/ip4/127.0.0.1/tcp/1", PEER_A)),
        (f"/ip4/0.0.0.0/tcp/4001/p2p/{PEER_A}", None),
        (f"/ip4/224.0.0.251/tcp/1/p2p/{PEER_A}", None),
        (f"/ip4/255.255.255.255/tcp/1/p2p/{PEER_A}", None),
        (f"/ip6/::/tcp/4001/p2p/{PEER_A}", None),
        (f"/ip4/fd00::1/tcp/1/p2p/{PEER_A}", None),
        (f"/ip4/10.0.0.2/tcp/0/p2p/{PEER_A}", None),
        (f"/ip4/10.0.0.2/tcp/65536/p2p/{PEER_A}", None),
        (f"/ip4/10.0.0.2/tcp/x/p2p/{PEER_A}", None),
        (f"/ip4/10.0.0.2/sctp/1/p2p/{PEER_A}", None),
        (f"/ip4/10.0.0.2/tcp/1/bogus/p2p/{PEER_A}", None),
        (f"/ip4/1.2.3.4/tcp/1/p2p/{PEER_B}/p2p-circuit/p2p/{PEER_A}", None),
        ("/ip4/10.0.0.2/tcp/4001", None),
        ("/ip4/10.0.0.2/tcp/4001/p2p/0OIl", None),
        (f"ip4/10.0.0.2/tcp/1/p2p/{PEER_A}", None),
        (f"/ip4/10.0.0.2/tcp/1/p2p/{PEER_A}/", None),
        (f"/ip4/10.0.0.2/tcp/1/p2p/{PEER_A}é", None),
        ("/ip4/10.0.0.2/tcp/1/ws" * 40 + f"/p2p/{PEER_A}", None),
    ],
)
def test_parse_dnsaddr(value: str, expected: tuple[str, str] | None) -> None:
    assert parse_dnsaddr(value) == expected


def test_dnsaddr_strings() -> None:
    strings = dnsaddr_strings(
        PEER_A,
        [
            "/ip4/10.0.0.2/tcp/4001",
            f"/ip4/10.0.0.3/tcp/4001/p2p/{PEER_A}",
            "/ip4/10.0.0.2/tcp/4001",  # duplicate
            f"/ip4/10.0.0.4/tcp/4001/p2p/{PEER_B}",  # someone else's
            "/ip4/0.0.0.0/tcp/4001",  # undialable
            "/dns4/" + "a" * 240 + "/tcp/1",  # does not fit a TXT string
        ],
    )
    assert strings == [
        f"dnsaddr=/ip4/10.0.0.2/tcp/4001/p2p/{PEER_A}".encode(),
        f"dnsaddr=/ip4/10.0.0.3/tcp/4001/p2p/{PEER_A}".encode(),
    ]
    assert all(len(s) <= MAX_TXT_STRING for s in strings)


def test_dnsaddr_strings_cap_total_size() -> None:
    addrs = [f"/ip4/10.0.{i // 250}.{i % 250 + 1}/tcp/4001" for i in range(100)]
    strings = dnsaddr_strings(PEER_A, addrs)
    assert 0 < len(strings) < 100
    assert len(encode_txt(strings)) <= 1200


def test_txt_codec() -> None:
    strings = [b"dnsaddr=/a", b"", b"x" * 255]
    assert decode_txt(encode_txt(strings)) == strings
    assert decode_txt(b"\x03abc\x05ab") == [b"abc"]  # truncated tail dropped
    assert decode_txt(b"") == []


def test_peers_from_txt() -> None:
    peers = peers_from_txt(
        [
            f"dnsaddr=/ip4/10.0.0.2/tcp/1/p2p/{PEER_A}".encode(),
            f"DNSADDR=/ip4/10.0.0.2/udp/1/quic-v1/p2p/{PEER_A}".encode(),
            f"dnsaddr2=/ip4/10.0.0.3/tcp/1/p2p/{PEER_A}".encode(),  # py-libp2p numbering
            f"dnsaddr=/ip4/10.0.0.2/tcp/1/p2p/{PEER_A}".encode(),  # duplicate
            f"dnsaddr=/ip4/127.0.0.1/tcp/1/p2p/{PEER_B}".encode(),  # js lists loopback first
            f"dnsaddr=/ip4/10.0.0.9/tcp/1/p2p/{PEER_B}".encode(),
            f"dnsaddr=/ip4/0.0.0.0/tcp/1/p2p/{PEER_C}".encode(),  # unusable
            f"notdnsaddr=/ip4/10.0.0.8/tcp/1/p2p/{PEER_C}".encode(),
            b"dnsaddr",
            b"dnsaddr=\xff\xfe",
            f"id={PEER_C}".encode(),
        ]
    )
    assert peers == [
        DiscoveredPeer(
            PEER_A,
            ("/ip4/10.0.0.2/tcp/1", "/ip4/10.0.0.2/udp/1/quic-v1", "/ip4/10.0.0.3/tcp/1"),
        ),
        DiscoveredPeer(PEER_B, ("/ip4/10.0.0.9/tcp/1", "/ip4/127.0.0.1/tcp/1")),
    ]


# --- PeerTable -------------------------------------------------------------------------


def _peer(peer_id: str, *addrs: str) -> DiscoveredPeer:
    return DiscoveredPeer(peer_id, addrs)


def test_peer_table_reports_new_changed_and_due() -> None:
    table = PeerTable(PEER_A, rediscover_after=30.0)
    b1 = _peer(PEER_B, "/ip4/10.0.0.2/tcp/1")
    assert table.observe("b.x", [b1], 0.0).found == (b1,)
    assert table.observe("b.x", [b1], 10.0).found == ()  # duplicate
    b2 = _peer(PEER_B, "/ip4/10.0.0.2/tcp/2")
    assert table.observe("b.x", [b2], 11.0).found == (b2,)  # changed
    assert table.observe("b.x", [b2], 40.0).found == ()  # 29 s since last report
    assert table.observe("b.x", [b2], 41.0).found == (b2,)  # due again
    assert table.observe("a.x", [_peer(PEER_A, "/ip4/10.0.0.1/tcp/1")], 0.0).found == ()  # us


def test_peer_table_forgets_and_refinds() -> None:
    table = PeerTable(PEER_A, rediscover_after=None)
    b = _peer(PEER_B, "/ip4/10.0.0.2/tcp/1")
    table.observe("b1.x", [b], 0.0)
    table.observe("b2.x", [b], 1.0)  # same peer, restarted under a new instance name
    assert table.observe("b1.x", [], 2.0).lost == ()  # still named by b2
    assert table.observe("b2.x", [], 3.0).lost == (PEER_B,)
    assert len(table) == 0
    assert table.observe("b3.x", [b], 4.0).found == (b,)
    assert table.observe("b3.x", [b], 1e9).found == ()  # rediscovery disabled


def test_peer_table_bounds_instances() -> None:
    table = PeerTable(PEER_A, max_instances=2)
    table.observe("1.x", [_peer(PEER_B, "/ip4/10.0.0.2/tcp/1")], 0.0)
    table.observe("2.x", [_peer(PEER_C, "/ip4/10.0.0.3/tcp/1")], 0.0)
    assert table.observe("3.x", [_peer(PEER_JS, "/ip4/10.0.0.4/tcp/1")], 0.0).found == ()
    table.observe("1.x", [], 1.0)
    assert table.observe("3.x", [_peer(PEER_JS, "/ip4/10.0.0.4/tcp/1")], 1.0).found


# --- the receive channel ------------------------------------------------------------


async def test_mailbox_coalesces_and_keeps_order() -> None:
    box = _PeerMailbox(capacity=2)
    b1, b2 = _peer(PEER_B, "/ip4/10.0.0.2/tcp/1"), _peer(PEER_B, "/ip4/10.0.0.2/tcp/2")
    c = _peer(PEER_C, "/ip4/10.0.0.3/tcp/1")
    box.put(b1)
    box.put(c)
    box.put(b2)  # replaces b1 in place: no growth even at capacity
    box.put(_peer(PEER_JS, "/ip4/10.0.0.4/tcp/1"))  # full: a new peer waits for next round
    assert box.dropped == 1
    box.discard(PEER_C)
    box.put(c)
    box.finish()
    assert [p async for p in box] == [b2, c]
    with pytest.raises(trio.EndOfChannel):
        await box.receive()


async def test_mailbox_wakes_receiver_and_survives_cancel() -> None:
    box = _PeerMailbox()
    b = _peer(PEER_B, "/ip4/10.0.0.2/tcp/1")
    with trio.move_on_after(0.01):
        await box.receive()
    got: list[DiscoveredPeer] = []

    async def receiver() -> None:
        got.append(await box.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        box.put(b)
    assert got == [b]
    await box.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await box.receive()


# --- namespaces ------------------------------------------------------------------------


def _probe_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def _events(lines: list[str], kind: str) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == kind:
            out.append(event)
    return out


def _found_peers(lines: list[str]) -> dict[str, tuple[str, ...]]:
    """peer id -> latest reported addrs."""
    return {e["peer_id"]: tuple(e["addrs"]) for e in _events(lines, "peer")}


def _events_after(n: int, kind: str, expected: list[dict[str, Any]]) -> Callable[[list[str]], bool]:
    """True once the ``kind`` events after the first ``n`` are exactly ``expected``."""
    return lambda lines: _events(lines, kind)[n:] == expected


def _has_found(wanted: Mapping[str, tuple[str, ...]]) -> Callable[[list[str]], bool]:
    def check(lines: list[str]) -> bool:
        found = _found_peers(lines)
        return all(found.get(peer_id) == addrs for peer_id, addrs in wanted.items())

    return check


class _Probe:
    """A process in a namespace speaking JSON lines (``mdns_probe.py`` unless started
    with :meth:`start`)."""

    def __init__(self, ns: Netns, args: list[str], label: str) -> None:
        self._launch(ns, [sys.executable, PROBE, *args], label)

    @classmethod
    def start(cls, ns: Netns, argv: list[str], label: str) -> _Probe:
        probe = cls.__new__(cls)
        probe._launch(ns, argv, label)
        return probe

    def _launch(self, ns: Netns, argv: list[str], label: str) -> None:
        self.proc = ns.popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_probe_env(),
        )
        assert self.proc.stdout is not None
        self.out = LineReader(self.proc.stdout, plain_line, label=label)

    def wait(self, predicate: Callable[[list[str]], Any], *, timeout: float, what: str) -> Any:
        return self.out.wait_until(predicate, timeout, what)

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self, timeout: float = 10.0) -> tuple[int, str, list[dict[str, Any]]]:
        """Ask to stop (stdin), wait; returns (exit code, stderr, stopped events)."""
        if self.proc.poll() is None:
            self.command("stop")
        code = self.proc.wait(timeout=timeout)
        self.out.join()
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read(), _events(self.out.snapshot(), "stopped")


def _discover(ns: Netns, peer_id: str, label: str, *listen: str) -> _Probe:
    args = ["discover", "--peer-id", peer_id, "--interval", "1"]
    for addr in listen:
        args += ["--listen", addr]
    return _Probe(ns, args, label)


def _assert_clean_exit(probe: _Probe) -> None:
    """Exit 0, nothing on stderr, no thread left, trio loop never blocked (py-libp2p's
    built-in mDNS blocks it ~1.6 s while zeroconf registers)."""
    code, stderr, stopped = probe.stop()
    assert code == 0, stderr
    assert stderr == "", stderr
    assert len(stopped) == 1, probe.out.snapshot()
    assert stopped[0]["threads"] == [], stopped
    assert stopped[0]["max_lag_ms"] < 1_200, stopped


@needs_netns
@pytest.mark.netns
def test_lan_party_builds_runs_and_cleans_up() -> None:
    with LanParty(2) as lan:
        names = [ns.name for ns in lan.namespaces]
        assert all(n.startswith(PREFIX) for n in names)
        assert set(names) <= set(list_namespaces())
        h0, h1 = lan.hosts
        assert h0.exec_prefix == ["ip", "netns", "exec", h0.name]
        assert h0.addr is not None and h1.addr is not None
        assert h0.addr in h0.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        sleeper = h0.popen([sys.executable, "-c", "import time; time.sleep(600)"])
    assert sleeper.poll() is not None, "processes started in the party are killed on exit"
    assert not set(names) & set(list_namespaces())


_UDP_SINK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
print("ready", flush=True)
while True:
    print(s.recv(100).decode(), flush=True)
"""


def _send_udp(ns: Netns, dest: str, payload: str) -> None:
    ns.run(
        [
            sys.executable,
            "-c",
            f"import socket; socket.socket(2, 2).sendto({payload.encode()!r}, ({dest!r}, 9999))",
        ]
    )


def _drop_counter(ns: Netns) -> int:
    out = iptables(ns, "-L", "INPUT", "-v", "-x", "-n").stdout
    rows = [line.split() for line in out.splitlines() if "DROP" in line]
    return int(rows[0][0]) if rows else 0


@pytest.mark.skipif(
    netns_skip_reason("iptables") is not None, reason=netns_skip_reason("iptables") or ""
)
@pytest.mark.netns
def test_iptables_partitions_a_host() -> None:
    with LanParty(2) as lan:
        h0, h1 = lan.hosts
        assert h0.addr is not None and h1.addr is not None
        sink = h1.popen([sys.executable, "-c", _UDP_SINK], stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None
        lines = LineReader(sink.stdout, plain_line, label="sink")
        lines.wait_until(lambda ls: "ready" in ls, 10, "sink ready")
        _send_udp(h0, h1.addr, "before")
        lines.wait_until(lambda ls: "before" in ls, 10, "datagram across bridge")
        iptables(h1, "-A", "INPUT", "-s", h0.addr, "-j", "DROP")

        target = h1.addr

        def dropped() -> bool:
            _send_udp(h0, target, "dropped")
            return _drop_counter(h1) > 0

        wait_until(dropped, 10, "iptables to count a dropped datagram")
        iptables(h1, "-D", "INPUT", "-s", h0.addr, "-j", "DROP")
        _send_udp(h0, h1.addr, "after")
        lines.wait_until(lambda ls: "after" in ls, 10, "datagram after heal")
        assert "dropped" not in lines.snapshot()


@needs_netns
@pytest.mark.netns
def test_three_nodes_discover_each_other() -> None:
    ids = [PEER_A, PEER_B, PEER_C]
    with LanParty(3) as lan:
        probes = [
            _discover(ns, pid, f"node{i}", "/ip4/0.0.0.0/tcp/4001")
            for i, (ns, pid) in enumerate(zip(lan.hosts, ids, strict=True))
        ]
        expected = {
            pid: (f"/ip4/{ns.addr}/tcp/4001",) for ns, pid in zip(lan.hosts, ids, strict=True)
        }
        for probe, own in zip(probes, ids, strict=True):
            others = {pid: addrs for pid, addrs in expected.items() if pid != own}
            probe.wait(_has_found(others), timeout=10, what="the two other nodes")
        ready = _events(probes[0].out.snapshot(), "ready")[0]
        assert ready["addrs"] == [f"/ip4/{lan.hosts[0].addr}/tcp/4001"]  # 0.0.0.0 expanded
        for probe, own in zip(probes, ids, strict=True):
            assert own not in _found_peers(probe.out.snapshot())  # never ourselves

        # a changed address reaches the others at once (zeroconf re-announces)
        probes[0].command("update /ip4/0.0.0.0/tcp/4999")
        new = (f"/ip4/{lan.hosts[0].addr}/tcp/4999",)
        for probe in probes[1:]:
            probe.wait(
                lambda ls: _found_peers(ls).get(PEER_A) == new, timeout=5, what="updated addrs"
            )
        # leaving sends goodbyes: the others forget node0, so when it comes back with the
        # same peer id and addresses they report it again (not after rediscover_after)
        _assert_clean_exit(probes[0])
        before = [len(_events(p.out.snapshot(), "peer")) for p in probes[1:]]
        probes[0] = _discover(lan.hosts[0], PEER_A, "node0-again", "/ip4/0.0.0.0/tcp/4999")
        again = [{"event": "peer", "peer_id": PEER_A, "addrs": list(new)}]
        for probe, n in zip(probes[1:], before, strict=True):
            probe.wait(
                _events_after(n, "peer", again),
                timeout=5,
                what="node0 reported again after its restart",
            )
        for probe in probes:
            _assert_clean_exit(probe)


@needs_netns
@pytest.mark.netns
@pytest.mark.parametrize("cancel_after", [0.0, 0.005, 0.05, 0.3])
def test_cancelled_at_any_point_shuts_down_cleanly(cancel_after: float) -> None:
    with LanParty(1) as lan:
        args = ["discover", "--peer-id", PEER_A, "--listen", "/ip4/0.0.0.0/tcp/4001"]
        probe = _Probe(lan.hosts[0], [*args, "--cancel-after", str(cancel_after)], "cancelled")
        probe.wait(lambda ls: _events(ls, "stopped"), timeout=10, what="the probe to stop")
        _assert_clean_exit(probe)


@needs_netns
@pytest.mark.netns
def test_js_style_peers_and_us_discover_each_other() -> None:
    with LanParty(2) as lan:
        js_ns, py_ns = lan.hosts
        js_addrs = [f"/ip4/{js_ns.addr}/tcp/4002", f"/ip4/{js_ns.addr}/udp/4002/quic-v1"]
        js_args = ["jsmimic", "--peer-id", PEER_JS, "--peer-name", "j" * 63]
        js_args += ["--iface-addr", str(js_ns.addr), "--interval", "1"]
        for addr in js_addrs:
            js_args += ["--addr", addr]
        js = _Probe(js_ns, js_args, "jsmimic")
        js.wait(lambda ls: _events(ls, "ready"), timeout=10, what="jsmimic ready")
        ours = _discover(py_ns, PEER_A, "ours", "/ip4/0.0.0.0/tcp/4001")

        # we understand a PTR + one-TXT-per-address response with no SRV/A
        ours.wait(
            lambda ls: _found_peers(ls).get(PEER_JS) == tuple(js_addrs),
            timeout=10,
            what="the js-style peer",
        )
        # js answers our query: its questions[0].name check passes
        js.wait(
            lambda ls: any(e["src"] == py_ns.addr for e in _events(ls, "answered")),
            timeout=10,
            what="jsmimic answering our query",
        )

        # js accepts both our query reply (TXT in additionals) and our announcement
        # (TXT in answers), with the address and peer id we advertise
        def accepted_us_both_ways(lines: list[str]) -> bool:
            where = {
                tuple(e["txt_in"])
                for e in _events(lines, "peer")
                if e["peer_id"] == PEER_A
                and e["addrs"] == [f"/ip4/{py_ns.addr}/tcp/4001"]
                and e["ptr_ttl"] > 0
            }
            return where >= {("additionals",), ("answers",)}

        js.wait(
            accepted_us_both_ways,
            timeout=10,
            what="jsmimic accepting our reply and our announcement",
        )
        assert not _events(js.out.snapshot(), "undecodable")
        _assert_clean_exit(ours)
        js.proc.terminate()


_JS_DIR = REPO / "tests" / "interop" / "js"


@pytest.mark.netns
@pytest.mark.interop
def test_real_js_libp2p_and_us_discover_each_other() -> None:
    if _netns_reason:
        pytest.skip(_netns_reason)
    if ensure_js_deps() is None:  # runs `npm ci` once on a fresh clone
        pytest.skip(js_skip_reason())
    with LanParty(2) as lan:
        js_ns, py_ns = lan.hosts
        js = _Probe.start(
            js_ns,
            [
                *("node", str(_JS_DIR / "peer.mjs"), "--listen", "/ip4/0.0.0.0/tcp/4002"),
                *("--no-autodial", "--mdns-interval", "1000"),
            ],
            "js-libp2p",
        )
        js_ready = js.wait(lambda ls: _events(ls, "ready"), timeout=20, what="js ready")[0]
        js_id = js_ready["peer_id"]
        ours = _discover(py_ns, PEER_A, "ours", "/ip4/0.0.0.0/tcp/4001")
        ours.wait(
            _has_found({js_id: (f"/ip4/{js_ns.addr}/tcp/4002", "/ip4/127.0.0.1/tcp/4002")}),
            timeout=10,
            what="js-libp2p",
        )
        js.wait(
            lambda ls: any(
                e["peer_id"] == PEER_A and e["addrs"] == [f"/ip4/{py_ns.addr}/tcp/4001"]
                for e in _events(ls, "peer_discovered")
            ),
            timeout=10,
            what="js-libp2p discovering us",
        )
        _assert_clean_exit(ours)
        js.command(json.dumps({"cmd": "stop"}))
        js.proc.wait(timeout=10)
