"""The bridge's HTTP face (quart-trio, served by hypercorn's trio worker).

Routes: ``POST /register`` (a legacy participant joins, or renews its lease) and
``GET /directory[?q=TEXT]`` (everyone online, libp2p characters and legacy participants
alike, with the URL at which a legacy client reaches each). Every request passes the
gate (token, rate limits) first; every refusal is problem+json (:mod:`bridge.problems`).
``GET /metrics`` and ``GET /healthz`` answer this machine only, unless
``metrics_public`` (:mod:`bridge.metrics`).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from bridge.guard import TOKEN_HEADER, Gate
from bridge.metrics import LOCAL_ROUTES, BridgeCounts, bridge_families, route_of
from bridge.problems import PROBLEM_JSON, Problem, invalid
from bridge.registry import Registry
from bridge.schema import (
    MAX_BODY_BYTES,
    MAX_NAME_CHARS,
    parse_chat,
    parse_registration,
    parse_visit,
    text,
)
from bridge.visits import LegacyVisits
from node import (
    Health,
    ReadingsCollector,
    add_metrics_routes,
    bearer_token,
    direct_loopback,
    metrics_registry,
)
from registry_crdt import IconLink, InlineIcon, NameCard, card_to_dict

logger = logging.getLogger(__name__)

Listing = Callable[[str | None], list[dict[str, Any]]]
"""``listing(search)``: the directory rows (``CharacterNode.directory.listing``)."""
CardOf = Callable[[str], NameCard | None]
"""``card_of(peer_id)``: the name card of a libp2p character online, or None."""

BODY_TIMEOUT_S = 10
"""Seconds a request body may take to arrive (a slow POST is cut, 408)."""

ROUTE_KINDS = {"visit": "visit", "root_visit": "visit", "chat": "chat", "root_chat": "chat"}
"""Endpoints with a rate of their own; the rest share the ``other`` rate."""


def seed_manifest(card: NameCard) -> dict[str, Any]:
    """A name card in the seed's manifest shape (name, icon, greeting, description)."""
    icon: str | None = None
    if isinstance(card.icon, IconLink):
        icon = card.icon.url
    elif isinstance(card.icon, InlineIcon):
        icon = f"data:{card.icon.mime};base64,{base64.b64encode(card.icon.data).decode()}"
    return {
        "name": card.name,
        "icon": icon,
        "greeting": card.persona.greeting,
        "description": card.description,
        "languages": list(card.persona.languages),
        # The tools it can provide: the MCP tools it lends during a visit, as on its card.
        "souvenirs": card_to_dict(card)["souvenirs"],
        "id": card.id,
    }


def agent_card_of(card: NameCard, base_url: str, addrs: list[str]) -> dict[str, Any]:
    """An A2A v1.0-shaped agent card for the character the bridge fronts: the seed
    protocol at the bridge's root as its interface, its PeerID and multiaddrs as an
    extension so an A2A client can also find it on libp2p."""
    description = card.description or f"{card.name}, a RoomVerse character"
    return {
        "name": card.name,
        "description": description,
        "version": card.version,
        "supportedInterfaces": [
            {"url": base_url, "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}
        ],
        "capabilities": {
            "streaming": False,
            "pushNotifications": False,
            "extensions": [
                {
                    "uri": "urn:roomverse:libp2p",
                    "description": "The character's libp2p identity (RoomVerse network).",
                    "required": False,
                    "params": {"peerId": card.id, "multiaddrs": addrs},
                }
            ],
        },
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [
            {
                "id": "visit",
                "name": "Visit and chat",
                "description": f"Drop in on {card.name} and talk (POST /visit, then /chat).",
                "tags": ["roleplay", "conversation", "roomverse"],
                "examples": [card.persona.greeting] if card.persona.greeting else [],
                "inputModes": ["text/plain"],
                "outputModes": ["text/plain"],
            }
        ],
    }


def problem_response(problem: Problem) -> Response:
    response = Response(_json(problem.body()), status=problem.status, content_type=PROBLEM_JSON)
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def create_bridge_app(
    registry: Registry,
    gate: Gate,
    listing: Listing,
    card_of: CardOf,
    visits: LegacyVisits,
    *,
    front: Callable[[], str | None] | None = None,
    addrs_of: Callable[[str], list[str]] = lambda peer_id: [],
    public_url: str | None = None,
    clock_s: Callable[[], float] = time.monotonic,
    node_metrics: ReadingsCollector | None = None,
    health: Callable[[], Health] = lambda: Health({}),
    metrics_public: bool = False,
) -> QuartTrio:
    """``node_metrics``: the bridge's node's families, served on ``/metrics`` beside the
    bridge's own; ``health``: what ``/healthz`` answers; ``metrics_public``: those two
    pass the gate like any route instead of answering this machine only."""
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    # Slow clients: hypercorn closes a connection whose request headers are not complete
    # within its keep-alive timeout (5 s); a body must then arrive within this.
    app.config["BODY_TIMEOUT"] = BODY_TIMEOUT_S
    app.config["PROPAGATE_EXCEPTIONS"] = False

    counts = BridgeCounts()
    collectors = [] if node_metrics is None else [node_metrics]
    scraped = metrics_registry(*collectors, ReadingsCollector(bridge_families(counts)))

    @app.before_request
    async def admit() -> None:
        route = request.endpoint or "other"
        peer = request.remote_addr or ""
        if route_of(route) in LOCAL_ROUTES and not metrics_public:
            if direct_loopback(peer, request.headers):
                return
            raise Problem(
                403,
                "local-only",
                "Only from this machine",
                f"{request.path} answers this machine only, not through a proxy "
                "(the operator may pass --metrics-public)",
            )
        ip = gate.client_ip(peer, request.headers.get("X-Forwarded-For", ""))
        kind = ROUTE_KINDS.get(route, "other")
        given = request.headers.get(TOKEN_HEADER) or bearer_token(
            request.headers.get("Authorization")
        )
        gate.admit(kind, ip, given or "", clock_s())

    @app.after_request
    async def harden(response: Response) -> Response:
        counts.answered(request.endpoint, response.status_code)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if response.status_code >= 400:
            response.headers["Connection"] = "close"  # the body may be left unread
        return response

    @app.errorhandler(Problem)
    async def refused(problem: Problem) -> Response:
        if problem.status >= 500:
            logger.warning("bridge request failed: %s", problem)
        else:
            logger.info("bridge request refused: %s", problem)
            counts.refused(problem.slug)
        return problem_response(problem)

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        slug = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}.get(
            status, "bad-request"
        )
        detail = exc.description or exc.name
        if status == 413:
            detail = f"the request body is over {MAX_BODY_BYTES} bytes"
        if status < 500:
            counts.refused(slug)
        return problem_response(Problem(status, slug, exc.name, detail))

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        logger.exception("bridge request crashed")
        return problem_response(
            Problem(500, "internal", "Internal error", "the bridge failed; see its log")
        )

    async def json_body() -> object:
        if request.mimetype != "application/json":
            raise Problem(
                415, "unsupported-media-type", "Unsupported media type", "send application/json"
            )
        data = await request.get_data(cache=False, as_text=False)
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid(f"the body is not JSON: {exc}") from exc

    def base_url() -> str:
        return (public_url or request.host_url).rstrip("/")

    def online(search: str | None) -> list[dict[str, Any]]:
        rows = []
        for row in listing(search):
            if row["self"] or row["status"] not in ("online", "away", "asleep"):
                continue
            legacy = row["vouched_by"] is not None
            if not legacy and card_of(row["peer_id"]) is None:
                continue  # a bridge, not a character
            url = row["addrs"][0] if legacy and row["addrs"] else None
            rows.append(
                {
                    "id": row["peer_id"],
                    "name": row["name"],
                    "status": row["status"],
                    "description": row["description"],
                    "kind": "legacy" if legacy else "libp2p",
                    "url": url or f"{base_url()}/characters/{row['peer_id']}",
                }
            )
        return rows

    @app.post("/register")
    async def register() -> Response:
        registration = parse_registration(await json_body())
        registered = await registry.register(registration)
        return Response(
            _json(
                {
                    "id": registered.peer_id,
                    "url": registered.url,
                    "lease_s": registered.lease_s,
                    "lease_expires_ms": registered.lease_expires_ms,
                    "online": online(None),
                }
            ),
            content_type="application/json",
        )

    def character(peer_id: str) -> NameCard:
        card = card_of(peer_id)
        if card is None:
            raise Problem(
                404,
                "no-such-character",
                "No such character",
                f"no libp2p character {peer_id[:64]!r} is online here (legacy participants "
                "are reached at their own URL: see GET /directory)",
            )
        return card

    def fronted() -> str:
        """The PeerID of the character ``--character`` names, if it is online."""
        if front is None:
            raise Problem(
                404,
                "no-front-character",
                "No character here",
                "this bridge fronts no character (--character); see GET /directory",
            )
        peer_id = front()
        if peer_id is None:
            raise Problem(
                503,
                "character-offline",
                "The character is not online",
                "the character this bridge fronts is not online now; try again later",
                headers={"Retry-After": "60"},
            )
        return peer_id

    async def manifest_of(peer_id: str) -> Response:
        return Response(_json(seed_manifest(character(peer_id))), content_type="application/json")

    async def visit_of(peer_id: str) -> Response:
        wanted = parse_visit(await json_body())
        card = character(peer_id)
        conversation, reply, done = await visits.start(
            peer_id, card.name, wanted.visitor, wanted.message, wanted.context
        )
        answer: dict[str, Any] = {
            "conversation_id": conversation.id,
            "reply": reply,
            "host": {"id": peer_id, "name": card.name},
            "done": done,
        }
        if done:
            answer["outcome"] = conversation.outcome
        return Response(_json(answer), content_type="application/json")

    async def chat_with(peer_id: str) -> Response:
        wanted = parse_chat(await json_body())
        conversation, reply, done = await visits.chat(
            peer_id, wanted.conversation_id, wanted.message
        )
        answer: dict[str, Any] = {"reply": reply, "done": done}
        if done:
            answer["outcome"] = conversation.outcome
        return Response(_json(answer), content_type="application/json")

    @app.get("/characters/<peer_id>/manifest")
    async def manifest(peer_id: str) -> Response:
        return await manifest_of(peer_id)

    @app.post("/characters/<peer_id>/visit")
    async def visit(peer_id: str) -> Response:
        return await visit_of(peer_id)

    @app.post("/characters/<peer_id>/chat")
    async def chat(peer_id: str) -> Response:
        return await chat_with(peer_id)

    @app.get("/manifest")
    async def root_manifest() -> Response:
        return await manifest_of(fronted())

    @app.post("/visit")
    async def root_visit() -> Response:
        return await visit_of(fronted())

    @app.post("/chat")
    async def root_chat() -> Response:
        return await chat_with(fronted())

    @app.get("/.well-known/agent-card.json")
    async def agent_card() -> Response:
        peer_id = fronted()
        card = agent_card_of(character(peer_id), base_url(), addrs_of(peer_id))
        return Response(_json(card), content_type="application/json")

    @app.get("/directory")
    async def directory() -> Response:
        unknown = sorted(set(request.args) - {"q"})
        if unknown:
            raise invalid(f"unknown query parameter(s) {', '.join(map(repr, unknown))}")
        search = request.args.get("q")
        if search is not None:
            search = text(search, "q", MAX_NAME_CHARS, one_line=True)
        return Response(_json({"online": online(search)}), content_type="application/json")

    add_metrics_routes(app, scraped, health)
    return app
