"""``/mcp``: the character's own lent tools over MCP streamable HTTP, for its owner.

The owner (or MCP Inspector, or any MCP client the owner hands the token to) can list and
call exactly what the character lends to partners (``lender.lent()``), to see what a
partner sees and to try a tool. It shares the dashboard's port: :func:`with_mcp` puts the
MCP app beside the Quart app under hypercorn's ``TrioDispatcherMiddleware`` (which also
fans the ASGI lifespan out to both, and the MCP session manager runs in it).

Who may call: the dashboard's own guard (:mod:`node.dashboard.guard`), with the token in
``X-Roomverse-Token`` or ``Authorization: Bearer <token>`` (not in the query string: MCP
clients put URLs in their config files and logs). The SDK's Host guard is kept on for a
loopback dashboard, set to our exact port, so it agrees with ours and never answers 421 to
the URL the node printed; on a public address (``--dashboard-public``) the names the owner
will use cannot be known, so only our guard (token, same-origin) applies, as for the rest
of the dashboard.

Calls run through the plugins with the same timeout and result cap a partner gets
(:class:`~node.souvenirs.service.SouvenirService`'s ``call_timeout_s`` and
``max_result_bytes``). A tool lent with ``ask`` is *not* held for approval here: the
approval exists so the owner decides what a partner runs, and whoever holds the token can
approve any waiting call from the same dashboard anyway, so holding the owner's own call
for the owner's own click would protect nothing (and would leave an MCP client hanging).
The owner's calls are not visits, so they leave no footprint; each is an event
(``souvenir_owner_call``: tool and outcome, never arguments or results).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final, cast

from hypercorn.middleware.dispatcher import TrioDispatcherMiddleware
from hypercorn.typing import ASGIFramework
from mcp import MCPError, types
from mcp.server import Server, ServerRequestContext
from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from node.dashboard.guard import TOKEN_HEADER, RequestFacts, bearer_token, refusal
from node.souvenirs.plugin_errors import PluginError
from node.souvenirs.wire import MAX_ARGUMENT_BYTES

if TYPE_CHECKING:
    from quart_trio import QuartTrio

    from node.character import CharacterNode
    from node.souvenirs.service import SouvenirService

logger = logging.getLogger(__name__)

MOUNT: Final = "/mcp"
MAX_BODY_BYTES: Final = MAX_ARGUMENT_BYTES + 4096
"""One JSON-RPC message: a partner's arguments cap plus the envelope around them."""
_LOOPBACK_NAMES: Final = ("127.0.0.1", "localhost", "[::1]")


def with_mcp(
    dashboard: QuartTrio, node: CharacterNode, token: str, *, port: int, loopback: bool
) -> TrioDispatcherMiddleware:
    """The dashboard's ASGI app with ``/mcp`` beside it on the same port."""
    face = TokenGuard(
        mcp_app(node, port=port, loopback=loopback),
        token,
        loopback_port=port if loopback else None,
    )
    # Order matters: the first prefix that matches serves the request.
    # (Starlette's loose ASGI types and hypercorn's typed scopes are the same protocol.)
    return TrioDispatcherMiddleware({MOUNT: cast(ASGIFramework, face), "": dashboard})


def host_guard(port: int, *, loopback: bool) -> TransportSecuritySettings:
    """The SDK's DNS-rebinding guard, agreeing with ours (see the module's docstring)."""
    if not loopback:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = [f"{name}:{port}" for name in _LOOPBACK_NAMES]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{host}" for host in hosts],
    )


def mcp_app(node: CharacterNode, *, port: int, loopback: bool) -> ASGIApp:
    """The streamable HTTP app serving :func:`lent_tools_server` at :data:`MOUNT`."""
    return lent_tools_server(node).streamable_http_app(
        streamable_http_path=MOUNT,
        # Each request stands alone: no session state to keep or to time out.
        stateless_http=True,
        json_response=True,
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=host_guard(port, loopback=loopback),
    )


def lent_tools_server(node: CharacterNode) -> Server[Any]:
    """A low-level MCP server whose tools are what ``node`` lends right now."""

    def souvenirs() -> SouvenirService:
        if node.agent is None:
            raise MCPError(types.INVALID_REQUEST, "this node has no character: it lends nothing")
        return node.agent.souvenirs

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        lender = souvenirs().lender
        lent = () if lender is None else lender.lent()
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=tool.name,
                    description=tool.description,
                    input_schema=tool.input_schema,
                    annotations=types.ToolAnnotations(read_only_hint=tool.read_only),
                )
                for tool in lent
            ]
        )

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        service = souvenirs()
        lender = service.lender
        if lender is None or lender.find(params.name) is None:
            raise MCPError(types.INVALID_PARAMS, f"{params.name!r} is not lent")
        try:
            outcome = await lender.call(
                params.name,
                dict(params.arguments or {}),
                timeout_s=service.call_timeout_s,
                max_result_bytes=service.max_result_bytes,
            )
        except PluginError as exc:
            service.events.emit(
                "souvenir_owner_call", tool=params.name, outcome=f"failed:{exc.reason}"
            )
            return _result(f"The tool was not run: {exc.reason}.", is_error=True)
        service.events.emit(
            "souvenir_owner_call",
            tool=params.name,
            outcome="tool_error" if outcome.is_error else "ok",
            result_bytes=outcome.size,
        )
        return _result(outcome.text, is_error=outcome.is_error)

    return Server("roomverse", on_list_tools=list_tools, on_call_tool=call_tool)


def _result(text: str, *, is_error: bool) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=is_error)


class TokenGuard:
    """The dashboard's guard in front of the MCP app (an ASGI middleware)."""

    def __init__(self, app: ASGIApp, token: str, *, loopback_port: int | None) -> None:
        self.app = app
        self.token = token
        self.loopback_port = loopback_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = Headers(scope=scope)
            facts = RequestFacts(
                method=str(scope.get("method", "GET")),
                host=headers.get("host", ""),
                origin=headers.get("origin"),
                token=token_of(headers),
            )
            refused = refusal(facts, self.token, loopback_port=self.loopback_port)
            if refused is not None:
                extra = {"Connection": "close", "Cache-Control": "no-store"}
                if refused.status == 401:
                    extra["WWW-Authenticate"] = 'Bearer realm="roomverse dashboard"'
                reply = JSONResponse({"error": refused.error}, refused.status, headers=extra)
                await reply(scope, receive, send)
                return
            # The dispatcher appended the mount to root_path; the MCP app routes on the
            # full path (its endpoint is MOUNT), so it gets the scope as it came.
            root = str(scope.get("root_path", ""))
            if root.endswith(MOUNT):
                scope = {**scope, "root_path": root[: -len(MOUNT)]}
        await self.app(scope, receive, send)


def token_of(headers: Headers) -> str | None:
    """The token from ``X-Roomverse-Token`` or ``Authorization: Bearer``."""
    return headers.get(TOKEN_HEADER) or bearer_token(headers.get("authorization"))
