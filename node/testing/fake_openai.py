"""A fake OpenAI-compatible engine over real HTTP, for tests of everything that calls an engine.

Why: the engine client, failover, budgets and visits must be tested through the same
``openai`` SDK and HTTP path they use in production. This fake is the real
:mod:`node.engine.openai_server` app with a scriptable ``generate``: it records every request
(sampling settings and stop sequences included), answers deterministically, ends a scripted
reply at the request's first stop sequence as a real server would, and can be told to fail
(any status) or to be slow. A scripted reply may ask for tool calls; each request records the
tools it offered and the tool results its messages carried (``ChatRequest.tools``,
``ChatRequest.messages`` with role ``"tool"``).

Run it alone for subprocess tests: ``python -m node.testing.fake_openai --port N`` prints the
base URL and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from node.engine.messages import ChatMessage, ToolCall
from node.engine.openai_server import (
    ChatRequest,
    Generation,
    GenerationError,
    create_openai_app,
    open_openai_server,
)

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "FakeOpenAI",
    "FakeReply",
    "ToolCall",
    "serve_fake_openai",
    "tool_results",
]


@dataclass(frozen=True)
class FakeReply:
    """One scripted answer: a reply text (and/or tool calls), or an HTTP error when
    ``status`` is not 200."""

    text: str = ""
    status: int = 200
    tool_calls: tuple[ToolCall, ...] = ()
    """Calls to ask for (sent as given, so a test can script a malformed one too)."""
    delay_s: float = 0.0
    """Seconds to wait before answering (a slow engine; clients' timeouts fire on it)."""
    prompt_tokens: int | None = None
    """None: a rough count (words in all messages), so token budgets move."""
    completion_tokens: int | None = None
    """None: a rough count (words in the reply)."""


def rough_tokens(text: str) -> int:
    """A word count standing in for a tokenizer: enough for budgets to move predictably."""
    return len(text.split())


def tool_results(request: ChatRequest) -> dict[str, str]:
    """The tool results a request carried, by the id of the call each answers."""
    return {m.tool_call_id: m.content for m in request.messages if m.role == "tool"}


def cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    """``text`` up to the first stop sequence, as a real server ends a generation there."""
    ends = [text.find(stop) for stop in stops if stop in text]
    return text[: min(ends)] if ends else text


class FakeOpenAI:
    """The handle a test holds on a running fake engine."""

    def __init__(self, base_url: str, *, model: str) -> None:
        self.base_url = base_url
        self.model = model
        self.requests: list[ChatRequest] = []
        self.responder: Callable[[ChatRequest], FakeReply] = self.default_reply
        self._scripted: deque[FakeReply] = deque()
        self.refuse_tools_with: int | None = None
        """An HTTP status answering every request that offers tools (a server that
        cannot call tools, e.g. Ollama answers 400 "does not support tools")."""
        self._arrived = trio.Event()

    def default_reply(self, request: ChatRequest) -> FakeReply:
        """A plain, never empty reply that names the model, the request number and the prompt."""
        last_user = next(
            (m.content for m in reversed(request.messages) if m.role == "user"), "nothing"
        )
        snippet = " ".join(last_user.split())[:40].strip() or "nothing"
        number = len(self.requests)
        return FakeReply(text=f"({request.model}) reply #{number} to: {snippet}")

    def script(self, *replies: FakeReply) -> None:
        """Answer the next requests with ``replies`` in order, then go back to ``responder``."""
        self._scripted.extend(replies)

    async def wait_for_requests(self, n: int, timeout: float) -> None:
        """Return once at least ``n`` requests arrived; raise TimeoutError after ``timeout`` s."""
        with trio.move_on_after(timeout):
            while len(self.requests) < n:
                await self._arrived.wait()
            return
        raise TimeoutError(f"fake engine got {len(self.requests)} of {n} requests in {timeout} s")

    def _next_reply(self, request: ChatRequest) -> FakeReply:
        if request.tools and self.refuse_tools_with is not None:
            # Refused before the script is read: a tool-less server never gets that far.
            return FakeReply(status=self.refuse_tools_with)
        return self._scripted.popleft() if self._scripted else self.responder(request)

    async def generate(self, request: ChatRequest) -> Generation:
        self.requests.append(request)
        self._arrived.set()
        self._arrived = trio.Event()
        reply = self._next_reply(request)
        if reply.delay_s > 0:
            await trio.sleep(reply.delay_s)
        if reply.status != 200:
            raise GenerationError(reply.status, f"fake engine scripted HTTP {reply.status}")
        prompt = " ".join(m.content for m in request.messages)
        text = cut_at_stop(reply.text, request.stop)
        return Generation(
            tool_calls=reply.tool_calls,
            text=text,
            prompt_tokens=(
                rough_tokens(prompt) if reply.prompt_tokens is None else reply.prompt_tokens
            ),
            completion_tokens=(
                max(1, rough_tokens(text))
                if reply.completion_tokens is None
                else reply.completion_tokens
            ),
        )


@asynccontextmanager
async def serve_fake_openai(
    *, model: str = "fake-model", port: int = 0
) -> AsyncIterator[FakeOpenAI]:
    """Serve a fake engine on loopback for the duration of the block."""
    fake = FakeOpenAI("", model=model)
    async with open_openai_server(
        create_openai_app(fake.generate, models=[model]), port=port
    ) as base_url:
        fake.base_url = base_url
        yield fake


async def _serve_forever(port: int, model: str) -> None:
    async with serve_fake_openai(model=model, port=port) as fake:
        print(fake.base_url, flush=True)
        await trio.sleep_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m node.testing.fake_openai",
        description="Serve a fake OpenAI-compatible engine on 127.0.0.1 until Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", default="fake-model")
    args = parser.parse_args(argv)
    try:
        trio.run(_serve_forever, args.port, args.model)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
