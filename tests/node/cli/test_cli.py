"""The `roomverse` command as a user runs it: keys, node lifecycle, act, status."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from node.cli.main import main
from tests.support.procs import REPO, NodeProcess, roomverse_argv, run_cli, write_character


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        roomverse_argv(*args), capture_output=True, text=True, timeout=60, env=full_env
    )


def test_keys_generate_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "mina"
    assert main(["keys", "generate", "--data-dir", str(data), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    key_file = data / "identity.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert made["peer_id"].startswith("12D3KooW")
    assert main(["keys", "show", "--data-dir", str(data), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["peer_id"] == made["peer_id"]
    assert "private_key_seed_b64" not in shown
    # A second generate refuses to clobber the key.
    assert main(["keys", "generate", "--data-dir", str(data)]) == 1
    assert "exists" in capsys.readouterr().err


def test_export_needs_confirmation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--key-file", str(tmp_path / "k")]) == 0
    capsys.readouterr()
    assert main(["keys", "show", "--key-file", str(tmp_path / "k"), "--export"]) == 2
    captured = capsys.readouterr()
    assert "--yes-print-private-key" in captured.err
    assert "seed" not in captured.out
    code = main(
        ["keys", "show", "--key-file", str(tmp_path / "k"), "--export", "--yes-print-private-key"]
    )
    assert code == 0
    assert "private_key_seed_b64" in capsys.readouterr().out


def test_passphrase_protected_key(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("correct horse\n")
    key = tmp_path / "k"
    done = cli("keys", "generate", "--key-file", str(key), "--passphrase-file", str(secret))
    assert done.returncode == 0, done.stderr
    assert b"correct horse" not in key.read_bytes()
    ok = cli(
        "keys", "show", "--key-file", str(key), env={"ROOMVERSE_KEY_PASSPHRASE": "correct horse"}
    )
    assert ok.returncode == 0
    for env in ({"ROOMVERSE_KEY_PASSPHRASE": "wrong"}, {"ROOMVERSE_KEY_PASSPHRASE": ""}):
        bad = cli("keys", "show", "--key-file", str(key), env=env)
        assert bad.returncode == 1
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert "Traceback" not in bad.stderr


def test_corrupt_key_file_is_one_line_error(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text('{"format": "roomverse-key", "version": 1')
    done = cli("keys", "show", "--key-file", str(key))
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_act_without_a_running_node(tmp_path: Path) -> None:
    done = cli("act", "--data-dir", str(tmp_path), "speak", "hi")
    assert done.returncode == 1
    assert "no running node" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_node_stops_cleanly_on_signal(tmp_path: Path, signum: int) -> None:
    node = NodeProcess(write_character(tmp_path, "Quiet"), tmp_path / "data")
    try:
        node.wait_ready()
        sock = node.data_dir / "control.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(node.data_dir.stat().st_mode) == 0o700
        status = node.status()
        assert status["peer_id"] == node.peer_id and status["peers"] == []
        node.signal(signum)
        assert node.proc.wait(20) == 0
        node.wait_for(lambda e: e.get("event") == "stopped", 5, "stopped")
    finally:
        node.stop()
    assert not any("Traceback" in line for line in node.stderr_lines), node.stderr_lines
    assert not sock.exists()


def test_two_nodes_cannot_share_a_data_dir(tmp_path: Path) -> None:
    first = NodeProcess(write_character(tmp_path, "One"), tmp_path / "data")
    try:
        first.wait_ready()
        second = cli(
            "node",
            "--character",
            str(write_character(tmp_path, "Two")),
            "--data-dir",
            str(tmp_path / "data"),
            "--no-mdns",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        )
        assert second.returncode == 2
        assert "already running" in second.stderr
    finally:
        first.stop()


def test_contexts_text_and_image_travel(tmp_path: Path) -> None:
    a = NodeProcess(write_character(tmp_path, "Pix"), tmp_path / "a", extra=["--no-greet"])
    b = None
    try:
        a.wait_ready()
        b = NodeProcess(
            write_character(tmp_path, "Lens"),
            tmp_path / "b",
            bootstrap=a.addrs,
            extra=["--no-greet"],
        )
        b.wait_ready()
        a.wait_topic_peers([b.peer_id])
        image = tmp_path / "dot.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
        assert (
            json.loads(run_cli("act", "--data-dir", str(a.data_dir), "text", "a map"))["recipients"]
            >= 1
        )
        run_cli("act", "--data-dir", str(a.data_dir), "image", str(image), "--alt", "a dot")
        got = b.wait_for(
            lambda e: e.get("event") == "action_received" and e["body"].get("type") == "image",
            20,
            "image",
        )
        assert got["kind"] == "context"
        assert got["body"]["data"] == "<108 bytes>"
        assert b.wait_for(lambda e: e.get("body", {}).get("text") == "a map", 5, "text")
        too_big = tmp_path / "big.png"
        too_big.write_bytes(bytes(300 * 1024))
        refused = cli("act", "--data-dir", str(a.data_dir), "image", str(too_big))
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert "data" in refused.stderr
    finally:
        a.stop()
        if b is not None:
            b.stop()
