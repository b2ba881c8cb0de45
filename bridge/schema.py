"""What the bridge's HTTP requests may hold: fields, types and caps (the seed's own: 500
code points per message). Unknown fields are refused, so a typo is an error, not a
silent default. Every failure is a 422 :class:`~bridge.problems.Problem` naming the field."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from bridge.problems import invalid

MAX_MESSAGE_CHARS: Final = 500
MAX_NAME_CHARS: Final = 64
MAX_URL_CHARS: Final = 512
MAX_DESCRIPTION_CHARS: Final = 280
MAX_BODY_BYTES: Final = 16 * 1024
"""A request body larger than this is refused (413) before it is parsed."""


@dataclass(frozen=True, slots=True)
class LegacyCard:
    """What a legacy participant says about itself (the seed's manifest shape)."""

    description: str = ""
    greeting: str = ""
    icon: str = ""


@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    url: str
    card: LegacyCard


def parse_registration(data: object) -> Registration:
    """``POST /register {"name", "url", "card"?}``."""
    body = _object(data, "the request body", required={"name", "url"}, optional={"card"})
    card = LegacyCard()
    if "card" in body:
        card = parse_card(body["card"], "card")
    return Registration(
        name=text(body["name"], "name", MAX_NAME_CHARS, one_line=True, required=True),
        url=text(body["url"], "url", MAX_URL_CHARS, one_line=True, required=True),
        card=card,
    )


def parse_card(data: object, where: str) -> LegacyCard:
    """A legacy card: ``description``, ``greeting``, ``icon`` (a URL), all optional;
    other fields a seed manifest carries (``name``) are read elsewhere, unknown ones refused."""
    body = _object(
        data, where, required=set(), optional={"description", "greeting", "icon", "name"}
    )
    return LegacyCard(
        description=text(
            body.get("description", ""), f"{where}.description", MAX_DESCRIPTION_CHARS
        ),
        greeting=text(body.get("greeting", ""), f"{where}.greeting", MAX_MESSAGE_CHARS),
        icon=text(body.get("icon", ""), f"{where}.icon", MAX_URL_CHARS, one_line=True),
    )


def text(
    value: object, field: str, limit: int, *, one_line: bool = False, required: bool = False
) -> str:
    """A string field: NFC, at most ``limit`` code points, no control characters (line
    breaks allowed unless ``one_line``); surrounding space is dropped."""
    if not isinstance(value, str):
        raise invalid(f"{field} must be a string")
    cleaned = unicodedata.normalize("NFC", value).strip()
    if len(cleaned) > limit:
        raise invalid(f"{field} is {len(cleaned)} characters; at most {limit}")
    allowed = "" if one_line else "\n\t"
    if any(unicodedata.category(c)[0] == "C" and c not in allowed for c in cleaned):
        raise invalid(f"{field} contains control characters")
    if required and not cleaned:
        raise invalid(f"{field} must not be empty")
    return cleaned


def _object(
    data: object, where: str, *, required: set[str], optional: set[str]
) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise invalid(f"{where} must be a JSON object")
    unknown = sorted(set(data) - required - optional)
    if unknown:
        raise invalid(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    missing = sorted(required - set(data))
    if missing:
        raise invalid(f"{where}: missing field(s) {', '.join(map(repr, missing))}")
    return data


MAX_CONTEXT_CHARS: Final = 500
CONVERSATION_ID_CHARS: Final = 32


@dataclass(frozen=True, slots=True)
class VisitRequest:
    visitor: Registration
    message: str
    context: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    conversation_id: str
    message: str


def parse_visit(data: object) -> VisitRequest:
    """``POST /characters/{id}/visit {"visitor": {"name", "url", "card"?}, "message",
    "context"?}``. The visitor's URL is required: the bridge registers it (or renews its
    registration) to know whom it speaks for."""
    body = _object(data, "the request body", required={"visitor", "message"}, optional={"context"})
    visitor = _object(body["visitor"], "visitor", required={"name", "url"}, optional={"card"})
    card = parse_card(visitor["card"], "visitor.card") if "card" in visitor else LegacyCard()
    return VisitRequest(
        visitor=Registration(
            name=text(
                visitor["name"], "visitor.name", MAX_NAME_CHARS, one_line=True, required=True
            ),
            url=text(visitor["url"], "visitor.url", MAX_URL_CHARS, one_line=True, required=True),
            card=card,
        ),
        message=text(body["message"], "message", MAX_MESSAGE_CHARS, required=True),
        context=text(body.get("context", ""), "context", MAX_CONTEXT_CHARS),
    )


def parse_chat(data: object) -> ChatRequest:
    """``POST /characters/{id}/chat {"conversation_id", "message", "partner"?}`` (the seed
    sends the visitor's name as ``partner``; the conversation already knows it)."""
    body = _object(
        data, "the request body", required={"conversation_id", "message"}, optional={"partner"}
    )
    conversation = text(body["conversation_id"], "conversation_id", CONVERSATION_ID_CHARS)
    if len(conversation) != CONVERSATION_ID_CHARS:
        raise invalid(f"conversation_id is {CONVERSATION_ID_CHARS} characters")
    if "partner" in body:
        text(body["partner"], "partner", MAX_NAME_CHARS, one_line=True)
    return ChatRequest(
        conversation_id=conversation,
        message=text(body["message"], "message", MAX_MESSAGE_CHARS, required=True),
    )
