"""``roomverse party``: the flags, and the command that runs :func:`node.party.party.run_party`
until Ctrl-C."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from keys.errors import ConfigError, RoomverseError
from node.cli.exit_codes import EXIT_OK

DEFAULT_HTTP = "127.0.0.1:8080"


def add_party_command(sub: Any) -> None:
    party = sub.add_parser(
        "party",
        help="the sample characters, one shared engine and a firehose viewer, in one go",
        description="Start the sample characters (or --characters FILE...) as real nodes on "
        "this machine, sharing one embedded model, with a firehose and its viewer. Visits "
        "start within a minute of the model being ready. Ctrl-C stops everything; the next "
        "party brings the same characters back with their memories.",
    )
    party.add_argument(
        "--http",
        default=DEFAULT_HTTP,
        metavar="HOST:PORT",
        help=f"where the firehose viewer is served (default {DEFAULT_HTTP}; port 0 = any)",
    )
    party.add_argument(
        "--data-dir", type=Path, help="the party's keys and memories (default: per user)"
    )
    party.add_argument(
        "--characters",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="character files (default: configs/)",
    )
    engine = party.add_mutually_exclusive_group()
    engine.add_argument("--model", metavar="NAME", help="the embedded model they share")
    engine.add_argument(
        "--engine-url",
        metavar="URL",
        help="an OpenAI-compatible server instead of the embedded model",
    )
    party.add_argument("--engine-model", metavar="NAME", help="model name at --engine-url")
    party.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="llama.cpp threads (default: every core, at most 8)",
    )
    party.add_argument(
        "--lan", action="store_true", help="also meet characters on the LAN (mDNS, all interfaces)"
    )
    party.add_argument("--no-firehose", action="store_true", help="no viewer")
    party.add_argument("--log-format", choices=("text", "json"), default="text")


def run_party_command(args: argparse.Namespace) -> int:
    import trio

    from node.cli.run import first_leaf
    from node.party.party import run_party
    from node.party.settings import DEFAULT_MODEL, PartySettings

    if args.engine_model is not None and args.engine_url is None:
        raise ConfigError(
            "--engine-model", "goes with --engine-url (use --model for the embedded one)"
        )
    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads", "must be at least 1")
    settings = PartySettings(
        characters=tuple(args.characters or ()),
        data_dir=args.data_dir,
        http=args.http,
        model=args.model or DEFAULT_MODEL,
        engine_url=args.engine_url,
        engine_model=args.engine_model,
        lan=args.lan,
        firehose=not args.no_firehose,
        threads=args.threads,
    )
    if args.model is not None:
        from node.engine.model_pack import model_choice

        model_choice(args.model)  # an unknown name fails now, listing the known ones
    try:
        trio.run(run_party, settings, args.log_format)
    except BaseExceptionGroup as group:
        # Something the party cannot go on without (the engine, the firehose's port).
        cause = first_leaf(group)
        if isinstance(cause, RoomverseError | OSError):
            raise PartyFailed(str(cause)) from None
        raise
    return EXIT_OK


class PartyFailed(RoomverseError):
    """The party had to stop: the message says what failed."""


__all__ = ["add_party_command", "run_party_command"]
