"""``roomverse engine-key set|delete|list``: the API keys of the character's engines,
sealed with a key derived from the character's seed (:mod:`node.engine.key_store`)."""

from __future__ import annotations

import argparse
import getpass
import sys

from keys import load_key
from keys.cli import KEY_FILE_NAME, passphrase_from
from keys.errors import ConfigError
from node.cli.exit_codes import EXIT_OK
from node.engine.key_store import KEY_STORE_FILE, KeyStore


def engine_key_command(args: argparse.Namespace) -> int:
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
