"""The character's key file: private on disk, and whether a passphrase guards it."""

from __future__ import annotations

import json
from pathlib import Path

from keys import (
    KeyFileError,
    KeyFileMissing,
    PassphraseRequired,
    WrongPassphrase,
    key_file_is_private,
    load_key,
    peer_id_from_str,
)
from keys.cli import KEY_FILE_NAME, PASSPHRASE_ENV
from keys.errors import InvalidPeerId
from node.cli.doctor.report import Check, fail, ok, skip
from node.cli.doctor.target import Target

BACKUP_FIX = "restore identity.key from a backup (a new key makes a new character)"


def key_file_checks(target: Target) -> list[Check]:
    """``key file`` (mode 0600, readable) and ``passphrase`` (encrypted or not, and whether
    the passphrase given opens it). Error texts name the path, never key material."""
    path = target.data_dir / KEY_FILE_NAME
    try:
        private = key_file_is_private(path)
    except KeyFileMissing:
        why = "no key file yet: the node creates one (mode 0600) at its first start"
        return [skip("key file", why), skip("passphrase", "no key file yet")]
    except KeyFileError as exc:
        return [fail("key file", str(exc), f"make {path} readable by you"), _no_passphrase()]
    try:
        load_key(path)
        encrypted = False
    except PassphraseRequired:
        encrypted = True
    except KeyFileError as exc:
        return [fail("key file", str(exc), BACKUP_FIX), _no_passphrase()]
    if private:
        found = ok("key file", f"{path}: mode 0600, readable")
    else:
        mode = oct(path.stat().st_mode & 0o777)[2:]
        found = fail(
            "key file", f"{path} is readable by other users (mode {mode})", f"chmod 600 {path}"
        )
    return [found, _passphrase_check(path, encrypted, target.passphrase)]


def _passphrase_check(path: Path, encrypted: bool, passphrase: str | None) -> Check:
    if not encrypted:
        return ok("passphrase", "not encrypted (optional: `roomverse keys generate` with one)")
    if passphrase is None:
        why = f"encrypted; no passphrase given (--passphrase-file or {PASSPHRASE_ENV}) to try"
        return skip("passphrase", why)
    try:
        load_key(path, passphrase)
    except WrongPassphrase:
        return fail(
            "passphrase",
            "encrypted, and the passphrase given does not open it",
            f"give the right one with --passphrase-file or {PASSPHRASE_ENV}",
        )
    except KeyFileError as exc:
        return fail("passphrase", str(exc), BACKUP_FIX)
    return ok("passphrase", "encrypted; the passphrase given opens it")


def _no_passphrase() -> Check:
    return skip("passphrase", "the key file is unusable")


def own_peer_id(data_dir: Path) -> bytes | None:
    """This character's PeerID, from the key file's public ``peer_id`` field (readable
    without the passphrase); None if there is no usable key file."""
    try:
        document = json.loads((data_dir / KEY_FILE_NAME).read_text(encoding="utf-8"))
        return peer_id_from_str(str(document["peer_id"]))
    except (OSError, ValueError, KeyError, TypeError, InvalidPeerId):
        return None


__all__ = ["key_file_checks", "own_peer_id"]
