"""``/api/visits/<id>/end``: the owner ends a visit in progress, politely (the same path
as ``roomverse end-visit``: the farewell goes out on the character's next turn). The
visits in progress are in ``/api/status`` (``visiting``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quart import Response, jsonify
from quart_trio import QuartTrio

from node.control.commands import handle_control
from node.dashboard.api import ApiError, check_visit_id, json_object
from node.visits.ongoing import NotVisiting

if TYPE_CHECKING:
    from node.character import CharacterNode


def register_visiting_routes(app: QuartTrio, node: CharacterNode) -> None:
    @app.post("/api/visits/<visit_id>/end")
    async def end_visit(visit_id: str) -> Response:
        check_visit_id(visit_id)
        await json_object(set())
        if node.agent is None:
            raise ApiError(409, "this node has no character (a spectator): it visits nobody")
        try:
            # The page does not wait: the live log and the status show the visit end.
            reply = await handle_control(
                node, {"cmd": "end_visit", "visit": visit_id, "wait": False}
            )
        except NotVisiting as exc:
            raise ApiError(404, str(exc)) from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            error = reply.get("error") if isinstance(reply, dict) else None
            raise ApiError(400, str(error or "the visit could not be ended"))
        return jsonify({"ok": True, "visits": reply["visits"]})
