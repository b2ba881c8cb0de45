"""The dashboard's HTTP face: the page, a JSON API under ``/api``, and the live log.

Every route needs the token (header ``X-Roomverse-Token``, ``Authorization: Bearer``, or
``?token=``) except the page's own CSS and JS, which hold nothing private, and
``/healthz``, which says only ok or degraded (a supervisor cannot know a token drawn at
each start); the ``Host`` check applies to those too. This module holds the guards and the
page; each group of routes below is served by the module of :mod:`node.dashboard.routes`
named above it::

    GET    /                               the page (static/index.html)
    GET    /static/<file>                  its CSS and JS
  status
    GET    /api/status                     peers, addresses, mDNS, engines, budget tier,
                                           the visits in progress (``visiting``)
    POST   /api/status                     {"status": "online" | "away" | "asleep"}
  memory
    GET    /api/visits?limit=&partner=     the footprints: who came, when, what they left
    GET    /api/visits/<id>                one visit and its conversation
    DELETE /api/visits/<id>                forget a visit (and its conversation)
    GET    /api/relations                  every partner's standing (affinity, tier)
    GET    /api/relations/<peer>           one relation, with its summary and notes
    POST   /api/relations/<peer>           {"notes": "...", "summary": "..."} (one or both)
    DELETE /api/relations/<peer>           forget it (``?with_visits=1``: and the visits)
  visiting
    POST   /api/visits/<id>/end            {}: end a visit in progress politely
  directory
    GET    /api/directory?search=          everyone the node knows of, present first
  live
    WS     /api/live?token=&since=         the live log (:mod:`node.dashboard.live`)
  souvenirs
    GET    /api/souvenirs                  what we lend (name, description, read_only, ask),
                                           the plugins' state, the counters
    GET    /api/souvenirs/approvals        partners' calls waiting for the owner, arguments
                                           included
    POST   /api/souvenirs/approvals/<id>   {"approve": true | false}; 404 once it is not
                                           waiting (answered, expired)
    GET    /api/souvenirs/footprints?limit=  the newest souvenir calls, both ways
  metrics (:mod:`node.metrics`)
    GET    /metrics                        the node's families, Prometheus text format
    GET    /healthz                        {"status": "ok" | "degraded", "checks": ...},
                                           200 or 503 (no token needed)
  (beside this app, on the same port: :mod:`node.dashboard.mcp_http`)
    POST   /mcp                            MCP streamable HTTP: our lent tools, for the
                                           owner's MCP client (token as a header only)

Errors are ``{"error": "..."}`` with a 4xx status (:mod:`node.dashboard.api`). Changes are
POST or DELETE with a JSON object body (at most :data:`MAX_BODY_BYTES`); no CORS, and a
foreign ``Origin`` is refused (:mod:`node.dashboard.guard`). Other characters' words are
data here: the page inserts them as text, never as HTML, and memory holds them already
redacted.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from quart import Response, request, websocket
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers, MultiDict
from werkzeug.exceptions import HTTPException

from keys.errors import LocalError
from node.dashboard.api import ApiError, error_response
from node.dashboard.guard import (
    TOKEN_HEADER,
    TOKEN_PARAM,
    RequestFacts,
    bearer_token,
    loopback_host_ok,
    refusal,
)
from node.dashboard.live import LiveLog
from node.dashboard.routes.context import register_context_routes
from node.dashboard.routes.directory import register_directory_routes
from node.dashboard.routes.live import register_live_routes
from node.dashboard.routes.memory import register_memory_routes
from node.dashboard.routes.souvenirs import register_souvenir_routes
from node.dashboard.routes.status import register_status_routes
from node.dashboard.routes.visiting import register_visiting_routes
from node.metrics import add_metrics_routes, metrics_registry, node_collector, node_health

if TYPE_CHECKING:
    from node.character import CharacterNode

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
UNGUARDED = frozenset({"static", "healthz"})
"""Endpoints served without the token (the ``Host`` check still applies)."""
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


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

    # -- who may ask ------------------------------------------------------------------

    def checked(method: str, headers: Headers, args: MultiDict[str, str]) -> Response | None:
        facts = RequestFacts(
            method=method,
            host=headers.get("Host", ""),
            origin=headers.get("Origin"),
            token=headers.get(TOKEN_HEADER)
            or bearer_token(headers.get("Authorization"))
            or args.get(TOKEN_PARAM),
        )
        refused = refusal(facts, token, loopback_port=loopback_port)
        return None if refused is None else error_response(refused.status, refused.error)

    @app.before_request
    async def guard_request() -> Response | None:
        if request.endpoint in UNGUARDED:
            # The page's code and the health answer hold no secret: only the Host check.
            host = request.headers.get("Host", "")
            if loopback_port is not None and not loopback_host_ok(host, loopback_port):
                return error_response(403, f"unexpected Host {host!r}")
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
        return error_response(exc.status, str(exc))

    @app.errorhandler(LocalError)
    async def local_error(exc: LocalError) -> Response:
        return error_response(400, str(exc))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        return error_response(exc.code or 500, exc.description or exc.name)

    # -- what it serves -----------------------------------------------------------------

    @app.get("/")
    async def index() -> Response:
        return await app.send_static_file("index.html")

    register_status_routes(app, node, feed)
    register_memory_routes(app, node)
    register_visiting_routes(app, node)
    register_directory_routes(app, node)
    register_live_routes(app, feed)
    register_souvenir_routes(app, node)
    register_context_routes(app, node)
    add_metrics_routes(app, metrics_registry(node_collector(node)), partial(node_health, node))
    return app
