"""Body schemas per kind, and how a caller says which kinds it accepts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from keys import (
    BODIES,
    PROTO_VISIT,
    Identity,
    KeyUsageError,
    SchemaError,
    SealError,
    join_bodies,
    seal,
    validate_body,
    verify,
)
from tests.support.bodies import free_form

FREE = free_form("directory", "visit", "mcp")


VALID: list[tuple[str, dict[str, Any]]] = [
    ("action", {"type": "speak", "text": "hi"}),
    ("action", {"type": "speak", "text": "x" * 2000, "visit": "v" * 64, "to": "t" * 128}),
    ("action", {"type": "move", "to": "garden"}),
    ("action", {"type": "look", "at": "the sea"}),
    ("action", {"type": "gesture", "name": "wave_hand"}),
    ("action", {"type": "gesture", "name": "wave", "to": "12D3KooWxyz"}),
    ("context", {"type": "text", "text": "y" * 8000}),
    ("context", {"type": "text", "text": "rain tonight", "to": "*"}),
    ("context", {"type": "text", "text": "hi", "to": "12D3KooWxyz"}),
    ("context", {"type": "image", "mime": "image/png", "data": b"\x00", "to": "*"}),
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
    ("context", {"type": "text", "text": "hi", "to": ""}, "body.to"),
    ("context", {"type": "text", "text": "hi", "to": 7}, "body.to"),
    ("context", {"type": "text", "text": "hi", "to": "x" * 129}, "body.to"),
    ("context", {"type": "text", "text": "hi", "from": "me"}, "body.from"),
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
    validate_body(kind, body, FREE)


@pytest.mark.parametrize(("kind", "body", "field"), INVALID)
def test_invalid_bodies_name_the_field(kind: str, body: dict[str, Any], field: str) -> None:
    with pytest.raises(SchemaError, match=field.replace(".", r"\.")):
        validate_body(kind, body)


def test_unknown_kind_has_no_schema() -> None:
    with pytest.raises(SchemaError):
        validate_body("chat", {}, FREE)


@pytest.mark.parametrize("kind", ["directory", "visit", "mcp"])
def test_a_kind_without_a_validator_is_refused(kind: str) -> None:
    with pytest.raises(SchemaError, match=f"{kind} bodies are not accepted"):
        validate_body(kind, {})
    with pytest.raises(SchemaError, match="action bodies are not accepted"):
        validate_body("action", {"type": "speak", "text": "hi"}, {})


def test_the_validator_passed_runs_in_seal_and_verify() -> None:
    def knock_only(body: Mapping[str, Any]) -> None:
        if body.get("t") != "knock":
            raise SchemaError("body.t: must be knock")

    knocks = join_bodies({"visit": knock_only})
    identity = Identity.generate()
    good = seal(
        identity,
        kind="visit",
        channel=PROTO_VISIT,
        seq=1,
        ts_ms=5,
        body={"t": "knock"},
        bodies=knocks,
    )
    assert verify(good, channel=PROTO_VISIT, now_ms=5, bodies=knocks).body["t"] == "knock"
    with pytest.raises(SealError, match=r"body\.t") as caught:
        seal(
            identity,
            kind="visit",
            channel=PROTO_VISIT,
            seq=1,
            ts_ms=5,
            body={"t": "x"},
            bodies=knocks,
        )
    assert caught.value.reason == "schema"
    # The same envelope, verified by a path that takes no visit bodies.
    with pytest.raises(SchemaError, match="visit bodies are not accepted"):
        verify(good, channel=PROTO_VISIT, now_ms=5)
    with pytest.raises(SealError) as caught:
        seal(identity, kind="visit", channel=PROTO_VISIT, seq=1, ts_ms=5, body={"t": "knock"})
    assert caught.value.reason == "schema"


def test_buggy_validator_becomes_schema_error() -> None:
    def buggy(body: Mapping[str, Any]) -> None:
        raise KeyError("oops")

    with pytest.raises(SchemaError, match="validator failed"):
        validate_body("visit", {}, {"visit": buggy})


def test_join_bodies_is_frozen_and_refuses_unknown_or_clashing_kinds() -> None:
    joined = join_bodies(BODIES, {"visit": validate_nothing}, {"visit": validate_nothing})
    assert set(joined) == {"action", "context", "visit"}
    with pytest.raises(TypeError):
        joined["mcp"] = validate_nothing  # type: ignore[index]
    with pytest.raises(TypeError):
        BODIES["visit"] = validate_nothing  # type: ignore[index]
    with pytest.raises(KeyUsageError, match="chat"):
        join_bodies({"chat": validate_nothing})
    with pytest.raises(KeyUsageError, match="two validators"):
        join_bodies(BODIES, {"action": validate_nothing})


def validate_nothing(body: Mapping[str, Any]) -> None:
    """Accept any map."""


def test_importing_the_owners_of_other_kinds_changes_nothing() -> None:
    # They used to register their validators with keys on import: what verify() accepted
    # depended on what happened to be imported.
    import node.visits.messages
    import registry_crdt

    assert "directory" in registry_crdt.DIRECTORY_BODIES
    assert "visit" in node.visits.messages.VISIT_BODIES
    assert set(BODIES) == {"action", "context"}
    for kind in ("directory", "visit"):
        with pytest.raises(SchemaError):
            validate_body(kind, {})
