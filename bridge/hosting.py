"""libp2p characters visiting legacy participants: the bridge hosts each such visit for
the participant (``node.host_for_legacy``) and speaks the seed protocol to its URL with
httpx — ``POST {url}/visit`` with the guest's first line, then ``POST {url}/chat`` per
turn; the participant's replies become the host's lines. Its answers are untrusted text:
capped, checked, and refused (ending the visit with a reason) when malformed."""

from __future__ import annotations

from typing import Any

import httpx

from bridge.participants import ParticipantFailed, call
from bridge.problems import Problem
from bridge.schema import MAX_MESSAGE_CHARS, text
from node import CharacterNode, LegacyHost, Partner, RelayFailed


class HttpLegacyHost:
    """One visit hosted by the legacy participant at ``url``."""

    def __init__(self, client: httpx.AsyncClient, url: str, bridge_url: str) -> None:
        self._client = client
        self._url = url.rstrip("/")
        self._bridge_url = bridge_url.rstrip("/")
        self._conversation = ""

    async def first_reply(self, guest: Partner, line: str, context: str) -> tuple[str, bool]:
        visitor = {"name": guest.name, "url": f"{self._bridge_url}/characters/{guest.peer_id}"}
        body: dict[str, Any] = {"visitor": visitor, "message": line}
        if context:
            body["context"] = context
        answer = await self._post("/visit", body)
        conversation = answer.get("conversation_id")
        if not isinstance(conversation, str | int) or not str(conversation).strip():
            raise RelayFailed(f"{self._url}/visit answered without a conversation_id")
        self._conversation = str(conversation)[:128]
        return self._reply(answer, "/visit")

    async def next_reply(self, guest: Partner, line: str) -> tuple[str, bool]:
        body = {"conversation_id": self._conversation, "message": line, "partner": guest.name}
        return self._reply(await self._post("/chat", body), "/chat")

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await call(self._client, "POST", f"{self._url}{path}", body=body)
        except ParticipantFailed as exc:
            raise RelayFailed(exc.detail) from exc

    def _reply(self, answer: dict[str, Any], path: str) -> tuple[str, bool]:
        reply = answer.get("reply")
        done = answer.get("done", False)
        if not isinstance(reply, str) or not isinstance(done, bool):
            raise RelayFailed(f"{self._url}{path} answered without a text reply")
        try:
            cleaned = text(reply, "reply", MAX_MESSAGE_CHARS)
        except Problem as exc:
            raise RelayFailed(f"{self._url}{path}: {exc.detail}") from exc
        if not cleaned:
            raise RelayFailed(f"{self._url}{path} answered an empty reply")
        return cleaned, done


class LegacyHostFactory:
    """``legacy_host_for(peer)``: a host for a visit to the participant ``peer`` this
    bridge vouches for (its URL from its directory entry), or None."""

    def __init__(self, node: CharacterNode, client: httpx.AsyncClient, bridge_url: str) -> None:
        self._node = node
        self._client = client
        self._bridge_url = bridge_url

    def __call__(self, peer: bytes) -> LegacyHost | None:
        entry = self._node.directory.directory.get(peer)
        if entry is None or entry.vouch is None or entry.signer != self._node.identity.peer_id:
            return None
        if not entry.addrs:
            return None
        return HttpLegacyHost(self._client, entry.addrs[0], self._bridge_url)
