"""The dashboard's HTTP face: the page, a JSON API under ``/api``, and the live log.

Every route needs the token (header ``X-Roomverse-Token`` or ``?token=``) except the
page's own CSS and JS, which hold nothing private. Routes::

    GET    /                               the page (static/index.html)
    GET    /static/<file>                  its CSS and JS
    GET    /api/status                     peers, addresses, mDNS, engines, budget tier
    POST   /api/status                     {"status": "online" | "away" | "asleep"}
    GET    /api/visits?limit=&partner=     the footprints: who came, when, what they left
    GET    /api/visits/<id>                one visit and its conversation
    DELETE /api/visits/<id>                forget a visit (and its conversation)
    GET    /api/relations                  every partner's standing (affinity, tier)
    GET    /api/relations/<peer>           one relation, with its summary and notes
    POST   /api/relations/<peer>           {"notes": "...", "summary": "..."} (one or both)
    DELETE /api/relations/<peer>           forget it (``?with_visits=1``: and the visits)
    GET    /api/directory?search=          everyone the node knows of, present first
    WS     /api/live?token=&since=         the live log (:mod:`node.dashboard.live`)

Errors are ``{"error": "..."}`` with a 4xx status. Changes are POST or DELETE with a JSON
object body (at most :data:`MAX_BODY_BYTES`); no CORS, and a foreign ``Origin`` is refused
(:mod:`node.dashboard.guard`). Other characters' words are data here: the page inserts
them as text, never as HTML, and memory holds them already redacted.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

import trio
from quart import Response, jsonify, request, websocket
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers, MultiDict
from werkzeug.exceptions import HTTPException

from keys import peer_id_from_str
from keys.errors import LocalError
from node.agent.affinity import tier_for
from node.clock import now_ms
from node.control.commands import handle_control, status_of
from node.dashboard.guard import (
    TOKEN_HEADER,
    TOKEN_PARAM,
    RequestFacts,
    loopback_host_ok,
    refusal,
)
from node.dashboard.live import LiveLog, Viewer
from node.storage.memory import VISIT_ID, Memory, RelationStats, VisitRow

if TYPE_CHECKING:
    from node.character import CharacterNode

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
MAX_TEXT_CHARS = 4000
"""Longest relation summary or note the owner can save."""
MAX_SEARCH_CHARS = 200
DEFAULT_VISITS = 100
MAX_VISITS = 1000
CLOSE_WAIT_S = 1.0
"""How long a closing live-log socket may take to say why (its client may be stuck)."""
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_PEER_ID_MAX = 128


class ApiError(LocalError):
    """A request the dashboard refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(
    node: CharacterNode,
    token: str,
    *,
    live: LiveLog | None = None,
    loopback_port: int | None = None,
) -> QuartTrio:
    """The dashboard for ``node``, answering only requests that carry ``token``.

    ``live`` feeds ``/api/live`` (its :meth:`LiveLog.run` must be running); without it the
    live log is an empty socket. ``loopback_port``: serving on loopback at that port, so
    only loopback ``Host`` names with it are answered; None when the owner chose a public
    address.
    """
    app = QuartTrio(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    feed = live or LiveLog()

    def memory() -> Memory:
        if node.agent is None:
            raise ApiError(409, "this node has no character (a spectator): it has no memory")
        return node.agent.memory

    # -- who may ask ------------------------------------------------------------------

    def checked(method: str, headers: Headers, args: MultiDict[str, str]) -> Response | None:
        facts = RequestFacts(
            method=method,
            host=headers.get("Host", ""),
            origin=headers.get("Origin"),
            token=headers.get(TOKEN_HEADER) or args.get(TOKEN_PARAM),
        )
        refused = refusal(facts, token, loopback_port=loopback_port)
        return None if refused is None else _error(refused.status, refused.error)

    @app.before_request
    async def guard_request() -> Response | None:
        if request.endpoint == "static":
            # The page's code holds no secret; only the Host check applies to it.
            host = request.headers.get("Host", "")
            if loopback_port is not None and not loopback_host_ok(host, loopback_port):
                return _error(403, f"unexpected Host {host!r}")
            return None
        return checked(request.method, request.headers, request.args)

    @app.before_websocket
    async def guard_websocket() -> Response | None:
        return checked("GET", websocket.headers, websocket.args)

    @app.after_request
    async def harden(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        if response.status_code >= 400:
            # A refusal may leave the request's body unread, and hypercorn then neither
            # reuses nor promptly closes the connection: the client must not wait on it.
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Response:
        return _error(exc.status, str(exc))

    @app.errorhandler(LocalError)
    async def local_error(exc: LocalError) -> Response:
        return _error(400, str(exc))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 500, exc.description or exc.name)

    # -- the page -----------------------------------------------------------------------

    @app.get("/")
    async def index() -> Response:
        return await app.send_static_file("index.html")

    # -- status -------------------------------------------------------------------------

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
        body = await _json_object({"status"})
        if not isinstance(body.get("status"), str):
            raise ApiError(400, '"status" must be one of online, away, asleep')
        # The same path as `roomverse away|asleep|online` on the control socket.
        reply = await handle_control(node, {"cmd": "set_status", "status": body["status"]})
        if not isinstance(reply, dict) or not reply.get("ok"):
            error = reply.get("error") if isinstance(reply, dict) else None
            raise ApiError(400, str(error or "the status could not be set"))
        return jsonify({"ok": True, "status": reply["status"]})

    # -- memory: visits -----------------------------------------------------------------

    @app.get("/api/visits")
    async def list_visits() -> Response:
        limit = _int_arg(request.args, "limit", DEFAULT_VISITS, 1, MAX_VISITS)
        partner = request.args.get("partner")
        if partner is not None:
            _check_peer_id(partner)
        rows = await memory().visits(limit, partner_id=partner)
        return jsonify({"visits": [visit_json(row) for row in rows]})

    @app.get("/api/visits/<visit_id>")
    async def get_visit(visit_id: str) -> Response:
        _check_visit_id(visit_id)
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
        _check_visit_id(visit_id)
        if not await memory().delete_visit(visit_id):
            raise ApiError(404, f"no visit {visit_id} in memory")
        return jsonify({"ok": True, "deleted": visit_id})

    # -- memory: relations --------------------------------------------------------------

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
        body = await _json_object({"notes", "summary"})
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

    # -- directory ----------------------------------------------------------------------

    @app.get("/api/directory")
    async def directory() -> Response:
        search = request.args.get("search") or None
        if search is not None and len(search) > MAX_SEARCH_CHARS:
            raise ApiError(400, f"search at most {MAX_SEARCH_CHARS} characters")
        return jsonify({"entries": node.directory.listing(search), **node.directory.summary()})

    # -- live log -----------------------------------------------------------------------

    @app.websocket("/api/live")
    async def live_log() -> None:
        since = _int_arg(websocket.args, "since", 0, 0, 2**62)
        await websocket.accept()
        with feed.viewer(since) as viewer:
            await _stream(viewer)

    return app


async def _stream(viewer: Viewer) -> None:
    """Send the viewer's records until it is dropped, sends something, or the log ends;
    then say why, briefly, and close."""
    read_only = False

    async def refuse_input() -> None:
        nonlocal read_only
        await websocket.receive()  # the page never sends: anything is a misuse
        read_only = True
        viewer.cancel.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(refuse_input)
        with viewer.cancel:
            for record in viewer.backlog:
                await websocket.send(json.dumps(record))
            async for record in viewer.receive:
                await websocket.send(json.dumps(record))
        nursery.cancel_scope.cancel()
    if viewer.dropped:
        reason, code = "slow_consumer", 1008
    elif read_only:
        reason, code = "read_only", 1008
    else:
        reason, code = "server_shutdown", 1001
    with trio.move_on_after(CLOSE_WAIT_S), contextlib.suppress(Exception):
        await websocket.send(json.dumps({"type": "closing", "reason": reason}))
        await websocket.close(code, reason)


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


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


async def _json_object(allowed: set[str]) -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise ApiError(415, "send a JSON object with Content-Type: application/json")
    raw = await request.get_data(cache=False, as_text=False)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (expected {', '.join(sorted(allowed))})")
    return body


def _int_arg(args: MultiDict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = args.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and low <= int(text) <= high):
        raise ApiError(400, f'"{name}" must be a whole number {low}..{high}')
    return int(text)


def _check_visit_id(visit_id: str) -> None:
    if VISIT_ID.fullmatch(visit_id) is None:
        raise ApiError(400, "a visit id is 32 lowercase hex characters")


def _check_peer_id(peer_id: str) -> None:
    if len(peer_id) > _PEER_ID_MAX:
        raise ApiError(400, "that is not a PeerID")
    peer_id_from_str(peer_id)  # InvalidPeerId is a LocalError: answered with 400
