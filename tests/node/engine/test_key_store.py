"""Engine API keys at rest: encrypted under the character's seed, found in order, never shown."""

from __future__ import annotations

import logging
import os
import pickle
import stat
import traceback
from collections.abc import Iterator
from pathlib import Path

import nacl.secret
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from keys.errors import ConfigError, KeyFileError, KeyUsageError
from node.engine.errors import (
    EngineKeyStoreCorrupt,
    EngineKeyStoreError,
    EngineKeyStoreLocked,
)
from node.engine.key_store import KEY_STORE_FILE, KeyLookup, KeyOrigin, KeyStore, Secret
from node.engine.presets import KeySource

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
KEY = "sk-test-7d1e0c9b8a7f6e5d4c3b2a19"
OTHER_KEY = "sk-test-0123456789abcdefghij"


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / KEY_STORE_FILE, SEED)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that would leave new files world-readable: the store must not care."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_roundtrip_and_listing(store: KeyStore) -> None:
    assert store.get("cloud") is None
    assert store.names() == []
    store.set("cloud", KEY)
    store.set("backup", Secret(OTHER_KEY))
    assert store.names() == ["backup", "cloud"]
    found = store.get("cloud")
    assert found is not None and found.reveal() == KEY
    # Another instance (a restart) reads the same file.
    again = KeyStore(store.path, SEED)
    assert again.get("backup") == Secret(OTHER_KEY)
    store.set("cloud", OTHER_KEY)
    assert again.get("cloud") == Secret(OTHER_KEY)
    assert store.delete("cloud") is True
    assert store.delete("cloud") is False
    assert again.names() == ["backup"]


def test_file_is_private_and_holds_no_plaintext(store: KeyStore, loose_umask: None) -> None:
    store.set("cloud", KEY)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    data = store.path.read_bytes()
    assert KEY.encode() not in data
    assert b"cloud" not in data  # engine names are inside the box too
    assert data.startswith(b"RVEK\x01")
    store.set("second", OTHER_KEY)  # rewritten atomically, still private
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert [p.name for p in store.path.parent.iterdir()] == [KEY_STORE_FILE]


def test_another_seed_cannot_read_it(store: KeyStore) -> None:
    store.set("cloud", KEY)
    other = KeyStore(store.path, OTHER_SEED)
    with pytest.raises(EngineKeyStoreLocked) as info:
        other.get("cloud")
    assert isinstance(info.value, EngineKeyStoreError)
    assert isinstance(info.value, KeyFileError)
    assert "another character's key" in str(info.value)
    with pytest.raises(EngineKeyStoreLocked):
        other.set("cloud", OTHER_KEY)  # refuses to overwrite keys it cannot read
    assert store.get("cloud") == Secret(KEY)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-1] + bytes([data[-1] ^ 1]), id="last-byte"),
        pytest.param(lambda data: data[:20] + bytes([data[20] ^ 0x80]) + data[21:], id="nonce"),
        pytest.param(lambda data: data[:40], id="truncated"),
        pytest.param(lambda data: data[:8], id="header-only"),
        pytest.param(lambda data: b"XXXX" + data[4:], id="magic"),
        pytest.param(lambda data: data[:4] + b"\x02" + data[5:], id="version"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_a_damaged_file_fails_cleanly(store: KeyStore, damage: object) -> None:
    store.set("cloud", KEY)
    store.path.write_bytes(damage(store.path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(EngineKeyStoreCorrupt) as info:
        store.get("cloud")
    assert str(store.path) in str(info.value)
    assert KEY not in "".join(traceback.format_exception(info.value))


def test_box_key_is_hkdf_of_the_seed_and_foreign_contents_are_corrupt(store: KeyStore) -> None:
    # The derivation is part of the file format: pin it by sealing with it independently.
    box_key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"roomverse/engine-keys/v1/secretbox"
    ).derive(SEED)
    box = nacl.secret.SecretBox(box_key)
    store.set("cloud", KEY)
    header = store.path.read_bytes()[:13]
    store.path.write_bytes(header + bytes(box.encrypt(b'{"keys": {"mine": "sk-from-test"}}')))
    assert store.get("mine") == Secret("sk-from-test")
    # Right key, but not the document the store writes: still a clean error.
    for payload in (b"not json", b'["list"]', b'{"keys": {"a": 1}}', b'{"nokeys": {}}'):
        store.path.write_bytes(header + bytes(box.encrypt(payload)))
        with pytest.raises(EngineKeyStoreCorrupt):
            store.names()


def test_seed_must_be_32_bytes(tmp_path: Path) -> None:
    with pytest.raises(KeyUsageError):
        KeyStore(tmp_path / KEY_STORE_FILE, b"short")


def test_unwritable_directory_is_a_typed_error(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "missing-dir" / KEY_STORE_FILE, SEED)
    with pytest.raises(EngineKeyStoreError):
        store.set("cloud", KEY)


def test_keys_never_reach_logs_or_error_messages(
    store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store.set("cloud", KEY)
    secret = store.get("cloud")
    store.delete("cloud")
    assert "stored the API key of engine 'cloud'" in caplog.text
    texts = [caplog.text, repr(secret), str(secret), f"{secret}", f"{secret!r}", repr(store)]
    for bad in (KEY + "\n", " " + KEY, KEY + "\x00"):
        with pytest.raises(ConfigError) as info:
            Secret(bad)
        texts.append("".join(traceback.format_exception(info.value)))
    with pytest.raises(TypeError) as pickled:
        pickle.dumps(secret)
    texts.append(str(pickled.value))
    for text in texts:
        assert KEY not in text
        assert KEY[8:] not in text


def test_secret_shows_stars_and_compares_by_value() -> None:
    secret = Secret(KEY)
    assert repr(secret) == str(secret) == f"{secret}" == "***"
    assert repr([secret]) == "[***]"
    assert secret == Secret(KEY)
    assert secret != Secret(OTHER_KEY)
    assert secret != KEY  # never equal to a plain string, so it cannot be compared by accident
    with pytest.raises(TypeError):
        hash(secret)
    with pytest.raises(ConfigError):
        Secret("")


# --- lookup order -----------------------------------------------------------------------


def source(
    name: str = "cloud", *, env_var: str | None = None, default: str | None = None
) -> KeySource:
    return KeySource(
        store_name=name, env_var=env_var, override_env=name == "override", default=default
    )


def test_lookup_order_env_then_override_then_store_then_preset(store: KeyStore) -> None:
    store.set("cloud", KEY)
    store.set("override", KEY)
    env = {"CLOUD_KEY": OTHER_KEY, "ROOMVERSE_ENGINE_KEY": OTHER_KEY}
    keys = KeyLookup(env, store)

    found = keys.find(source(env_var="CLOUD_KEY", default="ollama"))
    assert (found.secret, found.origin) == (Secret(OTHER_KEY), KeyOrigin.ENV)
    found = keys.find(source("override"))
    assert (found.secret, found.origin) == (Secret(OTHER_KEY), KeyOrigin.OVERRIDE_ENV)
    # ROOMVERSE_ENGINE_KEY belongs to the override engine only.
    found = keys.find(source(default="ollama"))
    assert (found.secret, found.origin) == (Secret(KEY), KeyOrigin.STORE)
    found = keys.find(source("other", default="ollama"))
    assert (found.secret, found.origin) == (Secret("ollama"), KeyOrigin.PRESET)
    assert keys.find(source("other")).origin is KeyOrigin.NONE
    assert keys.find(source("other")).secret is None
    assert KeyLookup({}, None).find(source()).origin is KeyOrigin.NONE
    assert KEY not in repr(keys)


def test_unset_env_var_falls_through_with_a_warning(
    store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.set("cloud", KEY)
    found = KeyLookup({}, store).find(source(env_var="CLOUD_KEY"))
    assert found.origin is KeyOrigin.STORE
    assert "CLOUD_KEY is not set" in caplog.text
