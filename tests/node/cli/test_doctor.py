"""`roomverse doctor` as an owner runs it: a healthy character passes; each thing that
can stop a character fails its own check, with the fix, and the exit code says so."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from keys import Identity, save_key
from keys.cli import KEY_FILE_NAME
from node.process import DB_FILE
from node.storage.store import Store
from registry_crdt import Clock, Directory, Status, make_entry
from registry_crdt.testing import identities, sample_card
from tests.support.netns import LanParty, iptables, netns_skip_reason
from tests.support.procs import (
    NO_ENGINE,
    REPO,
    FakeEngineProcess,
    NodeProcess,
    roomverse_argv,
)

ENGINE_KEY = "sk-doctor-test-key-7f3a9c"
PASSPHRASE = "doctor passphrase 41d2"
KEY_ENV = "DOCTOR_TEST_ENGINE_KEY"
EVERY_CHECK = (
    "python",
    "packages",
    "key file",
    "passphrase",
    "data dir",
    "database",
    "clock skew",
    "engine fake",
    "listen /ip4/127.0.0.1/tcp/0",
    "mdns",
    "bootstrap",
    "firehose port 127.0.0.1:0",
    "bridge port 127.0.0.1:0",
    "sandbox",
)


@dataclass
class Doctored:
    code: int
    report: dict[str, Any]
    output: str
    """stdout and stderr together (what the owner sees)."""

    def check(self, prefix: str) -> dict[str, Any]:
        found = [c for c in self.report["checks"] if c["name"].startswith(prefix)]
        assert len(found) == 1, f"{prefix!r} in {[c['name'] for c in self.report['checks']]}"
        return dict(found[0])

    def failed(self) -> list[str]:
        return [c["name"] for c in self.report["checks"] if c["status"] == "fail"]


def doctor(*args: str, prefix: tuple[str, ...] = (), json_output: bool = True) -> Doctored:
    env = {**os.environ, "PYTHONPATH": str(REPO), KEY_ENV: ENGINE_KEY}
    argv = [*prefix, *roomverse_argv("doctor", *args, *(["--json"] if json_output else []))]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    report = json.loads(done.stdout) if json_output else {}
    return Doctored(done.returncode, report, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def engine() -> Iterator[FakeEngineProcess]:
    fake = FakeEngineProcess()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real TCP listener on loopback: a bootstrap peer that is there, or a port taken."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock


class Character:
    """A character that is fine in every way, set up on disk; a test breaks one thing."""

    def __init__(self, root: Path, engine: FakeEngineProcess, peer_port: int) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir(mode=0o700)
        save_key(self.data_dir / KEY_FILE_NAME, Identity.generate(), PASSPHRASE)
        Store(self.data_dir / DB_FILE).close()
        self.passphrase_file = root / "passphrase"
        self.passphrase_file.write_text(PASSPHRASE + "\n")
        peer = Identity.generate().peer_id_str
        self.config: dict[str, Any] = {
            "name": "Fake",
            "persona": {"personality": "A test character."},
            "engine": engine.engine(name="fake", api_key_env=KEY_ENV),
            "autonomy": {"enabled": False},
            "data_dir": str(self.data_dir),
            "network": {
                "listen": ["/ip4/127.0.0.1/tcp/0"],
                "bootstrap": [f"/ip4/127.0.0.1/tcp/{peer_port}/p2p/{peer}"],
                "mdns": False,
            },
        }

    @property
    def file(self) -> Path:
        path = self.root / "fake.json"
        path.write_text(json.dumps(self.config))
        return path

    def args(self, *more: str) -> tuple[str, ...]:
        return (
            "--character",
            str(self.file),
            "--passphrase-file",
            str(self.passphrase_file),
            "--firehose-http",
            "127.0.0.1:0",
            "--bridge-http",
            "127.0.0.1:0",
            *more,
        )


@pytest.fixture
def character(tmp_path: Path, engine: FakeEngineProcess, listener: socket.socket) -> Character:
    return Character(tmp_path, engine, listener.getsockname()[1])


def test_a_healthy_character_passes_and_every_check_is_listed(character: Character) -> None:
    seen = doctor(*character.args())
    assert seen.code == 0, seen.output
    names = [c["name"] for c in seen.report["checks"]]
    for name in EVERY_CHECK:
        assert any(n.startswith(name) for n in names), f"{name!r} missing from {names}"
    assert seen.report["ok"] is True and seen.report["node_running"] is False
    statuses = {c["name"]: c["status"] for c in seen.report["checks"]}
    assert all(status in ("ok", "skip") for status in statuses.values()), statuses
    engine = seen.check("engine fake")
    assert engine["status"] == "ok" and " ms" in engine["detail"], engine
    assert "key: env" in engine["detail"]
    assert seen.check("passphrase")["detail"].startswith("encrypted; the passphrase given opens")
    assert seen.check("database")["status"] == "ok"
    assert seen.check("bootstrap")["status"] == "ok"
    assert seen.check("mdns")["status"] == "skip"  # off in the file: no multicast from tests
    assert ENGINE_KEY not in seen.output and PASSPHRASE not in seen.output


def test_human_output_is_one_line_per_check_with_no_secret(character: Character) -> None:
    seen = doctor(*character.args(), json_output=False)
    assert seen.code == 0, seen.output
    lines = seen.output.strip().splitlines()
    assert lines[-1].startswith(f"{len(EVERY_CHECK)} checks: all needed checks pass")
    assert all(line[:2] in ("✓ ", "✗ ", "- ") for line in lines[:-1]), lines
    assert "Traceback" not in seen.output
    assert ENGINE_KEY not in seen.output and PASSPHRASE not in seen.output


def _unreachable_engine(c: Character, _taken: int) -> None:
    c.config["engine"] = {**NO_ENGINE, "name": "fake", "model": "m", "api_key_env": KEY_ENV}


def _key_readable_by_others(c: Character, _taken: int) -> None:
    (c.data_dir / KEY_FILE_NAME).chmod(0o644)


def _corrupted_database(c: Character, _taken: int) -> None:
    path = c.data_dir / DB_FILE
    data = bytearray(path.read_bytes())
    page = 4096
    data[page : 2 * page] = b"\xa5" * page  # a b-tree page of the schema's tables
    path.write_bytes(bytes(data))


def _nobody_at_bootstrap(c: Character, _taken: int) -> None:
    with socket.socket() as sock:  # a port that was just free, now closed again
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    peer = Identity.generate().peer_id_str
    c.config["network"]["bootstrap"] = [f"/ip4/127.0.0.1/tcp/{free}/p2p/{peer}"]


def _listen_port_taken(c: Character, taken: int) -> None:
    c.config["network"]["listen"] = [f"/ip4/127.0.0.1/tcp/{taken}"]


@pytest.mark.parametrize(
    ("breakage", "extra", "failing", "fix"),
    [
        (_unreachable_engine, (), "engine fake", "start the engine server"),
        (_key_readable_by_others, (), "key file", "chmod 600"),
        (_corrupted_database, (), "database", "move"),
        (_nobody_at_bootstrap, (), "bootstrap", "check the peer runs"),
        (_listen_port_taken, (), "listen", "stop what holds port"),
        (None, ("--bridge-http", "127.0.0.1:{taken}"), "bridge port", "stop what holds it"),
    ],
    ids=["engine", "key-mode", "database", "bootstrap", "listen-port", "bridge-port"],
)
def test_each_problem_fails_its_check_with_the_fix(
    character: Character,
    listener: socket.socket,
    breakage: Callable[[Character, int], None] | None,
    extra: tuple[str, ...],
    failing: str,
    fix: str,
) -> None:
    taken = listener.getsockname()[1]
    if breakage is not None:
        breakage(character, taken)
    seen = doctor(*character.args(*(arg.format(taken=taken) for arg in extra)))
    assert seen.code == 1, seen.output
    assert [name for name in seen.failed() if name.startswith(failing)] == seen.failed()
    assert fix in seen.check(failing)["fix"], seen.check(failing)
    assert ENGINE_KEY not in seen.output and PASSPHRASE not in seen.output
    human = doctor(*character.args(*(arg.format(taken=taken) for arg in extra)), json_output=False)
    assert human.code == 1
    line = next(line for line in human.output.splitlines() if line.startswith(f"✗ {failing}"))
    assert "→ fix: " in line and "Traceback" not in human.output


def test_a_running_node_is_read_without_being_disturbed(
    character: Character, tmp_path: Path
) -> None:
    """With the node up, the database is checked read-only, its ports are its own, and
    the clock reading is the node's; the node goes on running."""
    node = NodeProcess(
        character.file,
        character.data_dir,
        extra=["--passphrase-file", str(character.passphrase_file)],
    )
    try:
        node.wait_ready()
        seen = doctor(*character.args())
        assert seen.code == 0, seen.output
        assert seen.report["node_running"] is True
        assert "read-only" in seen.check("database")["detail"]
        assert seen.check("listen")["status"] == "skip"
        assert node.status()["peer_id"] == node.peer_id  # still answering
    finally:
        assert node.stop() == 0


def test_only_a_data_dir_skips_what_needs_the_character(character: Character) -> None:
    seen = doctor(
        "--data-dir",
        str(character.data_dir),
        "--firehose-http",
        "127.0.0.1:0",
        "--bridge-http",
        "127.0.0.1:0",
    )
    assert seen.code == 0, seen.output
    assert seen.check("engines")["status"] == "skip"
    assert seen.check("database")["status"] == "ok"
    assert seen.check("passphrase")["status"] == "skip"  # encrypted, no passphrase given


def test_clock_skew_from_the_remembered_directory(character: Character) -> None:
    """Peers that were online at the last save, with clocks 90 s behind ours: our clock
    is the one that is off."""
    saved_ms = 1_700_000_000_000
    directory = Directory()
    for peer in identities(3, seed=7):
        card = sample_card(peer.peer_id_str)
        clock = Clock(saved_ms - 90_000)
        entry = make_entry(peer, card, [], Status.ONLINE, clock, 120_000, saved_ms)
        directory.apply(entry, saved_ms)

    async def save() -> None:
        store = Store(character.data_dir / DB_FILE)
        try:
            await store.save_directory(directory.snapshot(), saved_ms)
        finally:
            store.close()

    trio.run(save)
    seen = doctor(*character.args())
    skew = seen.check("clock skew")
    assert skew["status"] == "fail" and "90 s ahead" in skew["detail"], skew
    assert "network time" in skew["fix"]
    assert seen.code == 1


@pytest.mark.skipif(
    netns_skip_reason("iptables") is not None, reason=str(netns_skip_reason("iptables"))
)
def test_mdns_probe_on_a_lan_made_for_the_test(character: Character) -> None:
    """In a namespace of its own the probe goes out on the LAN interface and comes back;
    with multicast dropped by the firewall, the check fails and says how to fix it."""
    character.config["network"]["mdns"] = True
    character.config["network"]["bootstrap"] = []
    with LanParty(1) as lan:
        host = lan.hosts[0]
        seen = doctor(*character.args(), prefix=tuple(host.exec_prefix))
        assert seen.check("mdns")["status"] == "ok", seen.check("mdns")
        assert host.addr in seen.check("mdns")["detail"]
        iptables(host, "-A", "OUTPUT", "-p", "udp", "--dport", "5353", "-j", "DROP")
        seen = doctor(*character.args(), prefix=tuple(host.exec_prefix))
        assert seen.check("mdns")["status"] == "fail", seen.check("mdns")
        assert "5353" in seen.check("mdns")["fix"]
