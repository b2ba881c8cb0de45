"""The ``roomverse`` command: ``main(argv) -> exit code``.

Exit codes: 0 success, 1 the command failed at run time, 2 bad usage or bad config.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keys.bodies import MAX_IMAGE_BYTES
from keys.cli import passphrase_from, run_key_command
from keys.errors import ConfigError, KeyFileError, LocalError, RoomverseError
from node.cli.parser import EXTERNAL_COMMANDS, SET_STATUS_COMMANDS, build_parser
from node.cli.startup import check_network_addrs, setup_logging
from node.cli.terminal import printable
from node.errors import ControlError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    external = _external_command(words)
    if external is not None:
        return external
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


def _external_command(words: list[str]) -> int | None:
    """Run a command another package owns (``roomverse firehose ...``), imported by name;
    None if ``words`` name none. Leading ``-v`` flags are passed on."""
    verbose: list[str] = []
    rest = list(words)
    while rest and rest[0] in ("-v", "-vv", "-vvv", "--verbose"):
        verbose.append(rest.pop(0))
    if not rest or rest[0] not in EXTERNAL_COMMANDS:
        return None
    module = importlib.import_module(EXTERNAL_COMMANDS[rest[0]][0])
    code: int = module.main([*verbose, *rest[1:]])
    return code


def _run_node(args: argparse.Namespace) -> int:
    import trio

    from node.config import load_config, with_overrides
    from node.events import EventLog
    from node.process import NodeOptions, run_node

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
    from node.directory.replica import DirectorySettings

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
    from node.control.socket import control_request

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
    from node.control.socket import control_request

    reply = control_request(args.data_dir, {"cmd": "status"})
    reply.pop("ok", None)
    print(json.dumps(reply, indent=2))
    return EXIT_OK


def _directory(args: argparse.Namespace) -> int:
    from node.control.socket import control_request

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
    from node.clock import now_ms

    now = now_ms()
    lines = [f"{'NAME':<20} {'STATUS':<8} {'LAST SEEN':>10}  PEER ID / ADDRESSES"]
    for row in rows:
        ago = max(0.0, (now - row["last_seen_ms"]) / 1000)
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
    from node.control.socket import control_request

    reply = control_request(args.data_dir, {"cmd": "set_status", "status": args.command})
    print(json.dumps({"status": reply["status"], "clock": reply["clock"]}))
    return EXIT_OK


def _visit(args: argparse.Namespace) -> int:
    from node.control.socket import control_stream

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
    from node.cli import memory_view
    from node.control.socket import control_request

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
