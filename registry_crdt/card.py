"""The name card: who a character is (DESIGN §4), also served as ``/manifest``.

Wire form: a map with exactly these fields, all JSON types (so the bridge serves it as
JSON and reads it back without loss)::

    schemaVersion 1 · id "12D3KooW..." · name · description (≤ 280) · version ·
    updatedAt (ms) · persona {personality, greeting, languages} · tags ·
    icon (null | {url, sha256} | {mime, data: base64 ≤ 8 KiB}) ·
    interfaces {libp2p: [multiaddr], http: null | URL} ·
    capabilities {actions, acceptsVisits, souvenirs} ·
    visitPolicy {mode: open|friends|ask-owner, maxMinutes, maxTurns, visitsPerHour} ·
    souvenirs [{name, description, readOnly, schemaDigest}] · signature (hex Ed25519)

Card text is untrusted: every field is checked for type, length and count, control and
bidirectional-override characters are refused, and so is any field not listed above
(at any depth). A card with another ``schemaVersion`` is refused as
``unsupported_version``, so new fields come with a new version, never silently.

``signature`` is Ed25519 by the entry's signer (the character, or the bridge vouching for
it) over ``CARD_DOMAIN + canonical(card without signature)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from keys import Identity, canonical, public_key_from_peer_id, verify_signature
from keys.bodies import ACTION_TYPES
from registry_crdt import _schema as check
from registry_crdt.errors import (
    BadEntrySignature,
    DirectoryError,
    DirectoryUsageError,
    EntryTooLarge,
    InvalidField,
    UnsupportedVersion,
)
from registry_crdt.limits import (
    CARD_SCHEMA_VERSION,
    MAX_CARD_BYTES,
    MAX_DESCRIPTION_CHARS,
    MAX_GREETING_CHARS,
    MAX_INLINE_ICON_BYTES,
    MAX_INTERFACE_ADDRS,
    MAX_LANGUAGES,
    MAX_NAME_CHARS,
    MAX_PERSONALITY_CHARS,
    MAX_SOUVENIR_NAME_CHARS,
    MAX_SOUVENIRS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_URL_CHARS,
    MAX_VERSION_CHARS,
    MAX_VISIT_MINUTES,
    MAX_VISIT_TURNS,
    MAX_VISITS_PER_HOUR,
    MAX_WALL_MS,
)

CARD_DOMAIN: Final = b"roomverse/card/v1\x00"
ICON_MIME_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
_VERSION: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]*")
_LANGUAGE: Final = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,3}")
_TOOL_NAME: Final = re.compile(r"[A-Za-z0-9_-]+")
_SCHEMA_DIGEST: Final = re.compile(r"[0-9a-f]{32}")
_MAX_ICON_B64_CHARS: Final = 4 * ((MAX_INLINE_ICON_BYTES + 2) // 3)
_SIGNATURE_HEX_BYTES: Final = 64
_UNSIGNED: Final = ""


class VisitMode(StrEnum):
    """Who may visit: anyone, characters the host likes, or whoever the owner approves."""

    OPEN = "open"
    FRIENDS = "friends"
    ASK_OWNER = "ask-owner"


@dataclass(frozen=True, slots=True, kw_only=True)
class Persona:
    """How the character speaks; untrusted text, always quoted when shown to an LLM."""

    personality: str = ""
    greeting: str = ""
    languages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class IconLink:
    """An icon fetched from ``url``; viewers must check it hashes to ``sha256`` (hex)."""

    url: str
    sha256: str


@dataclass(frozen=True, slots=True, kw_only=True)
class InlineIcon:
    """A small icon carried in the card itself (at most 8 KiB)."""

    mime: str
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Interfaces:
    """Where the character can be reached: libp2p multiaddrs, and an HTTP URL via a bridge."""

    libp2p: tuple[str, ...] = ()
    http: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What the character does: envelope action types, visits, souvenirs."""

    actions: tuple[str, ...] = ("speak",)
    accepts_visits: bool = True
    souvenirs: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VisitPolicy:
    """The host's rules for visitors."""

    mode: VisitMode = VisitMode.OPEN
    max_minutes: int = 10
    max_turns: int = 20
    visits_per_hour: int = 6


@dataclass(frozen=True, slots=True, kw_only=True)
class Souvenir:
    """An MCP tool the character lends to visitors."""

    name: str
    description: str = ""
    read_only: bool = True
    schema_digest: str = "0" * 32
    """The first 128 bits of sha256 of the tool's input schema as canonical JSON (hex):
    a partner can tell whether the schema it is offered is the one the card announced."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NameCard:
    """A character's name card. Build one, then :func:`sign_card` it (or :func:`make_entry`)."""

    id: str
    name: str
    description: str = ""
    version: str = "1"
    updated_at_ms: int = 0
    persona: Persona = field(default_factory=Persona)
    tags: tuple[str, ...] = ()
    icon: IconLink | InlineIcon | None = None
    interfaces: Interfaces = field(default_factory=Interfaces)
    capabilities: Capabilities = field(default_factory=Capabilities)
    visit_policy: VisitPolicy = field(default_factory=VisitPolicy)
    souvenirs: tuple[Souvenir, ...] = ()
    signature: str = _UNSIGNED
    schema_version: int = CARD_SCHEMA_VERSION


def card_to_dict(card: NameCard) -> dict[str, Any]:
    """Return the wire form of ``card`` (JSON types only; the inverse of card_from_dict)."""
    icon: dict[str, Any] | None
    if isinstance(card.icon, IconLink):
        icon = {"url": card.icon.url, "sha256": card.icon.sha256}
    elif isinstance(card.icon, InlineIcon):
        icon = {"mime": card.icon.mime, "data": base64.b64encode(card.icon.data).decode()}
    else:
        icon = None
    return {
        "schemaVersion": card.schema_version,
        "id": card.id,
        "name": card.name,
        "description": card.description,
        "version": card.version,
        "updatedAt": card.updated_at_ms,
        "persona": {
            "personality": card.persona.personality,
            "greeting": card.persona.greeting,
            "languages": list(card.persona.languages),
        },
        "tags": list(card.tags),
        "icon": icon,
        "interfaces": {"libp2p": list(card.interfaces.libp2p), "http": card.interfaces.http},
        "capabilities": {
            "actions": list(card.capabilities.actions),
            "acceptsVisits": card.capabilities.accepts_visits,
            "souvenirs": card.capabilities.souvenirs,
        },
        "visitPolicy": {
            "mode": str(card.visit_policy.mode.value),
            "maxMinutes": card.visit_policy.max_minutes,
            "maxTurns": card.visit_policy.max_turns,
            "visitsPerHour": card.visit_policy.visits_per_hour,
        },
        "souvenirs": [
            {
                "name": s.name,
                "description": s.description,
                "readOnly": s.read_only,
                "schemaDigest": s.schema_digest,
            }
            for s in card.souvenirs
        ],
        "signature": card.signature,
    }


_CARD_FIELDS: Final = (
    "schemaVersion",
    "id",
    "name",
    "description",
    "version",
    "updatedAt",
    "persona",
    "tags",
    "icon",
    "interfaces",
    "capabilities",
    "visitPolicy",
    "souvenirs",
    "signature",
)


def card_from_dict(value: Any, path: str = "card") -> NameCard:
    """Parse and check an untrusted card (decoded msgpack or JSON).

    Raises only :class:`~registry_crdt.errors.DirectoryError` subclasses, naming the
    field. Does not check the signature (that needs the signer: :func:`verify_card`).
    """
    if isinstance(value, dict):
        version = value.get("schemaVersion")
        if type(version) is int and version != CARD_SCHEMA_VERSION:
            raise UnsupportedVersion(f"{path}.schemaVersion {version} is not supported")
    card = check.fields(value, path, _CARD_FIELDS)
    check.integer(card["schemaVersion"], f"{path}.schemaVersion", 1, 1)
    check.peer_id_text(card["id"], f"{path}.id")
    name = check.text(card["name"], f"{path}.name", 1, MAX_NAME_CHARS)
    if name.strip() != name:
        raise InvalidField(f"{path}.name", "must not start or end with white space")
    result = NameCard(
        schema_version=CARD_SCHEMA_VERSION,
        id=card["id"],
        name=name,
        description=check.text(
            card["description"], f"{path}.description", 0, MAX_DESCRIPTION_CHARS, multiline=True
        ),
        version=check.pattern(
            card["version"], f"{path}.version", _VERSION, MAX_VERSION_CHARS, "a version string"
        ),
        updated_at_ms=check.integer(card["updatedAt"], f"{path}.updatedAt", 0, MAX_WALL_MS),
        persona=_persona(card["persona"], f"{path}.persona"),
        tags=_tags(card["tags"], f"{path}.tags"),
        icon=_icon(card["icon"], f"{path}.icon"),
        interfaces=_interfaces(card["interfaces"], f"{path}.interfaces"),
        capabilities=_capabilities(card["capabilities"], f"{path}.capabilities"),
        visit_policy=_visit_policy(card["visitPolicy"], f"{path}.visitPolicy"),
        souvenirs=_souvenirs(card["souvenirs"], f"{path}.souvenirs"),
        signature=check.hex_text(card["signature"], f"{path}.signature", _SIGNATURE_HEX_BYTES),
    )
    size = len(canonical.packb(card_to_dict(result)))
    if size > MAX_CARD_BYTES:
        raise EntryTooLarge(f"{path} is {size} bytes encoded, cap {MAX_CARD_BYTES}")
    return result


def schema_digest(schema: Mapping[str, Any]) -> str:
    """A souvenir's ``schemaDigest``: the first 128 bits of sha256 of its input schema as
    canonical JSON (sorted keys, no spaces, UTF-8), in hex."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def card_digest(card: NameCard) -> bytes:
    """Return the SHA-256 of the card's canonical encoding, signature included."""
    return hashlib.sha256(canonical.packb(card_to_dict(card))).digest()


def sign_card(identity: Identity, card: NameCard) -> NameCard:
    """Return ``card`` signed by ``identity``, after checking it as a receiver would.

    Raises :class:`DirectoryUsageError` (``reason`` as a receiver would report it) for a
    card that peers would refuse.
    """
    placeholder = replace(card, signature="0" * (2 * _SIGNATURE_HEX_BYTES))
    try:
        card_from_dict(card_to_dict(placeholder))
    except DirectoryError as exc:
        raise DirectoryUsageError(f"card refused: {exc}", reason=exc.reason) from exc
    except Exception as exc:  # a field of a type card_to_dict cannot encode
        raise DirectoryUsageError(f"card refused: {exc!r}", reason="invalid_field") from exc
    return replace(card, signature=identity.sign(_signing_input(card)).hex())


def verify_card(card: NameCard, signer: bytes) -> None:
    """Raise :class:`BadEntrySignature` unless ``card`` is signed by PeerID ``signer``."""
    try:
        signature = bytes.fromhex(card.signature)
    except ValueError:
        raise BadEntrySignature("card signature is not hex") from None
    if not verify_signature(public_key_from_peer_id(signer), _signing_input(card), signature):
        raise BadEntrySignature("card signature does not verify under the entry's signer")


def _signing_input(card: NameCard) -> bytes:
    unsigned = card_to_dict(card)
    del unsigned["signature"]
    return CARD_DOMAIN + canonical.packb(unsigned)


def _persona(value: Any, path: str) -> Persona:
    persona = check.fields(value, path, ("personality", "greeting", "languages"))
    languages = check.array(persona["languages"], f"{path}.languages", MAX_LANGUAGES)
    for i, language in enumerate(languages):
        check.pattern(language, f"{path}.languages[{i}]", _LANGUAGE, 35, "a BCP 47 language tag")
    check.unique(languages, f"{path}.languages")
    return Persona(
        personality=check.text(
            persona["personality"],
            f"{path}.personality",
            0,
            MAX_PERSONALITY_CHARS,
            multiline=True,
        ),
        greeting=check.text(
            persona["greeting"], f"{path}.greeting", 0, MAX_GREETING_CHARS, multiline=True
        ),
        languages=tuple(languages),
    )


def _tags(value: Any, path: str) -> tuple[str, ...]:
    tags = check.array(value, path, MAX_TAGS)
    for i, tag in enumerate(tags):
        check.text(tag, f"{path}[{i}]", 1, MAX_TAG_CHARS)
    check.unique(tags, path)
    return tuple(tags)


def _icon(value: Any, path: str) -> IconLink | InlineIcon | None:
    if value is None:
        return None
    if isinstance(value, dict) and "url" in value:
        link = check.fields(value, path, ("url", "sha256"))
        return IconLink(
            url=check.url(link["url"], f"{path}.url", MAX_URL_CHARS),
            sha256=check.hex_text(link["sha256"], f"{path}.sha256", 32),
        )
    inline = check.fields(value, path, ("mime", "data"))
    mime = check.one_of(inline["mime"], f"{path}.mime", ICON_MIME_TYPES)
    encoded = inline["data"]
    if type(encoded) is not str or not 1 <= len(encoded) <= _MAX_ICON_B64_CHARS:
        raise InvalidField(f"{path}.data", f"must be base64 of 1..{MAX_INLINE_ICON_BYTES} bytes")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidField(f"{path}.data", "is not base64") from None
    if base64.b64encode(data).decode() != encoded or not data:
        raise InvalidField(f"{path}.data", "must be canonical base64 (padded, no newlines)")
    if len(data) > MAX_INLINE_ICON_BYTES:
        raise InvalidField(f"{path}.data", f"must be at most {MAX_INLINE_ICON_BYTES} bytes")
    return InlineIcon(mime=mime, data=data)


def _interfaces(value: Any, path: str) -> Interfaces:
    interfaces = check.fields(value, path, ("libp2p", "http"))
    addrs = check.array(interfaces["libp2p"], f"{path}.libp2p", MAX_INTERFACE_ADDRS)
    for i, addr in enumerate(addrs):
        check.multiaddr(addr, f"{path}.libp2p[{i}]")
    check.unique(addrs, f"{path}.libp2p")
    http = interfaces["http"]
    if http is not None:
        check.url(http, f"{path}.http", MAX_URL_CHARS)
    return Interfaces(libp2p=tuple(addrs), http=http)


def _capabilities(value: Any, path: str) -> Capabilities:
    caps = check.fields(value, path, ("actions", "acceptsVisits", "souvenirs"))
    actions = check.array(caps["actions"], f"{path}.actions", len(ACTION_TYPES))
    for i, action in enumerate(actions):
        check.one_of(action, f"{path}.actions[{i}]", ACTION_TYPES)
    check.unique(actions, f"{path}.actions")
    return Capabilities(
        actions=tuple(actions),
        accepts_visits=check.boolean(caps["acceptsVisits"], f"{path}.acceptsVisits"),
        souvenirs=check.boolean(caps["souvenirs"], f"{path}.souvenirs"),
    )


def _visit_policy(value: Any, path: str) -> VisitPolicy:
    policy = check.fields(value, path, ("mode", "maxMinutes", "maxTurns", "visitsPerHour"))
    mode = check.one_of(policy["mode"], f"{path}.mode", [m.value for m in VisitMode])
    return VisitPolicy(
        mode=VisitMode(mode),
        max_minutes=check.integer(policy["maxMinutes"], f"{path}.maxMinutes", 1, MAX_VISIT_MINUTES),
        max_turns=check.integer(policy["maxTurns"], f"{path}.maxTurns", 1, MAX_VISIT_TURNS),
        visits_per_hour=check.integer(
            policy["visitsPerHour"], f"{path}.visitsPerHour", 0, MAX_VISITS_PER_HOUR
        ),
    )


def _souvenirs(value: Any, path: str) -> tuple[Souvenir, ...]:
    items = check.array(value, path, MAX_SOUVENIRS)
    result = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        souvenir = check.fields(item, where, ("name", "description", "readOnly", "schemaDigest"))
        result.append(
            Souvenir(
                name=check.pattern(
                    souvenir["name"],
                    f"{where}.name",
                    _TOOL_NAME,
                    MAX_SOUVENIR_NAME_CHARS,
                    "an MCP tool name ([A-Za-z0-9_-], 1..64)",
                ),
                description=check.text(
                    souvenir["description"], f"{where}.description", 0, MAX_DESCRIPTION_CHARS
                ),
                read_only=check.boolean(souvenir["readOnly"], f"{where}.readOnly"),
                schema_digest=check.pattern(
                    souvenir["schemaDigest"],
                    f"{where}.schemaDigest",
                    _SCHEMA_DIGEST,
                    32,
                    "128 bits of sha256 as 32 lowercase hex characters",
                ),
            )
        )
    check.unique([s.name for s in result], f"{path}[].name")
    return tuple(result)
