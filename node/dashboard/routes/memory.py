"""The character's memory: ``/api/visits`` (who came, when, what they left; one visit with
its conversation; forgetting one) and ``/api/relations`` (every partner's standing; one
relation with its summary and notes, which the owner may edit; forgetting one).

A spectator has no memory: these routes answer it with 409.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from quart import Response, jsonify, request
from quart_trio import QuartTrio

from keys import peer_id_from_str
from node.agent.affinity import tier_for
from node.clock import now_ms
from node.dashboard.api import ApiError, check_visit_id, int_arg, json_object
from node.storage.memory import Memory, RelationStats, VisitRow

if TYPE_CHECKING:
    from node.character import CharacterNode

MAX_TEXT_CHARS = 4000
"""Longest relation summary or note the owner can save."""
DEFAULT_VISITS = 100
MAX_VISITS = 1000
_PEER_ID_MAX = 128


def register_memory_routes(app: QuartTrio, node: CharacterNode) -> None:
    def memory() -> Memory:
        if node.agent is None:
            raise ApiError(409, "this node has no character (a spectator): it has no memory")
        return node.agent.memory

    # -- visits -------------------------------------------------------------------------

    @app.get("/api/visits")
    async def list_visits() -> Response:
        limit = int_arg(request.args, "limit", DEFAULT_VISITS, 1, MAX_VISITS)
        partner = request.args.get("partner")
        if partner is not None:
            _check_peer_id(partner)
        rows = await memory().visits(limit, partner_id=partner)
        return jsonify({"visits": [visit_json(row) for row in rows]})

    @app.get("/api/visits/<visit_id>")
    async def get_visit(visit_id: str) -> Response:
        check_visit_id(visit_id)
        conversation = await memory().conversation(visit_id)
        if conversation is None:
            raise ApiError(404, f"no visit {visit_id} in memory")
        return jsonify(
            {
                "visit": visit_json(conversation.visit),
                "summary": conversation.summary,
                "messages": [m.to_json() for m in conversation.messages],
                "self_id": node.identity.peer_id_str,
                "self_name": node.config.name,
            }
        )

    @app.delete("/api/visits/<visit_id>")
    async def delete_visit(visit_id: str) -> Response:
        check_visit_id(visit_id)
        if not await memory().delete_visit(visit_id):
            raise ApiError(404, f"no visit {visit_id} in memory")
        return jsonify({"ok": True, "deleted": visit_id})

    # -- relations ----------------------------------------------------------------------

    @app.get("/api/relations")
    async def list_relations() -> Response:
        return jsonify({"relations": [relation_json(r) for r in await memory().relations()]})

    @app.get("/api/relations/<peer_id>")
    async def get_relation(peer_id: str) -> Response:
        _check_peer_id(peer_id)
        relation = await memory().relation(peer_id)
        if relation is None:
            raise ApiError(404, f"no relation with {peer_id}")
        return jsonify({"relation": relation_json(relation)})

    @app.post("/api/relations/<peer_id>")
    async def edit_relation(peer_id: str) -> Response:
        _check_peer_id(peer_id)
        body = await json_object({"notes", "summary"})
        if not body:
            raise ApiError(400, 'send "notes", "summary" or both')
        for name, value in body.items():
            if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
                raise ApiError(400, f'"{name}" must be text of at most {MAX_TEXT_CHARS} characters')
        mem = memory()
        now = now_ms()
        stored = True
        if "notes" in body:
            stored = await mem.set_notes(peer_id, body["notes"], now_ms=now)
        if stored and "summary" in body:
            stored = await mem.set_summary(peer_id, body["summary"], now_ms=now)
        relation = await mem.relation(peer_id) if stored else None
        if relation is None:
            raise ApiError(404, f"no relation with {peer_id}")
        return jsonify({"ok": True, "relation": relation_json(relation)})

    @app.delete("/api/relations/<peer_id>")
    async def forget_relation(peer_id: str) -> Response:
        _check_peer_id(peer_id)
        with_visits = request.args.get("with_visits") in ("1", "true")
        if not await memory().forget_relation(peer_id, with_visits=with_visits):
            raise ApiError(404, f"no relation with {peer_id}")
        return jsonify({"ok": True, "forgotten": peer_id, "with_visits": with_visits})


# -- JSON shapes --------------------------------------------------------------------------


def visit_json(row: VisitRow) -> dict[str, Any]:
    """A visit for the page: the receipt only as "there is one" (it is kilobytes of hex)."""
    data = row.to_json()
    del data["partner"]  # the same PeerID as partner_id, as hex bytes
    data["receipt"] = row.receipt is not None
    return data


def relation_json(relation: RelationStats) -> dict[str, Any]:
    return {**relation.to_json(), "tier": tier_for(relation.affinity).value}


# -- input --------------------------------------------------------------------------------


def _check_peer_id(peer_id: str) -> None:
    if len(peer_id) > _PEER_ID_MAX:
        raise ApiError(400, "that is not a PeerID")
    peer_id_from_str(peer_id)  # InvalidPeerId is a LocalError: answered with 400
