"""Engine API keys: kept encrypted at rest, found in a fixed order, never shown.

An owner who does not want a key in an environment variable can store it in the
character's data directory (``engine_keys.bin``). The file is sealed with a key derived
from the character's own Ed25519 seed, so it is useless without the character's key file
(which has its own passphrase option) and moving it to another character's data directory
fails loudly instead of decrypting to nonsense.

File layout: ``b"RVEK" | version (1 byte) | key id (8 bytes) | SecretBox(nonce | box)``,
the box holding ``{"keys": {engine name: key}}`` as JSON. The key id is derived from the
seed separately from the box key, so a wrong seed (:class:`EngineKeyStoreLocked`) is told
apart from a damaged file (:class:`EngineKeyStoreCorrupt`) without trying to decrypt.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, final

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys.errors import ConfigError, KeyFileError, KeyUsageError
from keys.keyfile import _write_atomically
from node.engine.errors import (
    EngineKeyStoreCorrupt,
    EngineKeyStoreError,
    EngineKeyStoreLocked,
)
from node.engine.presets import OVERRIDE_KEY_ENV, KeySource

log = logging.getLogger(__name__)

KEY_STORE_FILE: Final = "engine_keys.bin"
_MAGIC: Final = b"RVEK"
_VERSION: Final = 1
_KEY_ID_LEN: Final = 8
_HEADER_LEN: Final = len(_MAGIC) + 1 + _KEY_ID_LEN
# Domain separation: these derived keys must never equal anything else made from the seed.
_BOX_INFO: Final = b"roomverse/engine-keys/v1/secretbox"
_KEY_ID_INFO: Final = b"roomverse/engine-keys/v1/key-id"
_MAX_KEY_CHARS: Final = 4096


@final
class Secret:
    """A string that does not show itself: ``repr``, ``str`` and f-strings give ``***``.

    Holding keys in this type keeps them out of logs, tracebacks' locals summaries and
    error messages by default; only :meth:`reveal` gives the value, at the one place it
    is sent.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ConfigError("api_key", "must be a non-empty string")
        if len(value) > _MAX_KEY_CHARS or not value.isprintable() or value != value.strip():
            # It goes into an HTTP header: no control characters, no stray whitespace.
            raise ConfigError("api_key", "must be printable, without surrounding spaces")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __reduce__(self) -> Any:
        raise TypeError("Secret cannot be pickled")


class KeyStore:
    """Named API keys in one encrypted file, read and rewritten on every call.

    Re-reading each time lets an owner change a key with the CLI while no node holds a
    copy in a cache; the file is a few hundred bytes.
    """

    def __init__(self, path: Path, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise KeyUsageError("the key store needs the character's 32-byte Ed25519 seed")
        self.path = path
        self._box = nacl.secret.SecretBox(_derive(seed, _BOX_INFO, nacl.secret.SecretBox.KEY_SIZE))
        self._key_id = _derive(seed, _KEY_ID_INFO, _KEY_ID_LEN)

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r})"

    def get(self, name: str) -> Secret | None:
        value = self._read().get(name)
        return None if value is None else Secret(value)

    def set(self, name: str, key: str | Secret) -> None:
        secret = key if isinstance(key, Secret) else Secret(key)
        if not isinstance(name, str) or not name:
            raise ConfigError("engine", "an engine name is required")
        entries = self._read()
        entries[name] = secret.reveal()
        self._write(entries)
        log.info("stored the API key of engine %r in %s", name, self.path)

    def delete(self, name: str) -> bool:
        """Forget ``name``'s key; False if there was none."""
        entries = self._read()
        if entries.pop(name, None) is None:
            return False
        self._write(entries)
        log.info("deleted the API key of engine %r from %s", name, self.path)
        return True

    def names(self) -> list[str]:
        return sorted(self._read())

    def _read(self) -> dict[str, str]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise EngineKeyStoreError(f"{self.path}: cannot read ({exc.strerror})") from None
        if len(data) < _HEADER_LEN or data[: len(_MAGIC)] != _MAGIC:
            raise EngineKeyStoreCorrupt(f"{self.path}: not an engine key file")
        if data[len(_MAGIC)] != _VERSION:
            raise EngineKeyStoreCorrupt(f"{self.path}: unknown version {data[len(_MAGIC)]}")
        if not hmac.compare_digest(data[len(_MAGIC) + 1 : _HEADER_LEN], self._key_id):
            raise EngineKeyStoreLocked(
                f"{self.path}: written under another character's key; "
                "delete it and store the engine keys again"
            )
        try:
            plain = self._box.decrypt(data[_HEADER_LEN:])
        except nacl.exceptions.CryptoError:
            raise EngineKeyStoreCorrupt(f"{self.path}: damaged or altered") from None
        return _parse_entries(plain, self.path)

    def _write(self, entries: Mapping[str, str]) -> None:
        plain = json.dumps({"keys": dict(entries)}, sort_keys=True).encode()
        payload = _MAGIC + bytes([_VERSION]) + self._key_id + bytes(self._box.encrypt(plain))
        try:
            _write_atomically(self.path, payload, overwrite=True)
        except KeyFileError as exc:
            raise EngineKeyStoreError(str(exc)) from exc


def _derive(seed: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(seed)


def _parse_entries(plain: bytes, path: Path) -> dict[str, str]:
    try:
        document = json.loads(plain)
    except ValueError:
        raise EngineKeyStoreCorrupt(f"{path}: damaged contents") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in entries.items()
    ):
        raise EngineKeyStoreCorrupt(f"{path}: damaged contents")
    return entries


class KeyOrigin(StrEnum):
    """Where an engine's key came from, for ``roomverse status`` (never the key itself)."""

    ENV = "env"
    OVERRIDE_ENV = "override_env"
    STORE = "store"
    PRESET = "preset"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class FoundKey:
    secret: Secret | None
    origin: KeyOrigin


class KeyLookup:
    """Finds an engine's key: its ``api_key_env`` variable, then ``ROOMVERSE_ENGINE_KEY``
    (only for the command-line override engine), then the key store, then the preset's
    placeholder.

    The environment is passed in (not read from ``os.environ`` here) so that tests and the
    CLI decide what counts as the environment.
    """

    def __init__(self, env: Mapping[str, str], store: KeyStore | None = None) -> None:
        self._env = env
        self._store = store

    def __repr__(self) -> str:
        return f"KeyLookup(store={self._store!r})"

    def find(self, source: KeySource) -> FoundKey:
        if source.env_var:
            value = self._env.get(source.env_var)
            if value:
                return FoundKey(Secret(value), KeyOrigin.ENV)
            log.warning(
                "engine %r: environment variable %s is not set; looking elsewhere for its key",
                source.store_name,
                source.env_var,
            )
        if source.override_env and self._env.get(OVERRIDE_KEY_ENV):
            return FoundKey(Secret(self._env[OVERRIDE_KEY_ENV]), KeyOrigin.OVERRIDE_ENV)
        if self._store is not None:
            stored = self._store.get(source.store_name)
            if stored is not None:
                return FoundKey(stored, KeyOrigin.STORE)
        if source.default is not None:
            return FoundKey(Secret(source.default), KeyOrigin.PRESET)
        return FoundKey(None, KeyOrigin.NONE)
