"""The key file: one character's Ed25519 seed on disk, optionally passphrase-encrypted.

A small JSON document, written atomically with mode 0600::

    {"format": "roomverse-key", "version": 1, "peer_id": "12D3KooW...",
     "encryption": "none", "seed": "<base64>"}

    {"format": "roomverse-key", "version": 1, "peer_id": "12D3KooW...",
     "encryption": "argon2id+secretbox",
     "kdf": {"salt": "<base64>", "opslimit": 3, "memlimit": 268435456},
     "box": "<base64 of nonce + ciphertext>"}

With a passphrase the seed exists on disk only inside the box: the key is Argon2id of
the passphrase (NFC-normalized), the box is XSalsa20-Poly1305 (``nacl.secret.SecretBox``).
``peer_id`` is public and stays readable, so tools can tell whose key it is without the
passphrase; on load it must match the key it holds.

Error messages name the path and the problem, never key material.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import stat
import unicodedata
from pathlib import Path
from typing import Any, Final, TypeVar

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from keys.errors import (
    CorruptKeyFile,
    InvalidPeerId,
    KeyFileError,
    KeyFileExists,
    KeyFileMissing,
    PassphraseRequired,
    WrongPassphrase,
)
from keys.identity import SEED_SIZE, Identity, peer_id_from_str

FORMAT: Final = "roomverse-key"
FORMAT_VERSION: Final = 1
ENCRYPTION_NONE: Final = "none"
ENCRYPTION_ARGON2ID: Final = "argon2id+secretbox"

_KDF = nacl.pwhash.argon2id
# A character's key lives for years and may be copied off the machine: pay ~0.5 s.
_OPSLIMIT: Final = _KDF.OPSLIMIT_MODERATE
_MEMLIMIT: Final = _KDF.MEMLIMIT_MODERATE
# Accept what a stronger setting may have written, but never let a damaged file make
# us allocate gigabytes or spin for minutes.
_MAX_OPSLIMIT: Final = 16
_MAX_MEMLIMIT: Final = 1024 * 1024 * 1024
_BOX_SIZE: Final = nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES + SEED_SIZE
_MAX_FILE_SIZE: Final = 64 * 1024

_T = TypeVar("_T")


def save_key(
    path: Path,
    identity: Identity,
    passphrase: str | None = None,
    *,
    overwrite: bool = False,
) -> None:
    """Write ``identity`` to ``path`` atomically, mode 0600, encrypted if ``passphrase``.

    Raises :class:`KeyFileExists` if ``path`` exists and not ``overwrite``;
    :class:`KeyFileError` if the file cannot be written.
    """
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "peer_id": identity.peer_id_str,
    }
    if passphrase is None:
        document["encryption"] = ENCRYPTION_NONE
        document["seed"] = _b64(identity.seed)
    else:
        salt = nacl.utils.random(_KDF.SALTBYTES)
        key = _derive(passphrase, salt, _OPSLIMIT, _MEMLIMIT)
        box = nacl.secret.SecretBox(key).encrypt(identity.seed)
        document["encryption"] = ENCRYPTION_ARGON2ID
        document["kdf"] = {"salt": _b64(salt), "opslimit": _OPSLIMIT, "memlimit": _MEMLIMIT}
        document["box"] = _b64(bytes(box))
    payload = (json.dumps(document, indent=2) + "\n").encode()
    _write_atomically(path, payload, overwrite=overwrite)


def load_key(path: Path, passphrase: str | None = None) -> Identity:
    """Read the identity in ``path``.

    Raises :class:`KeyFileMissing`, :class:`PassphraseRequired` (encrypted, no
    passphrase), :class:`WrongPassphrase`, :class:`CorruptKeyFile`, or
    :class:`KeyFileError` if the file cannot be read. A passphrase given for an
    unencrypted file is ignored. Loads even if others can read the file; see
    :func:`key_file_is_private`.
    """
    document = _read_document(path)
    if document.get("format") != FORMAT:
        raise CorruptKeyFile(f"{path}: not a RoomVerse key file")
    version = document.get("version")
    if type(version) is not int or version != FORMAT_VERSION:  # JSON true == 1 in Python
        raise CorruptKeyFile(f"{path}: unsupported key file version")
    try:
        peer_id = peer_id_from_str(_field(document, "peer_id", str, path))
    except InvalidPeerId:
        raise CorruptKeyFile(f"{path}: peer_id is not an Ed25519 PeerID") from None
    encryption = document.get("encryption")
    if encryption == ENCRYPTION_NONE:
        _expect_fields(document, {"format", "version", "peer_id", "encryption", "seed"}, path)
        seed = _unb64(_field(document, "seed", str, path), "seed", path)
    elif encryption == ENCRYPTION_ARGON2ID:
        _expect_fields(document, {"format", "version", "peer_id", "encryption", "kdf", "box"}, path)
        seed = _open_box(document, passphrase, path)
    else:
        raise CorruptKeyFile(f"{path}: unknown encryption")
    if len(seed) != SEED_SIZE:
        raise CorruptKeyFile(f"{path}: seed has the wrong length")
    identity = Identity.from_seed(seed)
    if identity.peer_id != peer_id:
        raise CorruptKeyFile(f"{path}: peer_id does not match the key")
    return identity


def load_or_create_key(path: Path, passphrase: str | None = None) -> tuple[Identity, bool]:
    """Load the identity in ``path``, or create and save a new one there.

    Returns ``(identity, created)``. Creates the parent directory with mode 0700 if it is
    missing (existing directories are left as they are).
    """
    try:
        return load_key(path, passphrase), False
    except KeyFileMissing:
        pass
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError(f"{path.parent}: cannot create directory ({exc.strerror})") from exc
    identity = Identity.generate()
    try:
        save_key(path, identity, passphrase)
    except KeyFileExists:
        # Another process created it between our load and save: theirs wins.
        return load_key(path, passphrase), False
    return identity, True


def key_file_is_private(path: Path) -> bool:
    """Tell whether only the owner can read or write ``path`` (no group/other bits)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise KeyFileMissing(f"{path}: no key file") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot stat key file ({exc.strerror})") from exc
    return mode & (stat.S_IRWXG | stat.S_IRWXO) == 0


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    # NFC so the same passphrase typed through different input methods gives the same key.
    secret = unicodedata.normalize("NFC", passphrase).encode()
    key: bytes = _KDF.kdf(
        nacl.secret.SecretBox.KEY_SIZE, secret, salt, opslimit=opslimit, memlimit=memlimit
    )
    return key


def _open_box(document: dict[str, Any], passphrase: str | None, path: Path) -> bytes:
    kdf = _field(document, "kdf", dict, path)
    if set(kdf) != {"salt", "opslimit", "memlimit"}:
        raise CorruptKeyFile(f"{path}: kdf must have exactly salt, opslimit, memlimit")
    salt = _unb64(_field(kdf, "salt", str, path), "kdf.salt", path)
    opslimit = _field(kdf, "opslimit", int, path)
    memlimit = _field(kdf, "memlimit", int, path)
    if len(salt) != _KDF.SALTBYTES:
        raise CorruptKeyFile(f"{path}: kdf.salt has the wrong length")
    if not _KDF.OPSLIMIT_MIN <= opslimit <= _MAX_OPSLIMIT:
        raise CorruptKeyFile(f"{path}: kdf.opslimit out of range")
    if not _KDF.MEMLIMIT_MIN <= memlimit <= _MAX_MEMLIMIT:
        raise CorruptKeyFile(f"{path}: kdf.memlimit out of range")
    box = _unb64(_field(document, "box", str, path), "box", path)
    if len(box) != _BOX_SIZE:
        raise CorruptKeyFile(f"{path}: box has the wrong length")
    if passphrase is None:
        raise PassphraseRequired(f"{path}: key file is encrypted; a passphrase is required")
    key = _derive(passphrase, salt, opslimit, memlimit)
    try:
        seed: bytes = nacl.secret.SecretBox(key).decrypt(box)
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase(
            f"{path}: wrong passphrase (or the encrypted key was altered)"
        ) from None
    return seed


def _read_document(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            raw = file.read(_MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise KeyFileMissing(f"{path}: no key file") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({exc.strerror})") from exc
    if len(raw) > _MAX_FILE_SIZE:
        raise CorruptKeyFile(f"{path}: too large to be a key file")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        # from None: a JSON error quotes the document, which holds the seed.
        raise CorruptKeyFile(f"{path}: not valid JSON") from None
    if not isinstance(document, dict):
        raise CorruptKeyFile(f"{path}: not a JSON object")
    return document


def _field(document: dict[str, Any], name: str, kind: type[_T], path: Path) -> _T:
    value = document.get(name)
    # bool is an int subclass; a JSON true is never a valid number here.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CorruptKeyFile(f"{path}: field {name} is missing or has the wrong type")
    return value


def _expect_fields(document: dict[str, Any], names: set[str], path: Path) -> None:
    if set(document) != names:
        raise CorruptKeyFile(f"{path}: unexpected or missing fields")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, name: str, path: Path) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise CorruptKeyFile(f"{path}: field {name} is not valid base64") from None


def _write_atomically(path: Path, payload: bytes, *, overwrite: bool) -> None:
    directory = path.parent
    temp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        # O_EXCL with a random name: never write through a planted file or symlink.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file ({exc.strerror})") from exc
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask can only remove bits; make it exactly 0600
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        _publish(temp, path, overwrite=overwrite)
        _fsync_directory(directory)
    except KeyFileExists:
        raise
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot write key file ({exc.strerror})") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def _publish(temp: Path, path: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, path)
        return
    try:
        # link() fails if path exists, so two processes can never both "create" the key.
        os.link(temp, path)
    except FileExistsError:
        raise KeyFileExists(f"{path}: a key file already exists") from None
    except OSError:
        # Some filesystems have no hard links: fall back to check-then-replace.
        if path.exists():
            raise KeyFileExists(f"{path}: a key file already exists") from None
        os.replace(temp, path)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
