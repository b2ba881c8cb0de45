"""``roomverse keys generate|show`` (also ``python -m keys``).

The key file is ``identity.key`` in a character's data directory, or any path given
with ``--key-file``. The private key is printed only with ``--export`` together with
``--yes-print-private-key``.
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

from keys.errors import KeyFileError, LocalError
from keys.identity import Identity
from keys.keyfile import key_file_is_private, load_key, save_key

KEY_FILE_NAME = "identity.key"
PASSPHRASE_ENV = "ROOMVERSE_KEY_PASSPHRASE"


class KeyCommandError(LocalError):
    """A ``keys`` command was used wrongly (missing flag, unreadable passphrase file)."""


def add_key_commands(sub: Any) -> None:
    """Register ``keys generate|show`` on an argparse sub-parser collection."""
    keys = sub.add_parser("keys", help="create or inspect a character's key")
    keys_sub = keys.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    for name, help_text in (("generate", "create a new key file"), ("show", "show PeerID")):
        one = keys_sub.add_parser(name, help=help_text)
        where = one.add_mutually_exclusive_group(required=True)
        where.add_argument("--data-dir", type=Path, help=f"uses DIR/{KEY_FILE_NAME}")
        where.add_argument("--key-file", type=Path)
        one.add_argument("--passphrase-file", type=Path, help=f"or set {PASSPHRASE_ENV}")
        one.add_argument("--json", action="store_true", help="machine-readable output")
    generate = keys_sub.choices["generate"]
    generate.add_argument("--force", action="store_true", help="replace an existing key")
    show = keys_sub.choices["show"]
    show.add_argument("--export", action="store_true", help="print the private key too")
    show.add_argument(
        "--yes-print-private-key",
        action="store_true",
        help="confirm --export: anyone who sees the output can impersonate the character",
    )


def passphrase_from(path: Path | None) -> str | None:
    """The key passphrase: first line of ``path``, else $ROOMVERSE_KEY_PASSPHRASE, else none."""
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
        except (OSError, UnicodeDecodeError, IndexError) as exc:
            raise KeyCommandError(f"cannot read passphrase file {path}: {exc}") from None
    return os.environ.get(PASSPHRASE_ENV) or None


def key_path(args: argparse.Namespace) -> Path:
    return Path(args.key_file) if args.key_file else Path(args.data_dir) / KEY_FILE_NAME


def run_key_command(args: argparse.Namespace) -> int:
    path = key_path(args)
    passphrase = passphrase_from(args.passphrase_file)
    if args.key_command == "generate":
        identity = Identity.generate()
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        save_key(path, identity, passphrase, overwrite=args.force)
        _print(args, identity, path, created=True, encrypted=passphrase is not None)
        return 0
    if args.export and not args.yes_print_private_key:
        raise KeyCommandError("--export prints the private key; add --yes-print-private-key")
    identity = load_key(path, passphrase)
    if not key_file_is_private(path):
        print(f"warning: {path} is readable by other users; run chmod 600", file=sys.stderr)
    _print(args, identity, path, export=args.export)
    return 0


def _print(args: argparse.Namespace, identity: Identity, path: Path, **extra: Any) -> None:
    info: dict[str, Any] = {
        "peer_id": identity.peer_id_str,
        "fingerprint": identity.fingerprint,
        "key_file": str(path),
    }
    if extra.pop("export", False):
        info["private_key_seed_b64"] = base64.b64encode(identity.seed).decode()
    info.update(extra)
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keys")
    add_key_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return run_key_command(args)
    except KeyFileError as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 1
    except LocalError as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 2
