"""The commands that ask a running node over its control socket (:mod:`node.control.socket`):
``roomverse act``, ``status``, ``directory``, ``online|away|asleep``, ``visit``,
``end-visit`` and ``memory``. Each sends one request, prints the reply (``--json``: as it
came) and returns the exit code; what others wrote goes through :mod:`node.cli.terminal`
first.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any

from keys.bodies import EVERYONE, MAX_IMAGE_BYTES
from keys.errors import ConfigError
from node.cli import directory_view, memory_view
from node.cli.exit_codes import EXIT_FAILED, EXIT_OK
from node.cli.terminal import printable
from node.clock import now_ms
from node.control.socket import control_request, control_stream

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
"""File suffix → MIME type of the images ``roomverse act image`` sends."""
VISIT_SUCCESSES = ("completed", "ended_by_partner", "left_message")
"""Visit outcomes that ``roomverse visit`` exits 0 on."""


def act(args: argparse.Namespace) -> int:
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
    if action == "move":
        return "action", {"type": "move", "to": args.to}
    if action == "look":
        return "action", {"type": "look", "at": args.at}
    to = {} if args.to is None else {"to": args.to}
    if action == "speak":
        return "action", {"type": "speak", "text": args.text, **to}
    if action == "gesture":
        return "action", {"type": "gesture", "name": args.name, **to}
    if to.get("to") == "everyone":
        to["to"] = EVERYONE
    if action == "text":
        return "context", {"type": "text", "text": args.text, **to}
    return "context", {**_image_body(args.path, args.alt), **to}


def _image_body(path: Path, alt: str | None) -> dict[str, Any]:
    mime = IMAGE_TYPES.get(path.suffix.lower())
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


def status(args: argparse.Namespace) -> int:
    reply = control_request(args.data_dir, {"cmd": "status"})
    reply.pop("ok", None)
    print(json.dumps(reply, indent=2))
    clock = reply.get("clock")
    if isinstance(clock, dict) and clock.get("state") in ("ahead", "behind"):
        # Stdout stays JSON; the one thing the owner must not miss goes to the terminal.
        print(f"warning: {printable(str(clock.get('message')))}", file=sys.stderr)
    return EXIT_OK


def directory(args: argparse.Namespace) -> int:
    reply = control_request(args.data_dir, {"cmd": "directory", "search": args.search})
    reply.pop("ok", None)
    if args.json:
        print(json.dumps(reply, indent=2))
    else:
        print(directory_view.render_reply(reply, now_ms=now_ms()))
    return EXIT_OK


def set_status(args: argparse.Namespace) -> int:
    reply = control_request(args.data_dir, {"cmd": "set_status", "status": args.command})
    print(json.dumps({"status": reply["status"], "clock": reply["clock"]}))
    return EXIT_OK


def visit(args: argparse.Namespace) -> int:
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
    return EXIT_OK if outcome in VISIT_SUCCESSES else EXIT_FAILED


def _visit_summary(reply: dict[str, Any]) -> str:
    text = f"-- visit {reply['visit']} {reply['outcome']}, {reply['turns']} lines"
    if reply.get("reason"):
        text += f" ({printable(str(reply['reason']))})"
    if reply.get("transcript"):
        text += f", transcript {reply['transcript'][:16]}…, receipt signed by both"
    if reply.get("message"):
        text += f"\n-- their answering machine: {printable(reply['message'])}"
    return text


def end_visit(args: argparse.Namespace) -> int:
    """Ask the node to end one visit in progress (or every one) and wait until it is over."""
    reply = control_request(args.data_dir, {"cmd": "end_visit", "visit": args.visit_id})
    if args.json:
        print(json.dumps({"visits": reply["visits"]}, indent=2))
        return EXIT_OK
    for visit in reply["visits"]:
        print(ending_summary(visit), flush=True)
    return EXIT_OK


def ending_summary(visit: dict[str, Any]) -> str:
    """One line on a visit the owner ended: over, or waiting for the partner's line."""
    name = printable(visit["partner_name"])
    text = f"-- visit {visit['visit']} with {name}: "
    if visit["ended"] and "outcome" in visit:
        return text + f"ended ({visit['outcome']}, {visit['reason']}), {visit['turns']} lines"
    return text + f"ending: the farewell goes out after {name}'s line"


def memory(args: argparse.Namespace) -> int:
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
