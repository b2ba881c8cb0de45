"""An OpenAI-compatible HTTP face for any ``generate`` callable.

Why: the node talks to every engine through one client path (the ``openai`` SDK over HTTP).
The embedded llama-cpp engine and the fake engine used by tests both sit behind this app,
so the client code under test is the same code that talks to Ollama or LM Studio.

Only the subset a chat client needs is served: ``GET /v1/models`` and non-streaming
``POST /v1/chat/completions``, also under ``/callers/<caller>/v1`` so a shared engine knows
whom it serves (the party's characters queue fairly on one model). Every refusal is an
OpenAI-style error body (``{"error": {"message", "type", "code"}}``) so the SDK maps it to
its own exceptions.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, jsonify, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from keys.errors import LocalError
from node.engine.messages import (
    MAX_STOPS,
    MAX_TOOL_ARGUMENTS,
    MAX_TOOL_CALL_ID,
    MAX_TOOL_CALLS,
    MAX_TOOLS,
    TOOL_NAME_PATTERN,
    ChatMessage,
    Role,
    ToolCall,
    ToolSpec,
    ToolSpecError,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""A chat request is a few KiB of prompt; anything near a MiB is a mistake or an attack."""

_ROLES: frozenset[str] = frozenset(("system", "user", "assistant", "tool"))
_TOOL_CHOICES: frozenset[str] = frozenset(("none", "auto", "required"))

FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat completion request, as the engine behind the app sees it."""

    model: str
    messages: list[ChatMessage]
    max_tokens: int | None
    temperature: float | None
    headers: dict[str, str]
    """Request headers, names lower-cased (tests check what the client sent)."""
    top_p: float | None = None
    min_p: float | None = None
    """llama.cpp's name; like ``repeat_penalty``, not part of OpenAI's API."""
    repeat_penalty: float | None = None
    stop: tuple[str, ...] = ()
    caller: str = ""
    """Who asks, from the base URL ``/callers/<caller>/v1`` (one shared engine serves
    several characters fairly); empty on the plain ``/v1``."""
    tools: tuple[ToolSpec, ...] = ()
    """Function tools offered (at most :data:`MAX_TOOLS`)."""
    tool_choice: str = "none"
    """``none``, ``auto`` or ``required`` (OpenAI's default: ``auto`` when tools are
    offered, else ``none``); a forced function is ``required`` plus ``forced_tool``."""
    forced_tool: str | None = None
    """The one function the request forces (``tool_choice`` naming a function)."""


@dataclass(frozen=True)
class Generation:
    """What an engine produced for one request; token counts feed the caller's budget."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason = "stop"
    tool_calls: tuple[ToolCall, ...] = ()
    """Calls the engine asks for; the reply's finish_reason is then ``tool_calls``."""


Generate = Callable[[ChatRequest], Awaitable[Generation]]


class GenerationError(LocalError):
    """Raised by a ``generate`` callable to answer with an HTTP error instead of a reply.

    The app turns it into an OpenAI-style error body with ``status``, so the client sees
    the same exception it would get from a real server in that state.
    """

    def __init__(
        self, status: int, message: str, *, type: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or error_type_for(status)
        self.code = code


class BadRequest(LocalError):
    """The request body is not a chat completion request this server accepts."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def error_type_for(status: int) -> str:
    """The OpenAI ``error.type`` conventionally paired with an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_response(
    status: int, message: str, *, type: str | None = None, code: str | None = None
) -> Response:
    body = {"error": {"message": message, "type": type or error_type_for(status), "code": code}}
    response = jsonify(body)
    response.status_code = status
    return response


CALLER_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def caller_base_url(base_url: str, caller: str) -> str:
    """The base URL a caller named ``caller`` uses: ``http://h:p/callers/<caller>/v1``."""
    if not CALLER_PATTERN.match(caller):
        raise ValueError(f"a caller name is lower-case letters, digits and '-', not {caller!r}")
    return f"{base_url.removesuffix('/v1')}/callers/{caller}/v1"


def parse_chat_request(
    body: object, headers: Mapping[str, str], *, caller: str = ""
) -> ChatRequest:
    """Validate a decoded JSON body; raise :class:`BadRequest` naming the bad field."""
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if body.get("stream") not in (None, False):
        raise BadRequest("streaming is not supported by this server", param="stream")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' must be a non-empty string", param="model")
    messages = _parse_messages(body.get("messages"))
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise BadRequest("'max_tokens' must be a positive integer", param="max_tokens")
    tools = _tools(body.get("tools"))
    tool_choice, forced_tool = _tool_choice(body.get("tool_choice"), tools)
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 0, 2),
        headers={name.lower(): value for name, value in headers.items()},
        top_p=_number(body, "top_p", 0, 1),
        min_p=_number(body, "min_p", 0, 1),
        repeat_penalty=_number(body, "repeat_penalty", 0, 10),
        stop=_stop(body.get("stop")),
        caller=caller,
        tools=tools,
        tool_choice=tool_choice,
        forced_tool=forced_tool,
    )


def _tools(raw: object) -> tuple[ToolSpec, ...]:
    """OpenAI's ``tools``: function tools only, bounded in number and size."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_TOOLS:
        raise BadRequest(f"'tools' must be a list of at most {MAX_TOOLS} tools", param="tools")
    tools: list[ToolSpec] = []
    for index, item in enumerate(raw):
        where = f"tools[{index}]"
        function = item.get("function") if isinstance(item, dict) else None
        if (
            not isinstance(item, dict)
            or item.get("type") != "function"
            or not isinstance(function, dict)
        ):
            raise BadRequest(f"{where} must be a function tool", param=where)
        description = function.get("description", "")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(description, str) or not isinstance(parameters, dict):
            raise BadRequest(
                f"{where}: description must be a string, parameters an object", param=where
            )
        try:
            tools.append(ToolSpec(function.get("name", ""), description, parameters))
        except (ToolSpecError, TypeError) as exc:
            raise BadRequest(f"{where}: {exc}", param=where) from None
    if len({tool.name for tool in tools}) != len(tools):
        raise BadRequest("'tools' names must be unique", param="tools")
    return tuple(tools)


def _tool_choice(raw: object, tools: Sequence[ToolSpec]) -> tuple[str, str | None]:
    """``(choice, forced tool name)``; OpenAI's default is ``auto`` when tools are offered."""
    if raw is None:
        return ("auto" if tools else "none"), None
    if isinstance(raw, str) and raw in _TOOL_CHOICES:
        if raw != "none" and not tools:
            raise BadRequest(f"tool_choice {raw!r} needs 'tools'", param="tool_choice")
        return raw, None
    function = raw.get("function") if isinstance(raw, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if name not in {tool.name for tool in tools}:
        raise BadRequest(
            "'tool_choice' must be none, auto, required or a function in 'tools'",
            param="tool_choice",
        )
    return "required", cast(str, name)


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadRequest(f"'{name}' must be a number", param=name)
    if not (math.isfinite(value) and low <= value <= high):
        raise BadRequest(f"'{name}' must be between {low:g} and {high:g}", param=name)
    return float(value)


def _stop(raw: object) -> tuple[str, ...]:
    """OpenAI's ``stop``: one string or a list of at most four non-empty strings."""
    if raw is None:
        return ()
    stops = [raw] if isinstance(raw, str) else raw
    if (
        not isinstance(stops, list)
        or len(stops) > MAX_STOPS
        or not all(isinstance(stop, str) and stop for stop in stops)
    ):
        raise BadRequest(
            f"'stop' must be a string or a list of at most {MAX_STOPS} strings", param="stop"
        )
    return tuple(stops)


def _parse_messages(raw: object) -> list[ChatMessage]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty list", param="messages")
    messages: list[ChatMessage] = []
    for index, item in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object", param=where)
        role = item.get("role")
        if role not in _ROLES:
            raise BadRequest(f"{where}.role must be system, user, assistant or tool", param=where)
        tool_calls = (
            _message_tool_calls(item.get("tool_calls"), where) if role == "assistant" else ()
        )
        content = item.get("content")
        if content is None and tool_calls:
            content = ""
        if not isinstance(content, str):
            raise BadRequest(f"{where}.content must be a string", param=where)
        tool_call_id = ""
        if role == "tool":
            raw_id = item.get("tool_call_id")
            if not isinstance(raw_id, str) or not 0 < len(raw_id) <= MAX_TOOL_CALL_ID:
                raise BadRequest(f"{where}.tool_call_id must be a call's id", param=where)
            tool_call_id = raw_id
        messages.append(
            ChatMessage(
                role=cast(Role, role),
                content=content,
                tool_calls=tool_calls,
                tool_call_id=tool_call_id,
            )
        )
    return messages


def _message_tool_calls(raw: object, where: str) -> tuple[ToolCall, ...]:
    """An assistant message's ``tool_calls`` (the calls it asked for earlier)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_TOOL_CALLS:
        raise BadRequest(
            f"{where}.tool_calls must be a list of at most {MAX_TOOL_CALLS} calls", param=where
        )
    calls: list[ToolCall] = []
    for call in raw:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(function, dict):
            raise BadRequest(f"{where}.tool_calls[] must be function calls", param=where)
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
        if (
            not isinstance(call_id, str)
            or not 0 < len(call_id) <= MAX_TOOL_CALL_ID
            or not isinstance(name, str)
            or not TOOL_NAME_PATTERN.match(name)
            or not isinstance(arguments, str)
            or len(arguments) > MAX_TOOL_ARGUMENTS
        ):
            raise BadRequest(f"{where}.tool_calls[] needs an id, a name and arguments", param=where)
        calls.append(ToolCall(call_id, name, arguments))
    return tuple(calls)


def completion_body(model: str, generation: Generation, *, now: float) -> dict[str, Any]:
    """The ``chat.completion`` object the SDK parses; ``now`` fills ``created``."""
    message: dict[str, Any] = {"role": "assistant", "content": generation.text}
    finish_reason: str = generation.finish_reason
    if generation.tool_calls:
        message["content"] = generation.text or None
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in generation.tool_calls
        ]
        finish_reason = "tool_calls"
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(now),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": generation.prompt_tokens,
            "completion_tokens": generation.completion_tokens,
            "total_tokens": generation.prompt_tokens + generation.completion_tokens,
        },
    }


def create_openai_app(
    generate: Generate,
    *,
    models: Sequence[str],
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> QuartTrio:
    """Build the app; ``models`` is what ``GET /v1/models`` lists (any name is accepted)."""
    app = QuartTrio(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    listed = list(models)

    @app.get("/v1/models")
    @app.get("/callers/<caller>/v1/models")
    async def list_models(caller: str = "") -> Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "roomverse"} for m in listed]
        return jsonify({"object": "list", "data": data})

    @app.post("/v1/chat/completions")
    @app.post("/callers/<caller>/v1/chat/completions")
    async def chat_completions(caller: str = "") -> Response:
        body = await request.get_json(force=True, silent=True)
        if caller and not CALLER_PATTERN.match(caller):
            return error_response(404, f"no such caller path: {caller!r}")
        try:
            chat = parse_chat_request(body, dict(request.headers.items()), caller=caller)
        except BadRequest as exc:
            return error_response(400, exc.message, code=exc.param)
        try:
            generation = await generate(chat)
        except GenerationError as exc:
            return error_response(exc.status, exc.message, type=exc.type, code=exc.code)
        except Exception:
            # The client gets a 500 it can fail over on; the details stay in our log.
            log.exception("chat completion failed")
            return error_response(500, "the engine failed to generate a reply")
        return jsonify(completion_body(chat.model, generation, now=time.time()))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return error_response(status, exc.description or exc.name)

    return app


async def serve_openai(
    app: QuartTrio,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until cancelled (or ``shutdown_trigger`` returns).

    Reports the base URL (``http://HOST:PORT/v1``, the real port when ``port`` is 0) through
    ``task_status``. Binds loopback by default: an engine endpoint has no authentication.
    """
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    # A logger object (not "-") so hypercorn does not install its own stderr handler.
    config.errorlog = logging.getLogger("roomverse.engine.http")
    config.graceful_timeout = 1.0

    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve, app, config, shutdown_trigger=shutdown_trigger)
        )
        task_status.started(f"{binds[0]}/v1")


@asynccontextmanager
async def open_openai_server(
    app: QuartTrio, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve ``app`` for the duration of the block; yields the base URL.

    An exception raised in the block comes out as itself, not wrapped in the nursery's
    ExceptionGroup, so ``pytest.raises`` and ``except`` around the block work.
    """
    try:
        async with trio.open_nursery() as nursery:
            base_url: str = await nursery.start(partial(serve_openai, app, host=host, port=port))
            try:
                yield base_url
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
