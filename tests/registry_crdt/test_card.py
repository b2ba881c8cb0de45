"""The name card: strict parsing of untrusted cards, signatures, digest, JSON round trip."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry_crdt import (
    BadEntrySignature,
    DirectoryError,
    DirectoryUsageError,
    EntryTooLarge,
    IconLink,
    InlineIcon,
    InvalidField,
    NameCard,
    Souvenir,
    UnknownField,
    UnsupportedVersion,
    card_digest,
    card_from_dict,
    card_to_dict,
    sign_card,
    verify_card,
)
from registry_crdt.testing import identities, sample_card

MINA, KAI = identities(2, seed=3)


def signed(**changes: Any) -> NameCard:
    return sign_card(MINA, sample_card(MINA.peer_id_str, **changes))


def wire(**changes: Any) -> dict[str, Any]:
    return card_to_dict(signed(**changes))


def test_round_trip_through_json_is_exact() -> None:
    card = signed(
        icon=InlineIcon(mime="image/png", data=b"\x89PNG" + bytes(100)),
        souvenirs=(Souvenir(name="weather", description="Today's sky"),),
    )
    back = card_from_dict(json.loads(json.dumps(card_to_dict(card))))
    assert back == card
    assert card_digest(back) == card_digest(card)
    verify_card(back, MINA.peer_id)


def test_signature_binds_the_signer_and_every_field() -> None:
    card = signed()
    with pytest.raises(BadEntrySignature):
        verify_card(card, KAI.peer_id)
    with pytest.raises(BadEntrySignature):
        verify_card(replace(card, name="Impostor"), MINA.peer_id)
    with pytest.raises(BadEntrySignature):
        verify_card(replace(card, signature="zz"), MINA.peer_id)


def test_digest_changes_with_content() -> None:
    assert card_digest(signed()) != card_digest(signed(description="other"))


def test_sign_card_refuses_what_receivers_refuse() -> None:
    with pytest.raises(DirectoryUsageError) as caught:
        signed(description="x" * 281)
    assert caught.value.reason == "invalid_field"
    with pytest.raises(DirectoryUsageError):
        signed(tags=("a", "a"))


def mutate(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def apply(card: dict[str, Any]) -> None:
        target = card
        for name in parents:
            target = target[name]
        target[last] = value

    return apply


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def apply(card: dict[str, Any]) -> None:
        target = card
        for name in parents:
            target = target[name]
        del target[last]

    return apply


BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing name", drop("name"), "card.name"),
    ("empty name", mutate("name", ""), "card.name"),
    ("name too long", mutate("name", "n" * 65), "card.name"),
    ("name padded", mutate("name", " Mina"), "card.name"),
    ("name newline", mutate("name", "Mi\nna"), "card.name"),
    ("name bidi override", mutate("name", "Mina\u202egnp.exe"), "card.name"),
    ("name not str", mutate("name", b"Mina"), "card.name"),
    ("description 281", mutate("description", "d" * 281), "card.description"),
    ("description NUL", mutate("description", "a\x00b"), "card.description"),
    ("id not a PeerID", mutate("id", "QmNotAnEd25519Key"), "card.id"),
    ("id bytes", mutate("id", MINA.peer_id), "card.id"),
    ("version empty", mutate("version", ""), "card.version"),
    ("version spaces", mutate("version", "1 2"), "card.version"),
    ("updatedAt negative", mutate("updatedAt", -1), "card.updatedAt"),
    ("updatedAt float", mutate("updatedAt", 1.5), "card.updatedAt"),
    ("updatedAt bool", mutate("updatedAt", True), "card.updatedAt"),
    ("personality long", mutate("persona.personality", "p" * 1001), "card.persona.personality"),
    ("greeting long", mutate("persona.greeting", "g" * 281), "card.persona.greeting"),
    ("language tag", mutate("persona.languages", ["english!"]), "card.persona.languages[0]"),
    ("too many languages", mutate("persona.languages", ["en"] * 9), "card.persona.languages"),
    ("repeated tag", mutate("tags", ["a", "a"]), "card.tags"),
    ("too many tags", mutate("tags", [f"t{i}" for i in range(17)]), "card.tags"),
    ("empty tag", mutate("tags", [""]), "card.tags[0]"),
    ("tags not a list", mutate("tags", "a,b"), "card.tags"),
    ("icon url scheme", mutate("icon", {"url": "ftp://x/i.png", "sha256": "0" * 64}), "card.icon"),
    ("icon hash", mutate("icon", {"url": "https://x/i.png", "sha256": "0" * 63}), "card.icon"),
    ("icon mime", mutate("icon", {"mime": "image/svg+xml", "data": "AAAA"}), "card.icon.mime"),
    ("icon not base64", mutate("icon", {"mime": "image/png", "data": "!!!!"}), "card.icon.data"),
    (
        "icon base64 with newline",
        mutate("icon", {"mime": "image/png", "data": "AAAA\nAAAA"}),
        "card.icon.data",
    ),
    (
        "icon over 8 KiB",
        mutate("icon", {"mime": "image/png", "data": base64.b64encode(bytes(8193)).decode()}),
        "card.icon.data",
    ),
    ("icon empty", mutate("icon", {"mime": "image/png", "data": ""}), "card.icon.data"),
    ("multiaddr", mutate("interfaces.libp2p", ["ip4/1.2.3.4"]), "card.interfaces.libp2p[0]"),
    ("multiaddr space", mutate("interfaces.libp2p", ["/ip4/1 2"]), "card.interfaces.libp2p[0]"),
    ("http url", mutate("interfaces.http", "javascript:alert(1)"), "card.interfaces.http"),
    ("action", mutate("capabilities.actions", ["dance"]), "card.capabilities.actions[0]"),
    ("acceptsVisits", mutate("capabilities.acceptsVisits", 1), "card.capabilities.acceptsVisits"),
    ("mode", mutate("visitPolicy.mode", "closed"), "card.visitPolicy.mode"),
    ("maxMinutes 0", mutate("visitPolicy.maxMinutes", 0), "card.visitPolicy.maxMinutes"),
    ("maxTurns big", mutate("visitPolicy.maxTurns", 10**6), "card.visitPolicy.maxTurns"),
    ("visitsPerHour", mutate("visitPolicy.visitsPerHour", -1), "card.visitPolicy.visitsPerHour"),
    (
        "souvenir name",
        mutate(
            "souvenirs",
            [{"name": "rm -rf", "description": "", "readOnly": True, "schemaDigest": "0" * 32}],
        ),
        "card.souvenirs[0].name",
    ),
    ("signature", mutate("signature", "AB" * 64), "card.signature"),
    ("persona missing field", drop("persona.greeting"), "card.persona.greeting"),
]


@pytest.mark.parametrize(("case", "change", "field"), BAD, ids=[b[0] for b in BAD])
def test_invalid_fields_are_refused_naming_the_field(
    case: str, change: Callable[[dict[str, Any]], None], field: str
) -> None:
    card = wire()
    change(card)
    with pytest.raises(InvalidField) as caught:
        card_from_dict(card)
    assert caught.value.field.startswith(field), caught.value


@pytest.mark.parametrize(
    "where", ["", "persona.", "interfaces.", "capabilities.", "visitPolicy."], ids=repr
)
def test_unknown_fields_are_refused_at_every_level(where: str) -> None:
    card = wire()
    mutate(f"{where}extra", "smuggled")(card)
    with pytest.raises(UnknownField) as caught:
        card_from_dict(card)
    assert caught.value.reason == "unknown_field"
    assert caught.value.field == f"card.{where}extra"


def test_unknown_fields_in_icon_and_souvenir_are_refused() -> None:
    card = wire(icon=IconLink(url="https://x.example/i.png", sha256="ab" * 32))
    card["icon"]["alt"] = "x"
    with pytest.raises(UnknownField):
        card_from_dict(card)
    card = wire(souvenirs=(Souvenir(name="weather"),))
    card["souvenirs"][0]["dangerous"] = True
    with pytest.raises(UnknownField):
        card_from_dict(card)


def test_other_schema_version_is_unsupported_not_unknown() -> None:
    card = wire()
    card["schemaVersion"] = 2
    card["newField"] = 1
    with pytest.raises(UnsupportedVersion) as caught:
        card_from_dict(card)
    assert caught.value.reason == "unsupported_version"


def test_largest_fields_within_bounds_are_accepted_but_card_is_capped() -> None:
    big = wire(
        name="N" * 64,
        description="é" * 280,
        tags=tuple(f"{i:02d}" + "t" * 30 for i in range(16)),
        icon=InlineIcon(mime="image/gif", data=bytes(8192)),
    )
    card_from_dict(big)
    bigger = copy.deepcopy(big)
    bigger["persona"]["personality"] = "\U0001f600" * 1000  # 4 bytes each
    bigger["souvenirs"] = [
        {
            "name": f"tool{i}",
            "description": "\U0001f600" * 280,
            "readOnly": True,
            "schemaDigest": "0" * 32,
        }
        for i in range(16)
    ]
    with pytest.raises(EntryTooLarge) as caught:
        card_from_dict(bigger)
    assert caught.value.reason == "oversize"


FUZZ = settings(
    max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


@FUZZ
@given(json_values)
def test_any_value_is_refused_with_a_directory_error(value: Any) -> None:
    with pytest.raises(DirectoryError):
        card_from_dict(value)


WIRE = wire()


@FUZZ
@given(st.sampled_from(sorted(WIRE)), json_values)
def test_any_field_replacement_is_accepted_or_a_directory_error(name: str, value: Any) -> None:
    card = dict(WIRE)
    card[name] = value
    with contextlib.suppress(DirectoryError):  # either still valid, or refused as such
        card_from_dict(card)
