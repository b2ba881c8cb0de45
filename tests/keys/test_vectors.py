"""Golden vectors: envelope bytes on disk pin the wire format.

Regenerate (only when the format changes on purpose) with::

    REGENERATE_VECTORS=1 pytest tests/test_keys_vectors.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from keys import (
    DOMAIN,
    TOPIC_ACTIONS,
    TOPIC_CONTEXTS,
    EnvelopeError,
    Identity,
    seal,
    verify,
)

VECTORS_DIR = Path(__file__).parent / "vectors"
SIDECAR = VECTORS_DIR / "envelopes.json"
REGENERATE = os.environ.get("REGENERATE_VECTORS") == "1"
SEED = bytes(range(32))
IDENTITY = Identity.from_seed(SEED)
TS = 1_700_000_000_000
# A valid 1x1 red PNG (69 bytes).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c49444154789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)

VECTORS: list[dict[str, Any]] = [
    {
        "name": "envelope_action_speak",
        "kind": "action",
        "channel": TOPIC_ACTIONS,
        "seq": 1,
        "ts_ms": TS,
        "body": {"type": "speak", "text": "Hello, neighbour! こんにちは 👋", "visit": "v-0001"},
    },
    {
        "name": "envelope_action_gesture",
        "kind": "action",
        "channel": TOPIC_ACTIONS,
        "seq": 2,
        "ts_ms": TS + 1500,
        "body": {"type": "gesture", "name": "wave_hand"},
    },
    {
        "name": "envelope_context_text",
        "kind": "context",
        "channel": TOPIC_CONTEXTS,
        "seq": 300,
        "ts_ms": TS + 60_000,
        "body": {"type": "text", "text": "The tea room smells of jasmine.\nIt is raining."},
    },
    {
        "name": "envelope_context_image",
        "kind": "context",
        "channel": TOPIC_CONTEXTS,
        "seq": 70_000,
        "ts_ms": TS + 120_000,
        "body": {"type": "image", "mime": "image/png", "data": PNG, "alt": "one red pixel"},
    },
]
IDS = [vector["name"] for vector in VECTORS]


def sealed(vector: dict[str, Any]) -> bytes:
    return seal(
        IDENTITY,
        kind=vector["kind"],
        channel=vector["channel"],
        seq=vector["seq"],
        ts_ms=vector["ts_ms"],
        body=vector["body"],
    )


def json_body(body: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {"$base64": base64.b64encode(value).decode()} if isinstance(value, bytes) else value
        for key, value in body.items()
    }


def sidecar() -> dict[str, Any]:
    """Everything another implementation needs to reproduce the files."""
    entries = []
    for vector in VECTORS:
        wire = sealed(vector)
        entries.append(
            {
                "file": f"{vector['name']}.bin",
                "kind": vector["kind"],
                "channel": vector["channel"],
                "seq": vector["seq"],
                "ts_ms": vector["ts_ms"],
                "body": json_body(vector["body"]),
                "signature_hex": verify(
                    wire, channel=vector["channel"], now_ms=vector["ts_ms"]
                ).sig.hex(),
                "sha256": hashlib.sha256(wire).hexdigest(),
                "size": len(wire),
            }
        )
    return {
        "comment": "RoomVerse envelope v1 golden vectors; see README.md",
        "seed_hex": SEED.hex(),
        "public_key_hex": IDENTITY.public_key.hex(),
        "peer_id": IDENTITY.peer_id_str,
        "domain_hex": DOMAIN.hex(),
        "vectors": entries,
    }


@pytest.mark.skipif(not REGENERATE, reason="set REGENERATE_VECTORS=1 to rewrite the vectors")
def test_regenerate_vectors() -> None:
    VECTORS_DIR.mkdir(exist_ok=True)
    for vector in VECTORS:
        (VECTORS_DIR / f"{vector['name']}.bin").write_bytes(sealed(vector))
    SIDECAR.write_text(json.dumps(sidecar(), indent=2, ensure_ascii=False) + "\n")


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_sealing_reproduces_the_file(vector: dict[str, Any]) -> None:
    assert sealed(vector) == (VECTORS_DIR / f"{vector['name']}.bin").read_bytes()


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_file_verifies(vector: dict[str, Any]) -> None:
    wire = (VECTORS_DIR / f"{vector['name']}.bin").read_bytes()
    verified = verify(
        wire, channel=vector["channel"], now_ms=vector["ts_ms"], transport_peer=IDENTITY.peer_id
    )
    assert verified.body == vector["body"]
    assert (verified.kind, verified.seq, verified.ts_ms) == (
        vector["kind"],
        vector["seq"],
        vector["ts_ms"],
    )
    assert verified.sender_str == IDENTITY.peer_id_str


def test_sidecar_matches() -> None:
    assert json.loads(SIDECAR.read_text()) == sidecar()


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_every_single_bit_flip_fails(vector: dict[str, Any]) -> None:
    wire = (VECTORS_DIR / f"{vector['name']}.bin").read_bytes()
    for index in range(len(wire)):
        for bit in range(8):
            tampered = bytearray(wire)
            tampered[index] ^= 1 << bit
            with pytest.raises(EnvelopeError):
                verify(bytes(tampered), channel=vector["channel"], now_ms=vector["ts_ms"])
