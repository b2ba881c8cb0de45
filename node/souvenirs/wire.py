"""The ``/roomverse/mcp/1.0.0`` exchange: MCP JSON-RPC, one signed ``mcp`` envelope a frame.

One stream carries one exchange: the caller sends a JSON-RPC request (``tools/list`` or
``tools/call``), the lender answers with one JSON-RPC response or error, and the stream
closes. Each message is the JSON text of an MCP JSON-RPC message (validated with the
``mcp`` SDK's own types) inside a signed envelope whose body names the visit it belongs
to::

    {"visit": "<32 hex>", "rpc": "<JSON-RPC message as JSON text>"}

JSON text rather than msgpack maps: tool arguments and results are arbitrary JSON (floats,
nulls, deep nesting) that the envelope's canonical msgpack form refuses, and MCP's own
wire form is JSON. The envelope is verified like a visit's (signature, the
Noise-authenticated sender, the timestamp window); replays are refused by the lender's
capability (a request id is used once per visit), not by the gossip replay window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import mcp.types as mcp_types
from pydantic import ValidationError

from keys import Bodies
from keys.errors import RemoteError, SchemaError
from keys.kinds import KIB, KIND_MCP, SIZE_CAPS

MAX_FRAME: Final = SIZE_CAPS[KIND_MCP]
MAX_RPC_CHARS: Final = 56 * KIB
"""The JSON text of one message: the envelope (64 KiB) less its own fields and slack."""
MAX_ARGUMENT_BYTES: Final = 8 * KIB
"""The JSON of one call's arguments: a tool call is a few fields, never a document."""
MAX_RESULT_BYTES: Final = 32 * KIB
"""The text of one result that travels back (the lender cuts it there or refuses)."""
MAX_REQUEST_ID: Final = 2**31
_VISIT_ID: Final = re.compile(r"[0-9a-f]{32}")

CALL: Final = "tools/call"
LIST: Final = "tools/list"
METHODS: Final = frozenset({CALL, LIST})

# JSON-RPC error codes: the standard ones, and ours for a refused capability.
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
REFUSED: Final = -32001
"""The lender refused the call (``data.reason`` says why: ``no_visit``, ``not_lent``...)."""
TOOL_FAILED: Final = -32002
"""The lender's plugin could not answer (``data.reason``: ``timeout``, ``too_large``...)."""


class McpProtocolError(RemoteError):
    """An ``mcp`` message that is not the MCP JSON-RPC this exchange allows."""

    reason = "bad_mcp_message"


def validate_mcp_body(body: Mapping[str, Any]) -> None:
    """The ``mcp`` body schema (see :data:`MCP_BODIES`)."""
    for name in ("visit", "rpc"):
        if name not in body:
            raise SchemaError(f"body.{name}: required field is missing")
    for name in body:
        if name not in ("visit", "rpc"):
            raise SchemaError(f"body.{name}: unknown field")
    visit = body["visit"]
    if type(visit) is not str or _VISIT_ID.fullmatch(visit) is None:
        raise SchemaError("body.visit: must be 32 lowercase hex characters")
    rpc = body["rpc"]
    if type(rpc) is not str or not 2 <= len(rpc) <= MAX_RPC_CHARS:
        raise SchemaError(f"body.rpc: must be JSON text of 2..{MAX_RPC_CHARS} characters")


MCP_BODIES: Final[Bodies] = MappingProxyType({KIND_MCP: validate_mcp_body})
"""The ``mcp`` body validator, as ``keys.verify(..., bodies=)`` takes it."""


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """A caller's request: ``tools/list`` (``tool`` empty) or ``tools/call``."""

    id: int
    method: str
    tool: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolListing:
    """One lent tool as ``tools/list`` answers it."""

    name: str
    description: str
    input_schema: Mapping[str, Any]
    read_only: bool


@dataclass(frozen=True, slots=True)
class ToolAnswer:
    """A ``tools/call`` result: the text the tool produced, and whether it is an error."""

    text: str
    is_error: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """A JSON-RPC error answer: ``reason`` is ours (``not_lent``, ``quota_visit``...)."""

    code: int
    reason: str
    message: str


Answer = tuple[ToolListing, ...] | ToolAnswer | Refusal


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise McpProtocolError(f"{what} is not JSON") from exc


def _dump(model: Any) -> str:
    text: str = model.model_dump_json(by_alias=True, exclude_unset=True)
    return text


def encode_request(request: ToolRequest) -> str:
    params: dict[str, Any] | None = None
    if request.method == CALL:
        params = {"name": request.tool, "arguments": dict(request.arguments)}
    message = mcp_types.JSONRPCRequest(
        jsonrpc="2.0", id=request.id, method=request.method, params=params
    )
    return _dump(message)


def decode_request(rpc: str) -> ToolRequest:
    """The request in ``rpc``; raises :class:`McpProtocolError` for anything else."""
    raw = _json(rpc, "the request")
    try:
        message = mcp_types.JSONRPCRequest.model_validate(raw)
    except ValidationError as exc:
        raise McpProtocolError("not a JSON-RPC request") from exc
    if type(message.id) is not int or not 0 <= message.id < MAX_REQUEST_ID:
        raise McpProtocolError(f"the request id must be an int in 0..{MAX_REQUEST_ID - 1}")
    if message.method not in METHODS:
        raise McpProtocolError(f"method {message.method[:40]!r} is not offered here")
    if message.method == LIST:
        return ToolRequest(message.id, LIST)
    try:
        params = mcp_types.CallToolRequestParams.model_validate(message.params or {})
    except ValidationError as exc:
        raise McpProtocolError("tools/call needs params {name, arguments}") from exc
    arguments = params.arguments or {}
    if len(json.dumps(arguments).encode()) > MAX_ARGUMENT_BYTES:
        raise McpProtocolError(f"the arguments are over {MAX_ARGUMENT_BYTES} bytes")
    return ToolRequest(message.id, CALL, params.name, arguments)


def encode_listing(request_id: int, tools: tuple[ToolListing, ...]) -> str:
    result = mcp_types.ListToolsResult(
        tools=[
            mcp_types.Tool(
                name=tool.name,
                description=tool.description,
                input_schema=dict(tool.input_schema),
                annotations=mcp_types.ToolAnnotations(read_only_hint=tool.read_only),
            )
            for tool in tools
        ]
    )
    return _response(request_id, result)


def encode_answer(request_id: int, answer: ToolAnswer) -> str:
    result = mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=answer.text)], is_error=answer.is_error
    )
    return _response(request_id, result)


def encode_refusal(request_id: int | None, refusal: Refusal) -> str:
    error = mcp_types.JSONRPCError(
        jsonrpc="2.0",
        # JSON-RPC answers a request it could not read with id null.
        id=request_id,  # type: ignore[arg-type]
        error=mcp_types.ErrorData(
            code=refusal.code, message=refusal.message, data={"reason": refusal.reason}
        ),
    )
    return _dump(error)


def _response(request_id: int, result: Any) -> str:
    payload = result.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return _dump(mcp_types.JSONRPCResponse(jsonrpc="2.0", id=request_id, result=payload))


def decode_answer(rpc: str, request: ToolRequest) -> Answer:
    """The lender's answer to ``request``; raises :class:`McpProtocolError` for anything
    that is not its answer (another id, another shape, a result over the caps)."""
    raw = _json(rpc, "the answer")
    if not isinstance(raw, dict):
        raise McpProtocolError("the answer is not a JSON-RPC message")
    # An error with id null answers a request the lender could not read (JSON-RPC 2.0).
    if "error" in raw and raw.get("id") in (request.id, None):
        return _refusal(raw)
    if raw.get("id") != request.id:
        raise McpProtocolError("the answer does not carry the request's id")
    try:
        message = mcp_types.JSONRPCResponse.model_validate(raw)
        if request.method == LIST:
            listing = mcp_types.ListToolsResult.model_validate(message.result)
            return tuple(_listing(tool) for tool in listing.tools)
        result = mcp_types.CallToolResult.model_validate(message.result)
    except ValidationError as exc:
        raise McpProtocolError(f"not a {request.method} result") from exc
    text = result_text(result)
    if len(text.encode()) > MAX_RESULT_BYTES:
        raise McpProtocolError(f"the result is over {MAX_RESULT_BYTES} bytes")
    return ToolAnswer(text, bool(result.is_error))


def result_text(result: mcp_types.CallToolResult) -> str:
    """What a tool result says, as text: its text contents, or its structured content as
    JSON, with other content (images, resources) named but not carried."""
    parts: list[str] = []
    for item in result.content:
        if isinstance(item, mcp_types.TextContent):
            parts.append(item.text)
        else:
            parts.append(f"[{item.type} content not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _refusal(raw: dict[str, Any]) -> Refusal:
    try:
        error = mcp_types.JSONRPCError.model_validate(raw).error
    except ValidationError as exc:
        raise McpProtocolError("not a JSON-RPC error") from exc
    data = error.data if isinstance(error.data, dict) else {}
    reason = data.get("reason")
    reason = reason if isinstance(reason, str) and reason.isidentifier() else "refused"
    return Refusal(error.code, reason[:40], error.message[:200])


def _listing(tool: mcp_types.Tool) -> ToolListing:
    annotations = tool.annotations
    read_only = bool(annotations is not None and annotations.read_only_hint)
    return ToolListing(tool.name, tool.description or "", tool.input_schema, read_only)
