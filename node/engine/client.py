"""One OpenAI-compatible engine: a chat completion call with every failure made typed.

The ``openai`` SDK is the only thing here that speaks HTTP. Its exceptions (and the odd
``ValueError`` from a server that sends broken JSON) stop at :meth:`EngineClient.complete`
and leave as :class:`EngineCallFailed` with a short ``reason``, so failover decides on
codes, not on SDK classes; the SDK's own exception stays attached as ``__cause__`` for
debugging but its text (which may quote a server's error body) is never copied into ours.

Tools are offered when the caller gives some and the engine takes them. Many local servers
cannot call tools and refuse a request that offers them; such a refusal makes the client
tool-less for good (logged once) and the same call goes again without tools, so a caller
never fails because of tools alone.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit

import openai
import trio
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
    ChatCompletionToolParam,
)

from node.engine.errors import EngineCallFailed
from node.engine.key_store import Secret
from node.engine.messages import (
    MAX_TOOL_CALLS,
    ChatMessage,
    Completion,
    Sampling,
    ToolCall,
    ToolSpec,
    flatten_tool_messages,
    tool_call_of,
)
from node.engine.presets import ResolvedEngine, display_url

log = logging.getLogger(__name__)

_NO_KEY: Final = "none"
"""Sent when no key is configured: the SDK always sends one, and must never fall back to
the owner's ``OPENAI_API_KEY`` (that would hand it to whatever server is configured)."""
_CHARS_PER_TOKEN: Final = 4
"""BPE tokenizers average about 4 characters of English per token."""
_TOKENS_PER_MESSAGE: Final = 4
"""Role markers and separators the chat template adds around each message."""
TOOLS_REFUSED: Final = frozenset(("http_400", "http_404", "http_422", "http_501", "bad_response"))
"""Failures that, to a request offering tools, may mean "this server cannot call tools"
(Ollama answers 400 for a model without tool support, some servers 422 or 501 for the
unknown field, a proxy 404 for an endpoint variant it lacks)."""


class EngineClient:
    """Calls one engine. Make it with :func:`open_engine_client`."""

    def __init__(
        self, engine: ResolvedEngine, sdk: openai.AsyncOpenAI, *, tools: bool = True
    ) -> None:
        self.engine = engine
        self._sdk = sdk
        # Whether min_p and repeat_penalty are sent (see accepts_llama_params).
        self.llama_params = accepts_llama_params(engine.base_url)
        self.tools_supported = tools
        """Whether tools are offered to this engine: False when configured so, or once it
        refused a request with tools that it answered without them."""

    def __repr__(self) -> str:
        return f"EngineClient({self.engine.name!r}, {display_url(self.engine.base_url)!r})"

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float | None = None,
        sampling: Sampling | None = None,
        tools: Sequence[ToolSpec] = (),
    ) -> Completion:
        """One chat completion, bounded by the engine's ``timeout_s`` from start to end.

        ``temperature`` wins over ``sampling.temperature``. The SDK's timeout applies per
        network phase (connect, each read), so a server that trickles bytes could outlast
        it; the trio deadline bounds the whole call (a retry without tools included).

        ``tools`` are offered (``tool_choice`` auto) if the engine takes them; the
        completion's ``tool_calls`` then hold the calls it asked for, only ever of tools
        offered, and its text may be empty. To a tool-less engine, tool calls and results
        earlier in ``messages`` go as plain text (see :func:`flatten_tool_messages`).
        """
        name = self.engine.name
        with trio.move_on_after(self.engine.timeout_s):
            if not tools or not self.tools_supported:
                return await self._call(messages, max_tokens, temperature, sampling, ())
            try:
                return await self._call(messages, max_tokens, temperature, sampling, tools)
            except EngineCallFailed as exc:
                if exc.reason not in TOOLS_REFUSED:
                    raise
                refusal = exc.reason
            # Again without tools (and tool messages as text): only if that works was the
            # refusal about tools (a 400 for a prompt too long must not cost the engine
            # its tools).
            plain = flatten_tool_messages(messages)
            completion = await self._call(plain, max_tokens, temperature, sampling, ())
            if self.tools_supported:
                self.tools_supported = False
                log.warning(
                    "engine %r refused a request with tools (%s) and answered without: "
                    "it gets no tools from now on",
                    name,
                    refusal,
                )
            return completion
        raise EngineCallFailed(name, "timeout")

    async def _call(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int,
        temperature: float | None,
        sampling: Sampling | None,
        tools: Sequence[ToolSpec],
    ) -> Completion:
        name = self.engine.name
        sampling = sampling or Sampling()
        if temperature is None:
            temperature = sampling.temperature
        extra: dict[str, Any] = {}
        if self.llama_params:
            if sampling.min_p is not None:
                extra["min_p"] = sampling.min_p
            if sampling.repeat_penalty is not None:
                extra["repeat_penalty"] = sampling.repeat_penalty
        if not self.tools_supported:
            messages = flatten_tool_messages(messages)
        tool_params: list[ChatCompletionToolParam] = [_tool_param(tool) for tool in tools]
        auto: ChatCompletionToolChoiceOptionParam = "auto"
        try:
            response = await self._sdk.chat.completions.create(
                model=self.engine.model,
                messages=[_to_param(message) for message in messages],
                max_tokens=max_tokens,
                temperature=openai.omit if temperature is None else temperature,
                top_p=openai.omit if sampling.top_p is None else sampling.top_p,
                stop=list(sampling.stop) if sampling.stop else openai.omit,
                tools=tool_params if tool_params else openai.omit,
                tool_choice=auto if tool_params else openai.omit,
                extra_body=extra or None,
            )
        except openai.APITimeoutError as exc:
            raise EngineCallFailed(name, "timeout") from exc
        except openai.APIConnectionError as exc:
            raise EngineCallFailed(name, "connection") from exc
        except openai.APIStatusError as exc:
            raise EngineCallFailed(name, f"http_{exc.status_code}") from exc
        except (openai.OpenAIError, ValueError) as exc:
            # APIResponseValidationError, or a JSON body that does not parse.
            raise EngineCallFailed(name, "bad_response") from exc
        return _completion(name, messages, response, tools)


@asynccontextmanager
async def open_engine_client(
    engine: ResolvedEngine, key: Secret | None, *, tools: bool = True
) -> AsyncIterator[EngineClient]:
    """An :class:`EngineClient` whose HTTP connections close when the block ends;
    ``tools=False`` never offers it tools."""
    async with openai.AsyncOpenAI(
        base_url=engine.base_url,
        api_key=_NO_KEY if key is None else key.reveal(),
        timeout=engine.timeout_s,
        # Failover is our job: an SDK retry would spend another timeout on a dead engine.
        max_retries=0,
    ) as sdk:
        # The SDK picks these up from OPENAI_ORG_ID / OPENAI_PROJECT_ID and sends them as
        # headers; they identify the owner's OpenAI account and have no business going to
        # a local or third-party server.
        sdk.organization = None
        sdk.project = None
        yield EngineClient(engine, sdk, tools=tools)


def accepts_llama_params(base_url: str) -> bool:
    """Whether the server at ``base_url`` is one to send llama.cpp's sampling names to.

    Servers on this machine or the local network are the llama.cpp family (the embedded
    engine, llama.cpp's server, LM Studio, KoboldCpp read ``min_p`` and
    ``repeat_penalty``; Ollama ignores fields it does not know). Hosted APIs may refuse
    an unknown field with a 400 (OpenAI does), so they get the standard ones only.
    """
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # A bare name ("ollama") is a container or a LAN host, never a hosted API.
        return bool(host) and "." not in host
    return address.is_loopback or address.is_private or address.is_link_local


def _tool_param(tool: ToolSpec) -> ChatCompletionToolParam:
    # No "strict": most schemas an MCP server declares are not valid strict schemas.
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


def _to_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    if message.role == "assistant":
        if message.tool_calls:
            return {
                "role": "assistant",
                # OpenAI's own shape: null content next to the calls when there is none.
                "content": message.content or None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    for call in message.tool_calls
                ],
            }
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


def _completion(
    name: str,
    messages: Sequence[ChatMessage],
    response: object,
    tools: Sequence[ToolSpec] = (),
) -> Completion:
    """Read the reply defensively: local servers often send loosely shaped JSON, which the
    SDK passes through unvalidated (missing fields are missing attributes)."""
    if not isinstance(response, ChatCompletion):
        raise EngineCallFailed(name, "bad_response")
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise EngineCallFailed(name, "bad_response")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):
        raise EngineCallFailed(name, "bad_response")
    calls = _tool_calls(name, getattr(message, "tool_calls", None), tools)
    content = (content or "").strip()
    if not content and not calls:
        raise EngineCallFailed(name, "empty_reply")
    usage = getattr(response, "usage", None)
    prompt_tokens = _count(getattr(usage, "prompt_tokens", None))
    completion_tokens = _count(getattr(usage, "completion_tokens", None))
    if prompt_tokens is None:
        prompt_tokens = sum(_estimate(m.content) + _TOKENS_PER_MESSAGE for m in messages)
        prompt_tokens += sum(_estimate(json.dumps(_tool_param(tool))) for tool in tools)
    if completion_tokens is None:
        completion_tokens = _estimate(content) + sum(
            _estimate(call.name + call.arguments) for call in calls
        )
    log.debug(
        "engine %r answered: %d prompt + %d completion tokens, %d tool calls",
        name,
        prompt_tokens,
        completion_tokens,
        len(calls),
    )
    return Completion(content, name, prompt_tokens, completion_tokens, calls)


def _tool_calls(name: str, raw: object, tools: Sequence[ToolSpec]) -> tuple[ToolCall, ...]:
    """The well-formed calls of offered tools in a reply; anything else is dropped
    (and logged): a model's slip must not fail the turn, nor reach a tool not offered."""
    if not raw or not tools:
        return ()
    if not isinstance(raw, list):
        log.warning("engine %r sent tool_calls that are not a list; ignored", name)
        return ()
    offered = {tool.name for tool in tools}
    calls: list[ToolCall] = []
    for item in raw[:MAX_TOOL_CALLS]:
        function = _field(item, "function")
        raw_id = _field(item, "id")
        if raw_id in {call.id for call in calls}:
            raw_id = None  # each result must pair with one call: a fresh id
        call = tool_call_of(raw_id, _field(function, "name"), _field(function, "arguments"))
        if call is None or call.name not in offered:
            log.warning("engine %r asked for a malformed or unoffered tool call; ignored", name)
            continue
        calls.append(call)
    if len(raw) > MAX_TOOL_CALLS:
        log.warning("engine %r asked for %d tool calls; kept %d", name, len(raw), MAX_TOOL_CALLS)
    return tuple(calls)


def _field(item: object, key: str) -> object:
    """``item[key]`` or ``item.key``: the SDK leaves a shape it does not know as a dict."""
    if isinstance(item, dict):
        return item.get(key)
    return getattr(item, key, None)


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _estimate(text: str) -> int:
    """Token estimate for servers that report no usage, so the budget still moves."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN)
