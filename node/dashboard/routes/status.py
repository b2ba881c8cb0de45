"""``/api/status``: the node's status (peers, addresses, mDNS, engines, budget tier), and
the owner's online / away / asleep switch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Response, jsonify
from quart_trio import QuartTrio

from node.control.commands import handle_control, status_of
from node.dashboard.api import ApiError, json_object
from node.dashboard.live import LiveLog

if TYPE_CHECKING:
    from node.character import CharacterNode


def register_status_routes(app: QuartTrio, node: CharacterNode, feed: LiveLog) -> None:
    @app.get("/api/status")
    async def get_status() -> Response:
        return jsonify(
            {
                **status_of(node),
                "mdns": node.config.network.mdns,
                "listen": list(node.config.network.listen),
                "spectator": node.spectator,
                "live": {"viewers": feed.viewers, "dropped_viewers": feed.dropped_viewers},
            }
        )

    @app.post("/api/status")
    async def set_status() -> Response:
        body = await json_object({"status"})
        if not isinstance(body.get("status"), str):
            raise ApiError(400, '"status" must be one of online, away, asleep')
        # The same path as `roomverse away|asleep|online` on the control socket.
        reply = await handle_control(node, {"cmd": "set_status", "status": body["status"]})
        if not isinstance(reply, dict) or not reply.get("ok"):
            error = reply.get("error") if isinstance(reply, dict) else None
            raise ApiError(400, str(error or "the status could not be set"))
        return jsonify({"ok": True, "status": reply["status"]})
