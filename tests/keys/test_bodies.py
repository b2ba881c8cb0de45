"""Body schemas per kind, and the validator registry."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from keys import (
    PROTO_VISIT,
    Identity,
    KeyUsageError,
    SchemaError,
    SealError,
    register_body_validator,
    seal,
    validate_body,
    verify,
)

pytestmark = pytest.mark.usefixtures("free_form_bodies")


VALID: list[tuple[str, dict[str, Any]]] = [
    ("action", {"type": "speak", "text": "hi"}),
    ("action", {"type": "speak", "text": "x" * 2000, "visit": "v" * 64, "to": "t" * 128}),
    ("action", {"type": "move", "to": "garden"}),
    ("action", {"type": "look", "at": "the sea"}),
    ("action", {"type": "gesture", "name": "wave_hand"}),
    ("action", {"type": "gesture", "name": "wave", "to": "12D3KooWxyz"}),
    ("context", {"type": "text", "text": "y" * 8000}),
    ("context", {"type": "image", "mime": "image/webp", "data": b"\x00"}),
    ("context", {"type": "image", "mime": "image/gif", "data": bytes(196608), "alt": ""}),
    ("directory", {}),
    ("visit", {"anything": [1, {"nested": None}]}),
    ("mcp", {"jsonrpc": "2.0"}),
]

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("action", {}, "body.type"),
    ("action", {"type": "dance"}, "body.type"),
    ("action", {"type": 1}, "body.type"),
    ("action", {"type": "speak"}, "body.text"),
    ("action", {"type": "speak", "text": ""}, "body.text"),
    ("action", {"type": "speak", "text": "x" * 2001}, "body.text"),
    ("action", {"type": "speak", "text": b"hi"}, "body.text"),
    ("action", {"type": "speak", "text": "hi", "visit": "v" * 65}, "body.visit"),
    ("action", {"type": "speak", "text": "hi", "to": ""}, "body.to"),
    ("action", {"type": "speak", "text": "hi", "mood": "glad"}, "body.mood"),
    ("action", {"type": "move", "to": "t" * 129}, "body.to"),
    ("action", {"type": "move", "at": "x"}, "body.to"),
    ("action", {"type": "look", "at": ""}, "body.at"),
    ("action", {"type": "gesture", "name": "Wave"}, "body.name"),
    ("action", {"type": "gesture", "name": "wave", "to": ""}, "body.to"),
    ("action", {"type": "gesture", "name": "wave\n"}, "body.name"),
    ("action", {"type": "gesture", "name": "w" * 33}, "body.name"),
    ("context", {"type": "text", "text": "y" * 8001}, "body.text"),
    ("context", {"type": "video"}, "body.type"),
    ("context", {"type": "image", "mime": "image/svg+xml", "data": b"<svg/>"}, "body.mime"),
    ("context", {"type": "image", "mime": ["image/png"], "data": b"x"}, "body.mime"),
    ("context", {"type": "image", "mime": "image/png", "data": b""}, "body.data"),
    ("context", {"type": "image", "mime": "image/png", "data": "x"}, "body.data"),
    ("context", {"type": "image", "mime": "image/png", "data": bytes(196609)}, "body.data"),
    ("context", {"type": "image", "mime": "image/png", "data": b"x", "alt": "a" * 501}, "body.alt"),
    ("context", {"type": "image", "mime": "image/png"}, "body.data"),
]


@pytest.mark.parametrize(("kind", "body"), VALID)
def test_valid_bodies(kind: str, body: dict[str, Any]) -> None:
    validate_body(kind, body)


@pytest.mark.parametrize(("kind", "body", "field"), INVALID)
def test_invalid_bodies_name_the_field(kind: str, body: dict[str, Any], field: str) -> None:
    with pytest.raises(SchemaError, match=field.replace(".", r"\.")):
        validate_body(kind, body)


def test_unknown_kind_has_no_schema() -> None:
    with pytest.raises(SchemaError):
        validate_body("chat", {})


@pytest.fixture
def restore_visit_validator() -> Iterator[None]:
    previous = register_body_validator("visit", lambda body: None)
    yield
    register_body_validator("visit", previous)


@pytest.mark.usefixtures("restore_visit_validator")
def test_registered_validator_runs_in_seal_and_verify() -> None:
    def knock_only(body: Mapping[str, Any]) -> None:
        if body.get("t") != "knock":
            raise SchemaError("body.t: must be knock")

    register_body_validator("visit", knock_only)
    identity = Identity.generate()
    good = seal(identity, kind="visit", channel=PROTO_VISIT, seq=1, ts_ms=5, body={"t": "knock"})
    assert verify(good, channel=PROTO_VISIT, now_ms=5).body["t"] == "knock"
    with pytest.raises(SealError, match=r"body\.t") as caught:
        seal(identity, kind="visit", channel=PROTO_VISIT, seq=1, ts_ms=5, body={"t": "x"})
    assert caught.value.reason == "schema"


@pytest.mark.usefixtures("restore_visit_validator")
def test_buggy_validator_becomes_schema_error() -> None:
    def buggy(body: Mapping[str, Any]) -> None:
        raise KeyError("oops")

    register_body_validator("visit", buggy)
    with pytest.raises(SchemaError, match="validator failed"):
        validate_body("visit", {})


@pytest.mark.parametrize("kind", ["action", "context", "chat"])
def test_builtin_and_unknown_kinds_cannot_be_replaced(kind: str) -> None:
    with pytest.raises(KeyUsageError):
        register_body_validator(kind, lambda body: None)
