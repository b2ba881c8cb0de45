"""The ``roomverse`` command: ``main(argv) -> exit code``.

Exit codes (:mod:`node.cli.exit_codes`): 0 success, 1 the command failed at run time,
2 bad usage or bad config. Each command lives beside this module, named after what it
serves: :mod:`node.cli.run` (``node``), :mod:`node.cli.requests` (the commands that ask
a running node), :mod:`node.cli.engine_key`; ``keys`` is :mod:`keys.cli`'s.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Final

from keys.cli import run_key_command
from keys.errors import ConfigError, KeyFileError, LocalError, RoomverseError
from node.cli import requests
from node.cli.character import run_character_command
from node.cli.doctor import run_doctor_command
from node.cli.engine_key import engine_key_command
from node.cli.exit_codes import EXIT_FAILED, EXIT_USAGE
from node.cli.parser import EXTERNAL_COMMANDS, SET_STATUS_COMMANDS, build_parser
from node.cli.party import run_party_command
from node.cli.run import run_node_command
from node.cli.startup import setup_logging
from node.errors import ControlError

COMMANDS: Final[dict[str, Callable[[argparse.Namespace], int]]] = {
    "keys": run_key_command,
    "node": run_node_command,
    "party": run_party_command,
    "act": requests.act,
    "status": requests.status,
    "directory": requests.directory,
    **dict.fromkeys(SET_STATUS_COMMANDS, requests.set_status),
    "visit": requests.visit,
    "end-visit": requests.end_visit,
    "memory": requests.memory,
    "engine-key": engine_key_command,
    "character": run_character_command,
    "doctor": run_doctor_command,
}
"""The parser's command name → what runs it."""


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
    command = COMMANDS.get(args.command)
    if command is None:
        parser.error(f"unknown command {args.command}")
    try:
        return command(args)
    except ConfigError as exc:
        print(f"roomverse: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ControlError, KeyFileError) as exc:
        print(f"roomverse: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except RoomverseError as exc:
        print(f"roomverse: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, LocalError) else EXIT_FAILED


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


if __name__ == "__main__":  # pragma: no cover
    os._exit(main())
