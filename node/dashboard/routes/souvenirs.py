"""``/api/souvenirs``: what the character lends, the calls waiting for the owner's
approval (with their arguments, so the owner knows what they say yes to), and the
souvenir footprints ("Kai lent Mina the get_current_time souvenir").

Approving is the one change here: ``POST /api/souvenirs/approvals/<id>`` with
``{"approve": true|false}`` answers a waiting call; a call that is no longer waiting
(answered already, expired, or never asked) is a 404, so a late click cannot run
anything. A spectator lends nothing: these routes answer it with 409.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from quart import Response, jsonify, request
from quart_trio import QuartTrio

from node.dashboard.api import ApiError, int_arg, json_object
from node.storage.footprints import DENIED, FAILED_PREFIX, REFUSED_PREFIX, TOOL_ERROR, Footprint

if TYPE_CHECKING:
    from node.character import CharacterNode
    from node.souvenirs.service import SouvenirService

DEFAULT_FOOTPRINTS: Final = 50
MAX_FOOTPRINTS: Final = 500
_CALL_ID: Final = re.compile(r"[0-9a-f]{1,64}")


def register_souvenir_routes(app: QuartTrio, node: CharacterNode) -> None:
    def service() -> SouvenirService:
        if node.agent is None:
            raise ApiError(409, "this node has no character (a spectator): it lends nothing")
        return node.agent.souvenirs

    @app.get("/api/souvenirs")
    async def lent() -> Response:
        souvenirs = service()
        tools = [] if souvenirs.lender is None else list(souvenirs.lender.lent())
        return jsonify(
            {
                "lent": [
                    {
                        "name": tool.name,
                        "plugin": tool.plugin,
                        "description": tool.description,
                        "read_only": tool.read_only,
                        "ask": tool.ask,
                        "input_schema": tool.input_schema,
                    }
                    for tool in tools
                ],
                "plugins": [] if souvenirs.lender is None else souvenirs.lender.describe(),
                "counters": souvenirs.counters.to_json(),
                "pending_approvals": len(souvenirs.approvals.pending()),
                "approval_timeout_s": souvenirs.approvals.timeout_s,
                "open_visits": souvenirs.lending.open_visits(),
            }
        )

    @app.get("/api/souvenirs/approvals")
    async def approvals() -> Response:
        pending = sorted(service().approvals.pending(), key=lambda call: call.asked_ms)
        return jsonify({"pending": [call.to_json() for call in pending]})

    @app.post("/api/souvenirs/approvals/<call_id>")
    async def decide(call_id: str) -> Response:
        if _CALL_ID.fullmatch(call_id) is None:
            raise ApiError(400, "an approval id is lowercase hex")
        body = await json_object({"approve"})
        approve = body.get("approve")
        if not isinstance(approve, bool):
            raise ApiError(400, 'send {"approve": true} or {"approve": false}')
        if not service().approvals.decide(call_id, approve):
            raise ApiError(404, f"no call {call_id} is waiting (answered already, or expired)")
        return jsonify({"ok": True, "id": call_id, "approved": approve})

    @app.get("/api/souvenirs/footprints")
    async def footprints() -> Response:
        limit = int_arg(request.args, "limit", DEFAULT_FOOTPRINTS, 1, MAX_FOOTPRINTS)
        souvenirs = service()
        rows = await souvenirs.footprints.recent(limit)
        me, my_name = souvenirs.me, node.config.name
        return jsonify({"footprints": [footprint_json(row, me, my_name) for row in rows]})


def footprint_json(row: Footprint, me: str, my_name: str) -> dict[str, Any]:
    """One footprint as the page shows it: the stored row, whether we were the lender,
    and a sentence saying what happened (names only: arguments were never stored)."""
    return {**row.to_json(), "ours": row.lender_id == me, "text": footprint_text(row, me, my_name)}


def footprint_text(row: Footprint, me: str, my_name: str) -> str:
    """What happened, in words: "Kai lent Mina the get_current_time souvenir", or what
    stopped it."""
    partner = row.partner_name or "someone"
    lender, borrower = (my_name, partner) if row.lender_id == me else (partner, my_name)
    if row.lent:
        said = f"{lender} lent {borrower} the {row.tool} souvenir"
        return f"{said} (it reported an error)" if row.outcome == TOOL_ERROR else said
    asked = f"{borrower} asked for {lender}'s {row.tool or 'unnamed'} souvenir"
    if row.outcome == DENIED:
        return f"{asked}: not approved"
    for prefix, verb in ((REFUSED_PREFIX, "refused"), (FAILED_PREFIX, "failed")):
        if row.outcome.startswith(prefix):
            return f"{asked}: {verb} ({row.outcome[len(prefix) :]})"
    return f"{asked}: {row.outcome}"
