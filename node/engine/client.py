"""One OpenAI-compatible engine: a chat completion call with every failure made typed.

The ``openai`` SDK is the only thing here that speaks HTTP. Its exceptions (and the odd
``ValueError`` from a server that sends broken JSON) stop at :meth:`EngineClient.complete`
and leave as :class:`EngineCallFailed` with a short ``reason``, so failover decides on
codes, not on SDK classes; the SDK's own exception stays attached as ``__cause__`` for
debugging but its text (which may quote a server's error body) is never copied into ours.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit

import openai
import trio
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from node.engine.errors import EngineCallFailed
from node.engine.key_store import Secret
from node.engine.messages import ChatMessage, Completion, Sampling
from node.engine.presets import ResolvedEngine, display_url

log = logging.getLogger(__name__)

_NO_KEY: Final = "none"
"""Sent when no key is configured: the SDK always sends one, and must never fall back to
the owner's ``OPENAI_API_KEY`` (that would hand it to whatever server is configured)."""
_CHARS_PER_TOKEN: Final = 4
"""BPE tokenizers average about 4 characters of English per token."""
_TOKENS_PER_MESSAGE: Final = 4
"""Role markers and separators the chat template adds around each message."""


class EngineClient:
    """Calls one engine. Make it with :func:`open_engine_client`."""

    def __init__(self, engine: ResolvedEngine, sdk: openai.AsyncOpenAI) -> None:
        self.engine = engine
        self._sdk = sdk
        # Whether min_p and repeat_penalty are sent (see accepts_llama_params).
        self.llama_params = accepts_llama_params(engine.base_url)

    def __repr__(self) -> str:
        return f"EngineClient({self.engine.name!r}, {display_url(self.engine.base_url)!r})"

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        temperature: float | None = None,
        sampling: Sampling | None = None,
    ) -> Completion:
        """One chat completion, bounded by the engine's ``timeout_s`` from start to end.

        ``temperature`` wins over ``sampling.temperature``. The SDK's timeout applies per
        network phase (connect, each read), so a server that trickles bytes could outlast
        it; the trio deadline bounds the whole call.
        """
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
        with trio.move_on_after(self.engine.timeout_s):
            try:
                response = await self._sdk.chat.completions.create(
                    model=self.engine.model,
                    messages=[_to_param(message) for message in messages],
                    max_tokens=max_tokens,
                    temperature=openai.omit if temperature is None else temperature,
                    top_p=openai.omit if sampling.top_p is None else sampling.top_p,
                    stop=list(sampling.stop) if sampling.stop else openai.omit,
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
            return _completion(name, messages, response)
        raise EngineCallFailed(name, "timeout")


@asynccontextmanager
async def open_engine_client(
    engine: ResolvedEngine, key: Secret | None
) -> AsyncIterator[EngineClient]:
    """An :class:`EngineClient` whose HTTP connections close when the block ends."""
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
        yield EngineClient(engine, sdk)


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


def _to_param(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


def _completion(name: str, messages: Sequence[ChatMessage], response: object) -> Completion:
    """Read the reply defensively: local servers often send loosely shaped JSON, which the
    SDK passes through unvalidated (missing fields are missing attributes)."""
    if not isinstance(response, ChatCompletion):
        raise EngineCallFailed(name, "bad_response")
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise EngineCallFailed(name, "bad_response")
    content = getattr(getattr(choices[0], "message", None), "content", None)
    if content is not None and not isinstance(content, str):
        raise EngineCallFailed(name, "bad_response")
    if not content or not content.strip():
        raise EngineCallFailed(name, "empty_reply")
    usage = getattr(response, "usage", None)
    prompt_tokens = _count(getattr(usage, "prompt_tokens", None))
    completion_tokens = _count(getattr(usage, "completion_tokens", None))
    if prompt_tokens is None:
        prompt_tokens = sum(_estimate(m.content) + _TOKENS_PER_MESSAGE for m in messages)
    if completion_tokens is None:
        completion_tokens = _estimate(content)
    log.debug(
        "engine %r answered: %d prompt + %d completion tokens",
        name,
        prompt_tokens,
        completion_tokens,
    )
    return Completion(content.strip(), name, prompt_tokens, completion_tokens)


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _estimate(text: str) -> int:
    """Token estimate for servers that report no usage, so the budget still moves."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN)
