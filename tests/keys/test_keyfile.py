"""Key files: atomic 0600 writes, encryption, and typed, key-free errors."""

from __future__ import annotations

import base64
import json
import os
import stat
import traceback
from pathlib import Path

import pytest

from keys import (
    CorruptKeyFile,
    Identity,
    KeyFileError,
    KeyFileExists,
    KeyFileMissing,
    PassphraseRequired,
    WrongPassphrase,
    key_file_is_private,
    load_key,
    load_or_create_key,
    save_key,
)

SEED = bytes(range(100, 132))
IDENTITY = Identity.from_seed(SEED)
PASSPHRASE = "correct horse battery staple"
SECRET_FORMS = (SEED.hex(), base64.b64encode(SEED).decode(), repr(SEED))


def assert_no_key_material(error: BaseException) -> None:
    text = "".join(traceback.format_exception(error))
    for form in SECRET_FORMS:
        assert form not in text


@pytest.fixture(scope="module")
def encrypted_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of one encrypted key file (the KDF is deliberately slow: make it once)."""
    path = tmp_path_factory.mktemp("enc") / "key.json"
    save_key(path, IDENTITY, PASSPHRASE)
    return path.read_bytes()


def test_plain_round_trip_is_private_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    save_key(path, IDENTITY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["key.json"]  # no temp file left behind
    assert key_file_is_private(path)
    document = json.loads(path.read_text())
    assert document["format"] == "roomverse-key"
    assert document["version"] == 1
    assert document["encryption"] == "none"
    assert document["peer_id"] == IDENTITY.peer_id_str
    assert load_key(path) == IDENTITY
    assert load_key(path).seed == SEED
    assert load_key(path, "ignored for a plain file") == IDENTITY


def test_mode_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o000)
    try:
        save_key(tmp_path / "key.json", IDENTITY)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "key.json").stat().st_mode) == 0o600


def test_readable_by_others_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    save_key(path, IDENTITY)
    path.chmod(0o644)
    assert not key_file_is_private(path)
    assert load_key(path) == IDENTITY


def test_existing_file_is_kept_unless_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    save_key(path, IDENTITY)
    other = Identity.generate()
    with pytest.raises(KeyFileExists):
        save_key(path, other)
    assert load_key(path) == IDENTITY
    save_key(path, other, overwrite=True)
    assert load_key(path) == other
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["key.json"]


def test_encrypted_round_trip(tmp_path: Path, encrypted_file: bytes) -> None:
    text = encrypted_file.decode()
    for form in SECRET_FORMS:
        assert form not in text
    document = json.loads(text)
    assert document["encryption"] == "argon2id+secretbox"
    assert document["peer_id"] == IDENTITY.peer_id_str
    path = tmp_path / "key.json"
    path.write_bytes(encrypted_file)
    assert load_key(path, PASSPHRASE) == IDENTITY


def test_passphrase_required(tmp_path: Path, encrypted_file: bytes) -> None:
    path = tmp_path / "key.json"
    path.write_bytes(encrypted_file)
    with pytest.raises(PassphraseRequired) as caught:
        load_key(path)
    assert_no_key_material(caught.value)


def test_wrong_passphrase(tmp_path: Path, encrypted_file: bytes) -> None:
    path = tmp_path / "key.json"
    path.write_bytes(encrypted_file)
    with pytest.raises(WrongPassphrase) as caught:
        load_key(path, PASSPHRASE + "!")
    assert_no_key_material(caught.value)
    assert str(caught.value).count("\n") == 0


def test_passphrase_is_unicode_normalized(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    save_key(path, IDENTITY, "caf\u00e9")  # é as one code point
    assert load_key(path, "cafe\u0301") == IDENTITY  # e + combining accent


def test_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyFileMissing):
        load_key(tmp_path / "nope.json")
    with pytest.raises(KeyFileMissing):
        key_file_is_private(tmp_path / "nope.json")


def test_directory_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        load_key(tmp_path)


def test_every_truncation_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    save_key(path, IDENTITY)
    whole = path.read_bytes()
    stripped = whole.rstrip()
    for size in range(len(stripped)):
        path.write_bytes(whole[:size])
        with pytest.raises(CorruptKeyFile) as caught:
            load_key(path)
        assert_no_key_material(caught.value)


def test_truncated_encrypted_file_is_corrupt(tmp_path: Path, encrypted_file: bytes) -> None:
    path = tmp_path / "key.json"
    for size in range(0, len(encrypted_file) - 3, 7):
        path.write_bytes(encrypted_file[:size])
        with pytest.raises(CorruptKeyFile):
            load_key(path, PASSPHRASE)


def _plain_document() -> dict[str, object]:
    return {
        "format": "roomverse-key",
        "version": 1,
        "peer_id": IDENTITY.peer_id_str,
        "encryption": "none",
        "seed": base64.b64encode(SEED).decode(),
    }


@pytest.mark.parametrize(
    "change",
    [
        {"format": "other"},
        {"version": 2},
        {"version": True},
        {"peer_id": Identity.generate().peer_id_str},
        {"peer_id": "not a peer id"},
        {"peer_id": 5},
        {"encryption": "rot13"},
        {"seed": base64.b64encode(SEED[:31]).decode()},
        {"seed": base64.b64encode(SEED + b"\x00").decode()},
        {"seed": SEED.hex()},
        {"seed": "%%%"},
        {"seed": None},
        {"extra": 1},
    ],
)
def test_garbled_fields_are_corrupt(tmp_path: Path, change: dict[str, object]) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps({**_plain_document(), **change}))
    with pytest.raises(CorruptKeyFile) as caught:
        load_key(path)
    assert_no_key_material(caught.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"[]", b"null", b"\xff\xfe", b"{" * 100_000, b"[" * 10_000, b" " * 70_000],
)
def test_non_documents_are_corrupt(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key.json"
    path.write_bytes(content)
    with pytest.raises(CorruptKeyFile):
        load_key(path)


@pytest.mark.parametrize(
    "change",
    [
        {"memlimit": 2**40},
        {"opslimit": 1000},
        {"opslimit": "3"},
        {"salt": base64.b64encode(b"short").decode()},
        {"pepper": 1},
    ],
)
def test_garbled_kdf_is_corrupt_before_deriving(
    tmp_path: Path, encrypted_file: bytes, change: dict[str, object]
) -> None:
    document = json.loads(encrypted_file)
    document["kdf"] = {**document["kdf"], **change}
    path = tmp_path / "key.json"
    path.write_text(json.dumps(document))
    with pytest.raises(CorruptKeyFile):
        load_key(path, PASSPHRASE)


def test_load_or_create(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "key.json"
    identity, created = load_or_create_key(path)
    assert created
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_key(path)
    assert (again, created_again) == (identity, False)


def test_load_or_create_does_not_hide_corruption(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text("{}")
    with pytest.raises(CorruptKeyFile):
        load_or_create_key(path)
    assert path.read_text() == "{}"
