"""Addresses: the listen addresses bind, bootstrap peers accept a TCP connection, and the
HTTP faces' ports are free. Every attempt is bounded and touches only the addresses the
character (or the command line) names."""

from __future__ import annotations

import errno
import os
import socket
from typing import Final

import trio

from node import _libp2p
from node.cli.doctor.report import Check, fail, ok, skip
from node.cli.doctor.target import Target
from node.cli.startup import parse_http_addr
from node.clock import monotonic

DIAL_TIMEOUT_S: Final = 3.0
IP_PROTOCOLS: Final = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}
NAME_PROTOCOLS: Final = ("dns", "dns4", "dns6")


def tcp_endpoint(addr: str) -> tuple[str, str, int] | None:
    """``/ip4/1.2.3.4/tcp/5[/...]`` → (protocol, host, port); None if not TCP over an IP
    or a DNS name (a relay circuit, QUIC...)."""
    parts = addr.split("/")
    if len(parts) < 5 or parts[0] or parts[3] != "tcp" or not parts[4].isdigit():
        return None
    if parts[1] not in IP_PROTOCOLS and parts[1] not in NAME_PROTOCOLS:
        return None
    port = int(parts[4])
    return (parts[1], parts[2], port) if port <= 65535 else None


def bind_problem(family: socket.AddressFamily, host: str, port: int) -> OSError | None:
    """Whether a TCP listener could take ``host:port`` now (bound, then let go at once;
    SO_REUSEADDR as servers set it, so a port in TIME_WAIT counts as free)."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(1)
    except OSError as exc:
        return exc
    return None


def listen_checks(target: Target) -> list[Check]:
    if target.config is None:
        return [skip("listen", "no character file (pass --character)")]
    if target.running is not None:
        addrs = ", ".join(target.running.get("addrs") or []) or "no address reported"
        return [skip("listen", f"the node is running and holds its ports ({addrs})")]
    checks = []
    for i, addr in enumerate(target.config.network.listen):
        name = f"listen {addr}"
        endpoint = tcp_endpoint(addr)
        if endpoint is None or endpoint[0] not in IP_PROTOCOLS:
            checks.append(skip(name, "not a TCP address over IPv4/IPv6: not tried"))
            continue
        protocol, host, port = endpoint
        problem = bind_problem(IP_PROTOCOLS[protocol], host, port)
        if problem is None:
            checks.append(ok(name, f"can listen on {host} port {port or 'any'}"))
        elif problem.errno == errno.EADDRINUSE:
            fix = f"stop what holds port {port} (ss -ltnp 'sport = :{port}') or change it"
            checks.append(fail(name, f"port {port} is taken", f"{fix} in network.listen[{i}]"))
        else:
            why = problem.strerror or str(problem)
            fix = f"use 0.0.0.0 or an address of this machine in network.listen[{i}]"
            checks.append(fail(name, f"cannot listen on {host}: {why}", fix))
    return checks


async def bootstrap_checks(target: Target) -> list[Check]:
    """A TCP connection to each bootstrap peer, side by side (no libp2p handshake: it
    shows the address is reachable, not whose node answers)."""
    if target.config is None:
        return [skip("bootstrap", "no character file (pass --character)")]
    addrs = target.config.network.bootstrap
    if not addrs:
        return [skip("bootstrap", "no bootstrap peers configured (mDNS and the directory only)")]
    results: list[Check] = [skip(f"bootstrap {a}", "not tried") for a in addrs]

    async def dial(i: int, addr: str) -> None:
        results[i] = await _dial(i, addr)

    async with trio.open_nursery() as nursery:
        for i, addr in enumerate(addrs):
            nursery.start_soon(dial, i, addr)
    return results


async def _dial(index: int, addr: str) -> Check:
    name = f"bootstrap {addr}"
    field = f"network.bootstrap[{index}]"
    try:
        transport, _peer = _libp2p.split_peer_addr(addr)
    except _libp2p.DialError as exc:
        return fail(name, str(exc), f"correct {field} (…/tcp/PORT/p2p/12D3KooW…)")
    endpoint = tcp_endpoint(transport)
    if endpoint is None:
        return skip(name, "not a TCP address: not tried")
    _protocol, host, port = endpoint
    started = monotonic()
    fix = f"check the peer runs and listens at {host}:{port} (its `ready` line), or {field}"
    try:
        with trio.fail_after(DIAL_TIMEOUT_S):
            stream = await trio.open_tcp_stream(host, port)
            await stream.aclose()
    except trio.TooSlowError:
        return fail(name, f"no answer from {host}:{port} in {DIAL_TIMEOUT_S:g} s", fix)
    except OSError as exc:
        return fail(name, f"cannot connect to {host}:{port} ({_why(exc)})", fix)
    took = round((monotonic() - started) * 1000)
    return ok(name, f"{host}:{port} accepts TCP connections ({took} ms)")


def _why(exc: OSError) -> str:
    """The first reason among the attempts trio made (it wraps them in its own error)."""
    cause: BaseException = exc
    while isinstance(cause.__cause__, BaseException):
        cause = cause.__cause__
        while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
            cause = cause.exceptions[0]
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno).lower()
    return str(exc)


def port_checks(target: Target) -> list[Check]:
    """The firehose's, the bridge's and (if asked) the dashboard's port."""
    checks = []
    for what, addr in target.http:
        name = f"{what} port {addr}"
        host, port = parse_http_addr(addr)
        if what == "dashboard" and target.running is not None:
            checks.append(skip(name, "the node is running (its dashboard may hold the port)"))
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        problem = bind_problem(family, host, port)
        flag = f"`roomverse {what} --http HOST:PORT`" if what != "dashboard" else "--dashboard"
        if problem is None:
            checks.append(ok(name, "free"))
        elif problem.errno == errno.EADDRINUSE:
            fix = f"stop what holds it (ss -ltnp 'sport = :{port}'), or serve elsewhere: {flag}"
            checks.append(fail(name, "taken by another program", fix))
        else:
            why = problem.strerror or str(problem)
            checks.append(fail(name, f"cannot bind: {why}", f"choose another address: {flag}"))
    return checks


__all__ = ["bind_problem", "bootstrap_checks", "listen_checks", "port_checks", "tcp_endpoint"]
