"""The registry of legacy participants: ``POST /register`` → a directory entry the bridge
signs and vouches for (DESIGN §4), leased.

The participant's id is derived from its URL (:func:`handle_for`, then
:func:`registry_crdt.legacy_peer_id`), so one URL is one participant, registering again is
its heartbeat, and a bridge can never overwrite a real character's entry. Before vouching
the bridge checks the URL (:mod:`bridge.urls`) and that the participant answers at
``{url}/manifest`` with a JSON object.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from bridge.participants import call
from bridge.problems import Problem
from bridge.schema import (
    MAX_DESCRIPTION_CHARS,
    MAX_MESSAGE_CHARS,
    LegacyCard,
    Registration,
    text,
)
from bridge.urls import check_resolves, check_url
from keys import peer_id_to_str
from registry_crdt import (
    Capabilities,
    DirectoryUsageError,
    Entry,
    Interfaces,
    NameCard,
    Persona,
    legacy_peer_id,
)
from registry_crdt.limits import MAX_GREETING_CHARS

DEFAULT_LEASE_S: Final = 300.0
"""A participant that does not register again within this goes offline."""


class Vouching(Protocol):
    """The bridge node's directory (``CharacterNode.directory``): what the registry uses."""

    async def vouch(
        self, handle: str, card: NameCard, urls: list[str], lease_s: float
    ) -> Entry: ...


@dataclass(frozen=True, slots=True)
class Registered:
    peer_id: str
    handle: str
    url: str
    lease_s: float
    lease_expires_ms: int
    card_digest: bytes


def canonical_url(url: str) -> str:
    """The URL as the registry keys it: scheme and host lowercased, no trailing slash
    (and no credentials or fragment: :func:`bridge.urls.check_url` refuses those first)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), parts.query, ""))


def handle_for(url: str) -> str:
    """The bridge's name for the participant at ``url`` (a registry_crdt handle)."""
    return "u" + hashlib.sha256(canonical_url(url).encode()).hexdigest()[:40]


class Registry:
    def __init__(
        self,
        directory: Vouching,
        bridge_peer: bytes,
        client: httpx.AsyncClient,
        *,
        allow_private: bool,
        lease_s: float = DEFAULT_LEASE_S,
    ) -> None:
        self._directory = directory
        self._bridge = bridge_peer
        self._client = client
        self._allow_private = allow_private
        self.lease_s = lease_s

    async def register(self, registration: Registration) -> Registered:
        check_url(registration.url, allow_private=self._allow_private)  # as given
        url = canonical_url(registration.url)
        await check_resolves(url, allow_private=self._allow_private)
        manifest = await call(self._client, "GET", f"{url}/manifest")
        card = _merge(registration.card, manifest)
        handle = handle_for(url)
        peer = peer_id_to_str(legacy_peer_id(self._bridge, handle))
        name_card = NameCard(
            id=peer,
            name=registration.name,
            description=card.description,
            persona=Persona(greeting=card.greeting[:MAX_GREETING_CHARS]),
            interfaces=Interfaces(http=url),
            capabilities=Capabilities(actions=("speak",), accepts_visits=True),
        )
        try:
            entry = await self._directory.vouch(handle, name_card, [url], self.lease_s)
        except DirectoryUsageError as exc:
            raise Problem(422, "refused-entry", "Entry refused", str(exc)) from exc
        return Registered(
            peer_id=peer,
            handle=handle,
            url=url,
            lease_s=self.lease_s,
            lease_expires_ms=entry.clock.wall_ms + int(self.lease_s * 1000),
            card_digest=entry.card_digest,
        )


def _merge(given: LegacyCard, manifest: dict[str, Any]) -> LegacyCard:
    """The card registered, its empty fields filled from the participant's manifest
    (which is untrusted and may hold anything: only well-formed known fields are read)."""

    def field(name: str, limit: int) -> str:
        value = manifest.get(name, "")
        if not isinstance(value, str):
            return ""
        try:
            return text(value, f"manifest.{name}", limit)
        except Problem:
            return ""

    return LegacyCard(
        description=given.description or field("description", MAX_DESCRIPTION_CHARS),
        greeting=given.greeting or field("greeting", MAX_MESSAGE_CHARS),
        icon=given.icon,
    )
