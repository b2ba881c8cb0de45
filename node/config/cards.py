"""Tavern character cards (SillyTavern's Character Card V2 and V3, and V1) in and out.

A card is untrusted input from the web: a JSON file, or a PNG whose ``tEXt`` chunk
``ccv3`` (V3) or ``chara`` (V1/V2) holds the card as base64 JSON. Reading one is bounded
(file size, chunk count and size, JSON depth, field lengths) and every problem is a
:class:`CardError` naming what is wrong. What a RoomVerse character has is taken:

========================  ===============================================================
card (``data.``)          character file
========================  ===============================================================
``name``                  ``name``
``description``           ``description`` (one line, cut at a word within 280 characters)
``personality``           ``persona.personality`` (the description when it has none)
``scenario``              ``persona.background``
``first_mes``             ``persona.greeting`` (``{{char}}`` becomes the name, ``{{user}}``
                          is dropped: a greeting is said to whoever visits)
``tags``                  ``tags`` (at most 16, 32 characters each)
the PNG itself            ``icon`` (the avatar file beside the character file, by sha256)
========================  ===============================================================

The rest of the card (example messages, system prompt, lorebook, alternate greetings,
creator notes, extensions...) is kept aside, not dropped: the caller writes it beside the
character file. The language is Japanese when the card's text is mostly Japanese.

Writing goes the other way into a V2 card (``chara_card_v2``, the V1 fields repeated at
the top level), as JSON or inside a PNG.
Sans-IO: bytes in, bytes and dicts out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Final

from keys.errors import ConfigError
from node.config.settings import MAX_DESCRIPTION, MAX_TAG_CHARS, MAX_TAGS, MAX_TEXT, CharacterConfig

MAX_CARD_BYTES: Final = 16 * 1024 * 1024
"""A card file (PNG avatars run to a few MB)."""
MAX_CARD_JSON_BYTES: Final = 2 * 1024 * 1024
"""The card's JSON (lorebooks can be long; anything past this is not a character)."""
MAX_CHUNKS: Final = 4096
MAX_NAME: Final = 64
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
CARD_KEYS: Final = (b"ccv3", b"chara")
"""PNG text keywords holding a card, preferred first (V3 carries the richer card)."""
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_USER: Final = re.compile(r"[ \t]*[,、]?[ \t]*\{\{user\}\}[ \t]*[,、]?", re.IGNORECASE)
_CHAR: Final = re.compile(r"\{\{char\}\}|<char>|<bot>", re.IGNORECASE)
_JAPANESE: Final = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
TAKEN: Final = frozenset({"name", "description", "personality", "scenario", "first_mes", "tags"})


class CardError(ConfigError):
    """A character card that cannot be read: ``field`` says where."""

    def __init__(self, message: str, field: str = "card") -> None:
        super().__init__(field, message)


@dataclass(frozen=True)
class ImportedCard:
    character: dict[str, Any]
    """The RoomVerse character file (JSON-able); its ``icon`` names no file yet."""
    avatar: bytes | None
    """The PNG the card came in (its avatar), None for a JSON card."""
    kept_aside: dict[str, Any]
    """The card's fields a RoomVerse character has no place for, and its spec."""


def read_card(data: bytes) -> dict[str, Any]:
    """The card in ``data`` (a PNG with a card chunk, or JSON) as a dict."""
    if len(data) > MAX_CARD_BYTES:
        raise CardError(f"the file is over {MAX_CARD_BYTES // (1024 * 1024)} MiB")
    if data.startswith(PNG_SIGNATURE):
        chunks = png_text(data)
        found = next((chunks[key] for key in CARD_KEYS if key in chunks), None)
        if found is None:
            raise CardError("the PNG holds no character card (no 'ccv3' or 'chara' text chunk)")
        try:
            text = base64.b64decode(found, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CardError("the PNG's card chunk is not base64") from exc
    else:
        text = data
    if len(text) > MAX_CARD_JSON_BYTES:
        raise CardError(f"the card's JSON is over {MAX_CARD_JSON_BYTES // (1024 * 1024)} MiB")
    try:
        card = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CardError("the card is not JSON (UTF-8)") from exc
    if not isinstance(card, dict):
        raise CardError("the card is not a JSON object")
    return card


def png_text(data: bytes) -> dict[bytes, bytes]:
    """The ``tEXt`` chunks of a PNG (keyword → text), and uncompressed ``iTXt`` ones."""
    found: dict[bytes, bytes] = {}
    at = len(PNG_SIGNATURE)
    for _ in range(MAX_CHUNKS):
        if at + 8 > len(data):
            raise CardError("the PNG ends inside a chunk header")
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        body = data[at + 8 : at + 8 + length]
        if len(body) != length or at + 12 + length > len(data):
            raise CardError("the PNG ends inside a chunk")
        if kind == b"tEXt":
            keyword, _, text = body.partition(b"\x00")
            found.setdefault(keyword, text)
        elif kind == b"iTXt":
            keyword, _, rest = body.partition(b"\x00")
            if rest[:1] == b"\x00":  # not compressed: flag, method, language, translated
                _, _, after_language = rest[2:].partition(b"\x00")
                _, _, text = after_language.partition(b"\x00")
                found.setdefault(keyword, text)
        elif kind == b"IEND":
            return found
        at += 12 + length
    raise CardError(f"the PNG has over {MAX_CHUNKS} chunks")


def card_to_character(card: dict[str, Any], avatar: bytes | None = None) -> ImportedCard:
    """A RoomVerse character file from a V1, V2 or V3 card."""
    spec = card.get("spec")
    if spec in ("chara_card_v2", "chara_card_v3"):
        data = card.get("data")
        if not isinstance(data, dict):
            raise CardError(f"a {spec} card needs a 'data' object", "card.data")
        where = "card.data"
    else:
        data, where = card, "card"  # V1: the fields at the top level
    name = _line(_text(data, "name", where), MAX_NAME)
    if not name:
        raise CardError("the card has no name", f"{where}.name")
    description = _text(data, "description", where)
    personality = _text(data, "personality", where)
    scenario = _text(data, "scenario", where)
    greeting = _greeting(_text(data, "first_mes", where), name)
    persona: dict[str, Any] = {
        "personality": _cap(personality or description, MAX_TEXT),
        "background": _cap(scenario, MAX_TEXT),
        "greeting": _cap(greeting, MAX_TEXT),
        "languages": ["ja"] if _mostly_japanese(description, personality, greeting) else ["en"],
    }
    character: dict[str, Any] = {
        "name": name,
        "description": _words(description or personality, MAX_DESCRIPTION),
        "tags": _tags(data.get("tags"), f"{where}.tags"),
        "persona": persona,
    }
    if avatar is not None:
        character["icon"] = {"file": "", "sha256": hashlib.sha256(avatar).hexdigest()}
    aside = {
        key: value
        for key, value in data.items()
        if key not in TAKEN and value not in ("", [], {}, None)
    }
    if spec is not None:
        aside = {"spec": spec, "spec_version": card.get("spec_version"), **aside}
    return ImportedCard(character, avatar, aside)


def character_to_card(config: CharacterConfig) -> dict[str, Any]:
    """A Character Card V2 of a RoomVerse character, with the V1 fields at the top level
    too (as SillyTavern writes them), for readers that know only V1."""
    persona = config.persona
    v1 = {
        "name": config.name,
        "description": config.description,
        "personality": persona.personality,
        "scenario": persona.background,
        "first_mes": persona.greeting,
        "mes_example": "",
    }
    return {
        **v1,
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "data": {
            **v1,
            "creator_notes": "Exported from RoomVerse.",
            "system_prompt": "",
            "post_history_instructions": "",
            "alternate_greetings": [],
            "tags": list(config.tags),
            "creator": "",
            "character_version": "",
            "extensions": {"roomverse": {"languages": list(persona.languages)}},
        },
    }


def png_with_card(png: bytes, card: dict[str, Any]) -> bytes:
    """``png`` with ``card`` in a ``chara`` text chunk (any card chunk it had replaced)."""
    if not png.startswith(PNG_SIGNATURE):
        raise CardError("the avatar is not a PNG", "icon")
    encoded = base64.b64encode(json.dumps(card, ensure_ascii=False).encode()).decode()
    chunks: list[bytes] = [PNG_SIGNATURE]
    at = len(PNG_SIGNATURE)
    for _ in range(MAX_CHUNKS):
        length, kind = struct.unpack(">I4s", png[at : at + 8])
        whole = png[at : at + 12 + length]
        body = whole[8:-4]
        keyword = body.partition(b"\x00")[0] if kind in (b"tEXt", b"iTXt", b"zTXt") else b""
        if kind == b"IEND":
            chunks.append(_chunk(b"tEXt", b"chara\x00" + encoded.encode("ascii")))
            chunks.append(whole)
            return b"".join(chunks)
        if keyword not in CARD_KEYS:
            chunks.append(whole)
        at += len(whole)
    raise CardError("the avatar PNG has no end", "icon")


def plain_png(rgb: tuple[int, int, int] = (120, 150, 200), side: int = 64) -> bytes:
    """A one-colour PNG: the avatar of a character that has none."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    pixels = b"".join(b"\x00" + bytes(rgb) * side for _ in range(side))
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(pixels))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise CardError("must be text", f"{where}.{key}")
    return _CONTROL.sub("", value).replace("\r\n", "\n").strip()


def _line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


def _cap(text: str, limit: int) -> str:
    return text[:limit].rstrip()


def _words(text: str, limit: int) -> str:
    """One line, cut at the last word boundary within ``limit`` characters."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def _greeting(text: str, name: str) -> str:
    return _CHAR.sub(name, _USER.sub("", text)).strip()


def _tags(value: Any, where: str) -> list[str]:
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        raise CardError("must be a list of text", where)
    tags: list[str] = []
    for item in value:
        tag = _line(item, MAX_TAG_CHARS) if isinstance(item, str) else ""
        if tag and tag.casefold() not in {t.casefold() for t in tags}:
            tags.append(tag)
    return tags[:MAX_TAGS]


def _mostly_japanese(*texts: str) -> bool:
    text = "".join(texts)
    letters = sum(ch.isalpha() for ch in text)
    return letters > 0 and len(_JAPANESE.findall(text)) * 2 > letters
