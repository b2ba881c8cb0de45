"""``/context``: the owner's programs tell the character what is going on (MRTalk's input
endpoint), as ``roomverse act text|image`` does: the context is published, and the
character reacts to it (:mod:`node.agent.reacting`)::

    POST /context   {"type": "text", "context": "It started to rain."}
                    {"type": "image", "context": "<base64, or a data: URL>", "alt": "..."}
                    optional "to": a character's PeerID, or "*" for everyone
                    (default: our own character)

The token is needed as for every dashboard route. The body is capped like every other
dashboard body (:data:`node.dashboard.app.MAX_BODY_BYTES`), so an image sent here is a
small one (about 11 KiB); ``roomverse act image`` takes up to 192 KiB.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any, Final

from quart import Response, jsonify
from quart_trio import QuartTrio

from keys.bodies import IMAGE_MIME_TYPES
from keys.errors import RoomverseError
from node.control.commands import handle_control
from node.dashboard.api import ApiError, json_object

if TYPE_CHECKING:
    from node.character import CharacterNode

FIELDS: Final = {"type", "context", "alt", "to"}
_DATA_URL = re.compile(r"data:(image/[a-z+.-]+);base64,(.*)", re.DOTALL)
_MAGIC: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


def context_body(request: dict[str, Any]) -> dict[str, Any]:
    """The ``context`` envelope body for one ``/context`` request (``data_b64`` for an
    image: the control command decodes it); :class:`ApiError` 400 for a bad request."""
    kind, context = request.get("type"), request.get("context")
    if kind not in ("text", "image") or not isinstance(context, str) or not context:
        raise ApiError(400, '"type" must be text or image and "context" a non-empty string')
    body: dict[str, Any] = {"type": kind}
    for name in ("to", "alt"):
        if name in request:
            if not isinstance(request[name], str) or (name == "alt" and kind == "text"):
                raise ApiError(400, f'"{name}" must be a string (and "alt" is for images)')
            body[name] = request[name]
    if kind == "text":
        return {**body, "text": context}
    data_url = _DATA_URL.fullmatch(context.strip())
    encoded = data_url.group(2) if data_url else context
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, '"context" of an image must be base64 (or a data: URL)') from None
    mime = data_url.group(1) if data_url else _sniff(data)
    if mime not in IMAGE_MIME_TYPES:
        raise ApiError(400, f"the image must be one of {', '.join(sorted(IMAGE_MIME_TYPES))}")
    return {**body, "mime": mime, "data_b64": base64.b64encode(data).decode()}


def _sniff(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if data.startswith(magic)), None)


def register_context_routes(app: QuartTrio, node: CharacterNode) -> None:
    @app.post("/context")
    async def context() -> Response:
        body = context_body(await json_object(set(FIELDS)))
        if node.agent is None:
            raise ApiError(409, "this node has no character (a spectator): nobody to tell")
        try:
            reply = await handle_control(node, {"cmd": "publish", "kind": "context", "body": body})
        except RoomverseError as exc:
            raise ApiError(400, str(exc)) from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            error = reply.get("error") if isinstance(reply, dict) else None
            raise ApiError(400, str(error or "the context was refused"))
        return jsonify({"ok": True, "seq": reply["seq"], "recipients": reply["recipients"]})
