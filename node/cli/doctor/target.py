"""What ``roomverse doctor`` examines: a character file (and its data directory), or a
bare data directory; whether a node is running on it right now; the addresses the
HTTP faces would take."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keys.cli import passphrase_from
from keys.errors import ConfigError
from node.cli.startup import parse_http_addr
from node.config import CharacterConfig, load_config, with_overrides
from node.control.socket import control_request
from node.errors import ControlError
from node.storage.data_dir import DataDirBusy, lock_data_dir

FIREHOSE_HTTP = "127.0.0.1:8080"
"""``roomverse firehose``'s and ``roomverse party``'s viewer, by default."""
BRIDGE_HTTP = "127.0.0.1:8000"
"""``roomverse bridge``'s, by default."""
STATUS_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Target:
    config: CharacterConfig | None
    """None when only ``--data-dir`` was given: the checks that need the character skip."""
    character_file: Path | None
    data_dir: Path
    passphrase: str | None
    running: dict[str, Any] | None
    """The running node's ``status`` (from its control socket); None if none runs here."""
    http: tuple[tuple[str, str], ...]
    """(what, ``HOST:PORT``) of each HTTP face whose port is checked."""

    def about(self) -> dict[str, Any]:
        return {
            "character": None if self.character_file is None else str(self.character_file),
            "data_dir": str(self.data_dir),
            "node_running": self.running is not None,
        }


def target_from(args: argparse.Namespace) -> Target:
    """Read the character file (a :class:`ConfigError` if it is unusable: exit 2, as
    ``roomverse node`` would) and see whether a node runs on its data directory."""
    if args.character is None and args.data_dir is None:
        raise ConfigError("doctor", "give --character FILE or --data-dir DIR (or both)")
    config = None
    if args.character is not None:
        config = with_overrides(load_config(args.character), data_dir=args.data_dir)
        data_dir = config.resolved_data_dir()
    else:
        data_dir = args.data_dir
    http = [("firehose", args.firehose_http), ("bridge", args.bridge_http)]
    if args.dashboard is not None:
        http.append(("dashboard", args.dashboard))
    for what, addr in http:
        try:
            parse_http_addr(addr)
        except ConfigError:
            flag = "--dashboard" if what == "dashboard" else f"--{what}-http"
            raise ConfigError(flag, f"expected HOST:PORT, got {addr!r}") from None
    return Target(
        config,
        args.character,
        data_dir,
        passphrase_from(args.passphrase_file),
        running_status(data_dir),
        tuple(http),
    )


def running_status(data_dir: Path) -> dict[str, Any] | None:
    """The status of the node running on ``data_dir``, or None if none does.

    The data-dir lock says whether one runs (taken and let go at once when free, so a node
    starting in that instant fails with "already running" and can simply be started
    again); its control socket then says how it is."""
    if not data_dir.is_dir():
        return None
    try:
        with lock_data_dir(data_dir):
            return None
    except DataDirBusy:
        pass
    try:
        reply = control_request(data_dir, {"cmd": "status"}, timeout=STATUS_TIMEOUT_S)
    except (ControlError, OSError) as exc:
        return {"ok": False, "error": str(exc)}
    return dict(reply) if isinstance(reply, dict) else {"ok": False, "error": "no status"}


__all__ = ["BRIDGE_HTTP", "FIREHOSE_HTTP", "Target", "running_status", "target_from"]
