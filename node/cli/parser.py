"""The ``roomverse`` argument parser: the node's own commands, the network flags every
process shares, and the commands other packages own (loaded by name when run).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

from keys.cli import add_key_commands
from node.cli.character import add_character_command
from node.cli.doctor import add_doctor_command
from node.cli.party import add_party_command

SET_STATUS_COMMANDS = ("online", "away", "asleep")
CONTEXT_TO_HELP: Final = (
    "the character it is for, or 'everyone' (default: your own character; the others hear it "
    "but do not react)"
)

EXTERNAL_COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "firehose": ("firehose.cli", "stream the network's public actions to browsers until Ctrl-C"),
    "bridge": ("bridge.cli", "the HTTP bridge: legacy HTTP participants register and list here"),
}
"""Commands whose package sits above ``node``: name → (module with ``main(argv)``, help).
``node`` never imports them; :func:`node.cli.main.main` imports the module by name."""


def add_network_arguments(parser: argparse.ArgumentParser, *, data_dir_default: str) -> None:
    """The flags of every process that joins the network (``node``, ``firehose``, ...)."""
    parser.add_argument("--listen", action="append", metavar="MULTIADDR", help="repeatable")
    parser.add_argument("--bootstrap", action="append", metavar="MULTIADDR", help="repeatable")
    parser.add_argument("--no-mdns", action="store_true", help="turn LAN discovery off")
    parser.add_argument(
        "--data-dir", type=Path, help=f"key and database (default: {data_dir_default})"
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--passphrase-file", type=Path, help="file holding the key passphrase")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roomverse",
        description="AI characters that drop in on each other, chat and leave (libp2p).",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_party_command(sub)
    add_character_command(sub)
    add_doctor_command(sub)
    add_key_commands(sub)

    node = sub.add_parser("node", help="run a character until Ctrl-C or SIGTERM")
    node.add_argument("--character", required=True, type=Path, help="character JSON file")
    add_network_arguments(node, data_dir_default="per character")
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
        if name in ("speak", "gesture"):
            one.add_argument("--to", metavar="PEER_ID", help="the character it is aimed at")
        elif name == "text":
            one.add_argument("--to", metavar="PEER_ID", help=CONTEXT_TO_HELP)
    image = act_sub.add_parser("image", help="share an image context (≤ 192 KiB)")
    image.add_argument("path", type=Path)
    image.add_argument("--alt", default=None)
    image.add_argument("--to", metavar="PEER_ID", help=CONTEXT_TO_HELP)

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

    end_visit = sub.add_parser(
        "end-visit", help="end a visit in progress politely (none named: every one)"
    )
    end_visit.add_argument("visit_id", nargs="?", metavar="VISIT_ID", help="default: all")
    end_visit.add_argument("--data-dir", required=True, type=Path)
    end_visit.add_argument("--json", action="store_true", help="one JSON document")

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

    for name, (_module, help_text) in EXTERNAL_COMMANDS.items():
        # Listed for --help only: main() hands these to their own package before parsing.
        sub.add_parser(name, help=help_text, add_help=False)

    for name in SET_STATUS_COMMANDS:
        one = sub.add_parser(name, help=f"tell the network this character is {name}")
        one.add_argument("--data-dir", required=True, type=Path)
    return parser


__all__ = ["EXTERNAL_COMMANDS", "SET_STATUS_COMMANDS", "add_network_arguments", "build_parser"]
