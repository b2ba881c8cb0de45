"""The ``roomverse`` command: ``main(argv) -> exit code``.

Exit codes: 0 success, 1 the command failed at run time, 2 bad usage or bad config.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from firehose.cli import add_firehose_parser, run_firehose_command
from keys.bodies import MAX_IMAGE_BYTES
from keys.cli import add_key_commands, passphrase_from, run_key_command
from keys.errors import ConfigError, ControlError, KeyFileError, LocalError, RoomverseError
from node.startup import check_network_addrs, setup_logging
from node.terminal import printable

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
    node.add_argument(
        "--engine-url", metavar="URL", help="OpenAI-compatible base URL (replaces the config's)"
    )
    node.add_argument("--engine-model", metavar="NAME", help="model name for the engine")
    node.add_argument(
        "--autonomy", choices=("on", "off"), help="visit others unprompted (default: config)"
    )
    node.add_argument(
        "--visit-interval", type=float, metavar="SECONDS", help="between autonomous visits"
    )
    node.add_argument(
        "--turn-timeout", type=float, metavar="SECONDS", help="wait for a partner's line (120)"
    )
    node.add_argument(
        "--dashboard",
        metavar="HOST:PORT",
        help="serve the owner's dashboard there (127.0.0.1:0 picks a port); prints its URL",
    )
    node.add_argument(
        "--dashboard-public",
        action="store_true",
        help="allow --dashboard on a non-loopback address (it shows private memory)",
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

    visit = sub.add_parser("visit", help="visit another character now and print the talk")
    visit.add_argument("target", metavar="NAME_OR_ID")
    visit.add_argument("--data-dir", required=True, type=Path)
    visit.add_argument("--turns", type=int, default=0, help="lines in the visit (host caps it)")
    visit.add_argument("--private", action="store_true", help="do not publish the speech")
    visit.add_argument("--json", action="store_true", help="JSON lines instead of text")

    memory = sub.add_parser("memory", help="who visited, what was said, how we feel")
    memory.add_argument("--data-dir", required=True, type=Path)
    memory.add_argument(
        "what", nargs="?", choices=("visits", "relations", "conversation"), default="visits"
    )
    memory.add_argument("visit_id", nargs="?", metavar="ID", help="for conversation")
    memory.add_argument("--json", action="store_true", help="one JSON document")
    memory.add_argument("--limit", type=int, default=50)

    engine_key = sub.add_parser("engine-key", help="store an engine API key, encrypted")
    engine_key.add_argument("action", choices=("set", "delete", "list"))
    engine_key.add_argument("engine", nargs="?", help="engine name (as in the config)")
    engine_key.add_argument("--data-dir", required=True, type=Path)
    engine_key.add_argument("--passphrase-file", type=Path)

    add_firehose_parser(sub)

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
    setup_logging(args.verbose)
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
        if args.command == "visit":
            return _visit(args)
        if args.command == "memory":
            return _memory(args)
        if args.command == "engine-key":
            return _engine_key(args)
        if args.command == "firehose":
            return run_firehose_command(args)
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


def _run_node(args: argparse.Namespace) -> int:
    import trio

    from node.config import load_config, with_overrides
    from node.events import EventLog
    from node.runner import NodeOptions, run_node

    config = load_config(args.character)
    config = with_overrides(
        config,
        listen=args.listen,
        bootstrap=args.bootstrap,
        mdns=False if args.no_mdns else None,
        data_dir=args.data_dir,
        engine_url=args.engine_url,
        engine_model=args.engine_model,
        autonomy=None if args.autonomy is None else args.autonomy == "on",
        visit_interval_s=args.visit_interval,
    )
    check_network_addrs(config.network)
    if args.dashboard is not None:
        from node.dashboard import check_bind

        check_bind(args.dashboard, allow_public=args.dashboard_public)
    options = NodeOptions(
        passphrase=passphrase_from(args.passphrase_file),
        greet=not args.no_greet,
        directory=_directory_settings(args),
        turn_timeout_s=args.turn_timeout if args.turn_timeout is not None else 120.0,
        dashboard=args.dashboard,
        dashboard_public=args.dashboard_public,
    )
    events = EventLog(args.log_format)
    try:
        trio.run(run_node, config, events, options)
    except KeyboardInterrupt:
        events.emit("stopped", reason="interrupt")
    except ExceptionGroup as group:
        # A setting found unusable once the node was starting (a busy dashboard port).
        config_error, _ = group.split(ConfigError)
        if config_error is None:
            raise
        raise _first_leaf(config_error) from None
    return EXIT_OK


def _first_leaf(group: BaseExceptionGroup[Any]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


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
        name = printable(row["name"])[:19] + (" *" if row["self"] else "")
        lines.append(f"{name:<20} {row['status']:<8} {_ago(ago):>10}  {row['peer_id']}")
        lines.extend(f"{'':<41}{printable(addr)}" for addr in row["addrs"])
    return "\n".join(lines)


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"


def _set_status(args: argparse.Namespace) -> int:
    from node.control import control_request

    reply = control_request(args.data_dir, {"cmd": "set_status", "status": args.command})
    print(json.dumps({"status": reply["status"], "clock": reply["clock"]}))
    return EXIT_OK


def _visit(args: argparse.Namespace) -> int:
    from node.control import control_stream

    request = {"cmd": "visit", "target": args.target, "turns": args.turns, "private": args.private}
    outcome = "unknown"
    for reply in control_stream(args.data_dir, request):
        if args.json:
            print(json.dumps(reply), flush=True)
        elif "line" in reply:
            line = reply["line"]
            print(f"{printable(line['name'])}: {printable(line['text'])}", flush=True)
        elif reply.get("done"):
            print(_visit_summary(reply), flush=True)
        outcome = str(reply.get("outcome", outcome))
    return EXIT_OK if outcome in ("completed", "ended_by_partner", "left_message") else EXIT_FAILED


def _visit_summary(reply: dict[str, Any]) -> str:
    text = f"-- visit {reply['visit']} {reply['outcome']}, {reply['turns']} lines"
    if reply.get("transcript"):
        text += f", transcript {reply['transcript'][:16]}…, receipt signed by both"
    if reply.get("message"):
        text += f"\n-- their answering machine: {printable(reply['message'])}"
    return text


def _memory(args: argparse.Namespace) -> int:
    from node.agent import memory_view
    from node.control import control_request

    if args.what == "conversation" and not args.visit_id:
        raise ConfigError("ID", "memory conversation needs a visit ID (see `roomverse memory`)")
    request = {"cmd": "memory", "what": args.what, "visit": args.visit_id, "limit": args.limit}
    reply = control_request(args.data_dir, request)
    reply.pop("ok", None)
    if args.json:
        print(json.dumps(reply, indent=2))
    else:
        print(memory_view.render_reply(args.what, reply))
    return EXIT_OK


def _engine_key(args: argparse.Namespace) -> int:
    import getpass

    from keys import load_key
    from keys.cli import KEY_FILE_NAME
    from node.engine.key_store import KEY_STORE_FILE, KeyStore

    identity = load_key(args.data_dir / KEY_FILE_NAME, passphrase_from(args.passphrase_file))
    store = KeyStore(args.data_dir / KEY_STORE_FILE, identity.seed)
    if args.action == "list":
        for name in store.names():
            print(name)
        return EXIT_OK
    if not args.engine:
        raise ConfigError("engine", f"engine-key {args.action} needs the engine's name")
    if args.action == "delete":
        store.delete(args.engine)
        return EXIT_OK
    key = (
        getpass.getpass(f"API key for {args.engine}: ")
        if sys.stdin.isatty()
        else sys.stdin.readline()
    )
    if not key.strip():
        raise ConfigError("key", "empty API key")
    store.set(args.engine, key.strip())
    print(f"stored the key for {args.engine} (encrypted in {args.data_dir / KEY_STORE_FILE})")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    os._exit(main())
