"""A private LAN in network namespaces, for tests that need several hosts.

:class:`LanParty` makes N host namespaces and one hub namespace holding a Linux bridge,
all named ``rvt-<random>-<pid>-…``. The bridge is created *inside* the hub namespace
(moving a bridge into a namespace fails on this kernel). Each host gets ``eth0``, a veth
whose other end is a bridge port, an address in a test-only /24 (``10.213.<n>.<i+1>``),
a default route on ``eth0`` (no gateway: unknown destinations stay on the bridge) and
``lo`` up. Multicast (mDNS) crosses the bridge; nothing leaves the namespaces.

Leaving the ``with`` block, even after a failure, kills the processes started through
:meth:`Netns.popen` and deletes the namespaces (which removes the veths and the bridge).
Namespaces left by a harness whose process died (pid in the name) are reaped on the next
start. Every wait is bounded and polls a condition; nothing sleeps a fixed time.

Typical use::

    if reason := netns_skip_reason():
        pytest.skip(reason)
    with LanParty(3) as lan:
        proc = lan.hosts[0].popen([sys.executable, "probe.py"], stdout=subprocess.PIPE)
        lan.hosts[1].run(["ping", "-c1", "-W1", lan.hosts[0].addr])
        iptables(lan.hosts[1], "-A", "INPUT", "-s", lan.hosts[0].addr, "-j", "DROP")
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any

from tests.support.waiting import wait_until

PREFIX = "rvt-"
SUBNET_FIRST_OCTETS = "10.213"
"""Test-only addresses; they exist only inside namespaces the harness made."""

_CMD_TIMEOUT_S = 10.0
_READY_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 3.0
_POLL_S = 0.02

_live: set[str] = set()  # namespaces made by this process and not yet deleted
_live_lock = threading.Lock()


class NetnsError(RuntimeError):
    """A namespace command failed; the message carries the command and its stderr."""


def is_root() -> bool:
    return os.geteuid() == 0


def netns_skip_reason(*tools: str) -> str | None:
    """Why namespace tests cannot run here (``None`` if they can).

    ``tools`` names extra programs the test needs inside the namespaces.
    """
    if not hasattr(os, "geteuid") or not is_root():
        return "needs root to create network namespaces"
    missing = [t for t in ("ip", *tools) if shutil.which(t) is None]
    if missing:
        return f"needs {', '.join(missing)} (not installed)"
    return None


def _run(argv: Sequence[str], *, timeout: float = _CMD_TIMEOUT_S) -> str:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise NetnsError(f"{' '.join(argv)}: timed out after {timeout:g} s") from exc
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def list_namespaces() -> list[str]:
    out = _run(["ip", "-j", "netns", "list"])
    return [entry["name"] for entry in json.loads(out or "[]")]


def _delete_namespace(name: str) -> None:
    with contextlib.suppress(NetnsError):
        _run(["ip", "netns", "delete", name])
    with _live_lock:
        _live.discard(name)


def reap_stale_namespaces() -> list[str]:
    """Delete ``rvt-`` namespaces whose creating process is gone; return their names."""
    reaped = []
    for name in list_namespaces():
        parts = name.split("-")
        if not name.startswith(PREFIX) or len(parts) < 4 or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        if pid == os.getpid() or _pid_alive(pid):
            continue
        _delete_namespace(name)
        reaped.append(name)
    return reaped


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@atexit.register
def _delete_leftovers() -> None:
    # last resort if a test process exits without leaving its ``with`` block
    with _live_lock:
        names = list(_live)
    for name in names:
        _delete_namespace(name)


class Netns:
    """One network namespace; processes started with :meth:`popen` are killed on cleanup."""

    def __init__(self, name: str, *, addr: str | None = None, iface: str | None = None) -> None:
        self.name = name
        self.addr = addr
        """This host's IPv4 address on the LAN (``None`` for the hub)."""
        self.iface = iface
        self._procs: list[subprocess.Popen[Any]] = []

    def __repr__(self) -> str:
        return f"Netns({self.name!r}, addr={self.addr!r})"

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def ip(self, *args: str) -> str:
        """``ip -n <name> ARGS``; raises NetnsError on failure."""
        return _run(["ip", "-n", self.name, *args])

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = _CMD_TIMEOUT_S, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace to completion (text mode, output captured)."""
        kw.setdefault("capture_output", True)
        done = subprocess.run(
            [*self.exec_prefix, *argv], text=True, timeout=timeout, check=False, **kw
        )
        if check and done.returncode != 0:
            raise NetnsError(
                f"[{self.name}] {' '.join(argv)}: exit {done.returncode}: "
                f"{(done.stderr or '').strip()}"
            )
        return done

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace in its own process group; tracked for cleanup."""
        kw.setdefault("start_new_session", True)
        proc: subprocess.Popen[Any] = subprocess.Popen([*self.exec_prefix, *argv], **kw)
        self._procs.append(proc)
        return proc

    def stop_processes(self, timeout: float = _STOP_TIMEOUT_S) -> None:
        """SIGTERM then SIGKILL the process groups we started; bounded by ``timeout`` each."""
        procs, self._procs = self._procs, []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            running = [p for p in procs if p.poll() is None]
            for proc in running:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
            deadline = time.monotonic() + timeout
            for proc in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in procs:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def iptables(ns: Netns, *args: str) -> subprocess.CompletedProcess[str]:
    """``iptables -w 5 ARGS`` inside ``ns`` (e.g. ``"-A", "INPUT", "-s", ip, "-j", "DROP"``)."""
    return ns.run(["iptables", "-w", "5", *args])


class LanParty:
    """``n`` hosts on one bridge, in namespaces made for this party alone."""

    def __init__(self, n: int, *, subnet: int | None = None) -> None:
        if not 1 <= n <= 200:
            raise ValueError("a LanParty has 1 to 200 hosts")
        self.n = n
        self.subnet = subnet if subnet is not None else 1 + secrets.randbelow(254)
        self.prefix = f"{PREFIX}{secrets.token_hex(3)}-{os.getpid()}-"
        self.hub = Netns(self.prefix + "hub")
        self.hosts: list[Netns] = []
        self.bridge = "br0"

    def __enter__(self) -> LanParty:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def namespaces(self) -> list[Netns]:
        return [*self.hosts, self.hub]

    def _add_namespace(self, ns: Netns) -> None:
        with _live_lock:
            _live.add(ns.name)
        _run(["ip", "netns", "add", ns.name])

    def _build(self) -> None:
        reap_stale_namespaces()
        self._add_namespace(self.hub)
        self.hub.ip("link", "set", "lo", "up")
        # no IGMP snooping: nobody runs a querier here, flood all multicast to all ports
        self.hub.ip("link", "add", self.bridge, "type", "bridge", "mcast_snooping", "0")
        self.hub.ip("link", "set", self.bridge, "up")
        for i in range(self.n):
            host = Netns(
                f"{self.prefix}h{i}",
                addr=f"{SUBNET_FIRST_OCTETS}.{self.subnet}.{i + 1}",
                iface="eth0",
            )
            self._add_namespace(host)
            self.hosts.append(host)
            port = f"p{i}"
            host.ip(
                "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", self.hub.name
            )
            self.hub.ip("link", "set", port, "master", self.bridge)
            self.hub.ip("link", "set", port, "up")
            host.ip("addr", "add", f"{host.addr}/24", "dev", "eth0")
            host.ip("link", "set", "lo", "up")
            host.ip("link", "set", "eth0", "up")
            # like a real LAN host: programs that send multicast without choosing an
            # interface (js's multicast-dns) need a route; nothing here leaves the bridge
            host.ip("route", "add", "default", "dev", "eth0")
        wait_until(
            self._all_ready, _READY_TIMEOUT_S, "links up and bridge forwarding", poll=_POLL_S
        )

    def _all_ready(self) -> bool:
        for host in self.hosts:
            link = json.loads(host.ip("-j", "link", "show", "dev", "eth0"))[0]
            if link.get("operstate") != "UP":
                return False
        ports = json.loads(self.hub.ip("-j", "-d", "link", "show", "master", self.bridge))
        states = [p.get("linkinfo", {}).get("info_slave_data", {}).get("state") for p in ports]
        return len(states) == self.n and all(s == "forwarding" for s in states)

    def close(self) -> None:
        """Kill our processes, delete our namespaces. Safe to call twice."""
        for ns in self.namespaces:
            ns.stop_processes()
        for ns in self.namespaces:
            with _live_lock:
                made = ns.name in _live
            if made:
                _delete_namespace(ns.name)


__all__ = [
    "PREFIX",
    "LanParty",
    "Netns",
    "NetnsError",
    "iptables",
    "is_root",
    "list_namespaces",
    "netns_skip_reason",
    "reap_stale_namespaces",
]
