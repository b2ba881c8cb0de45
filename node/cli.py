"""The ``roomverse`` command: ``main(argv) -> exit code``.

Exit codes: 0 success, 1 the command failed at run time, 2 bad usage or bad config.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keys.bodies import MAX_IMAGE_BYTES
from keys.cli import add_key_commands, passphrase_from, run_key_command
from keys.errors import ConfigError, ControlError, KeyFileError, LocalError, RoomverseError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SET_STATUS_COMMANDS = ("online", "away", "asleep")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roomverse",
        description="AI characters that drop in on each other, chat and leave (libp2p).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_key_commands(sub)

    node = sub.add_parser("node", help="run a character until Ctrl-C or SIGTERM")
    node.add_argument("--character", required=True, type=Path, help="character JSON file")
    node.add_argument("--listen", action="append", metavar="MULTIADDR", help="repeatable")
    node.add_argument("--bootstrap", action="append", metavar="MULTIADDR", help="repeatable")
    node.add_argument("--no-mdns", action="store_true", help="turn LAN discovery off")
    node.add_argument("--data-dir", type=Path, help="key and database (default: per character)")
    node.add_argument("--log-format", choices=("text", "json"), default="text")
    node.add_argument("--passphrase-file", type=Path, help="file holding the key passphrase")
    node.add_argument("--no-greet", action="store_true", help="do not wave at new peers")
    node.add_argument(
        "--heartbeat", type=float, metavar="SECONDS", help="directory lease renewal (default 15)"
    )
    node.add_argument(
        "--lease", type=float, metavar="SECONDS", help="directory lease length (default 45)"
    )
    node.add_argument(
        "--sync-interval", type=float, metavar="SECONDS", help="anti-entropy period (default 5)"
    )

    act = sub.add_parser("act", help="make the running character act")
    act.add_argument("--data-dir", required=True, type=Path)
    act_sub = act.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, field, help_text in (
        ("speak", "text", "say something"),
        ("gesture", "name", "e.g. wave, bow, nod"),
        ("move", "to", "move somewhere"),
        ("look", "at", "look at something"),
        ("text", "text", "share a text context"),
    ):
        one = act_sub.add_parser(name, help=help_text)
        one.add_argument(field)
    image = act_sub.add_parser("image", help="share an image context (≤ 192 KiB)")
    image.add_argument("path", type=Path)
    image.add_argument("--alt", default=None)

    status = sub.add_parser("status", help="show the running node's status")
    status.add_argument("--data-dir", required=True, type=Path)

    directory = sub.add_parser("directory", help="who is online, as the running node sees it")
    directory.add_argument("--data-dir", required=True, type=Path)
    directory.add_argument("--search", metavar="TEXT", help="name, description, tag or PeerID")
    directory.add_argument("--json", action="store_true", help="one JSON document")

    for name in SET_STATUS_COMMANDS:
        one = sub.add_parser(name, help=f"tell the network this character is {name}")
        one.add_argument("--data-dir", required=True, type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    _setup_logging(args.verbose)
    try:
        if args.command == "keys":
            return run_key_command(args)
        if args.command == "node":
            return _run_node(args)
        if args.command == "act":
            return _act(args)
        if args.command == "status":
            return _status(args)
        if args.command == "directory":
            return _directory(args)
        if args.command in SET_STATUS_COMMANDS:
            return _set_status(args)
    except ConfigError as exc:
        print(f"roomverse: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ControlError, KeyFileError) as exc:
        print(f"roomverse: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except RoomverseError as exc:
        print(f"roomverse: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, LocalError) else EXIT_FAILED
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _run_node(args: argparse.Namespace) -> int:
    import trio

    from node import _libp2p
    from node.config import load_config, with_overrides
    from node.events import EventLog
    from node.runtime import NodeOptions, run_node

    config = load_config(args.character)
    config = with_overrides(
        config,
        listen=args.listen,
        bootstrap=args.bootstrap,
        mdns=False if args.no_mdns else None,
        data_dir=args.data_dir,
    )
    for i, addr in enumerate(config.network.listen):
        try:
            _libp2p.validate_listen_addr(addr)
        except _libp2p.DialError as exc:
            raise ConfigError(f"network.listen[{i}]", str(exc)) from None
    for i, addr in enumerate(config.network.bootstrap):
        try:
            _libp2p.split_peer_addr(addr)
        except _libp2p.DialError as exc:
            raise ConfigError(f"network.bootstrap[{i}]", str(exc)) from None
    options = NodeOptions(
        passphrase=passphrase_from(args.passphrase_file),
        greet=not args.no_greet,
        directory=_directory_settings(args),
    )
    events = EventLog(args.log_format)
    try:
        trio.run(run_node, config, events, options)
    except KeyboardInterrupt:
        events.emit("stopped", reason="interrupt")
    return EXIT_OK


def _directory_settings(args: argparse.Namespace) -> Any:
    from node.directory_service import DirectorySettings

    defaults = DirectorySettings()
    heartbeat = args.heartbeat if args.heartbeat is not None else defaults.heartbeat_s
    settings = DirectorySettings(
        heartbeat_s=heartbeat,
        lease_s=args.lease if args.lease is not None else max(defaults.lease_s, 3 * heartbeat),
        sync_interval_s=(
            args.sync_interval if args.sync_interval is not None else defaults.sync_interval_s
        ),
    )
    settings.check()
    return settings


def _act(args: argparse.Namespace) -> int:
    from node.control import control_request

    kind, body = _action_body(args)
    reply = control_request(args.data_dir, {"cmd": "publish", "kind": kind, "body": body})
    print(json.dumps({k: reply[k] for k in ("seq", "ts", "recipients")}))
    if reply["recipients"] == 0:
        print(
            "roomverse: no peer is listening yet: the action is stored but reached no one",
            file=sys.stderr,
        )
    return EXIT_OK


def _action_body(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    action = args.action
    if action == "speak":
        return "action", {"type": "speak", "text": args.text}
    if action == "gesture":
        return "action", {"type": "gesture", "name": args.name}
    if action == "move":
        return "action", {"type": "move", "to": args.to}
    if action == "look":
        return "action", {"type": "look", "at": args.at}
    if action == "text":
        return "context", {"type": "text", "text": args.text}
    return "context", _image_body(args.path, args.alt)


def _image_body(path: Path, alt: str | None) -> dict[str, Any]:
    mimes = {
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".webp": "image/webp",
        ".gif": "image/gif",
    }
    mime = mimes.get(path.suffix.lower())
    if mime is None:
        raise ConfigError("path", f"unsupported image type {path.suffix!r} (png, jpeg, webp, gif)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError("path", f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise ConfigError(
            "path",
            f"image data is {len(data) // 1024} KiB; the limit is {MAX_IMAGE_BYTES // 1024} KiB",
        )
    body: dict[str, Any] = {
        "type": "image",
        "mime": mime,
        "data_b64": base64.b64encode(data).decode(),
    }
    if alt:
        body["alt"] = alt
    return body


def _status(args: argparse.Namespace) -> int:
    from node.control import control_request

    reply = control_request(args.data_dir, {"cmd": "status"})
    reply.pop("ok", None)
    print(json.dumps(reply, indent=2))
    return EXIT_OK


def _directory(args: argparse.Namespace) -> int:
    from node.control import control_request

    reply = control_request(args.data_dir, {"cmd": "directory", "search": args.search})
    reply.pop("ok", None)
    if args.json:
        print(json.dumps(reply, indent=2))
        return EXIT_OK
    print(_directory_table(reply["entries"]))
    print(
        f"{len(reply['entries'])} listed · {reply['present']} present of {reply['held']} known"
        f" · {reply['sync']['ok']} syncs ok · digest {reply['digest']}"
    )
    return EXIT_OK


def _directory_table(rows: list[dict[str, Any]]) -> str:
    import time

    now_ms = time.time() * 1000
    lines = [f"{'NAME':<20} {'STATUS':<8} {'LAST SEEN':>10}  PEER ID / ADDRESSES"]
    for row in rows:
        ago = max(0.0, (now_ms - row["last_seen_ms"]) / 1000)
        name = _printable(row["name"])[:19] + (" *" if row["self"] else "")
        lines.append(f"{name:<20} {row['status']:<8} {_ago(ago):>10}  {row['peer_id']}")
        lines.extend(f"{'':<41}{_printable(addr)}" for addr in row["addrs"])
    return "\n".join(lines)


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def _printable(text: str) -> str:
    """Directory text comes from other people: never let it drive the terminal."""
    return "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)


def _set_status(args: argparse.Namespace) -> int:
    from node.control import control_request

    reply = control_request(args.data_dir, {"cmd": "set_status", "status": args.command})
    print(json.dumps({"status": reply["status"], "clock": reply["clock"]}))
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    os._exit(main())
