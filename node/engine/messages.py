"""What goes into and comes out of a chat engine, independent of which server answers."""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from keys.errors import LocalError

Role = Literal["system", "user", "assistant", "tool"]

MAX_STOPS: Final = 4
"""OpenAI's API refuses more than four stop sequences; every server accepts four."""

TOOL_NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""OpenAI's function names; MCP allows more (dots, 128 characters), so callers map."""
MAX_TOOLS: Final = 32
"""More tools than a small model can choose among; servers may refuse long lists."""
MAX_TOOL_DESCRIPTION: Final = 4096
"""Characters of a tool's description sent to an engine (a partner writes it)."""
MAX_TOOL_CALL_ID: Final = 128
MAX_TOOL_ARGUMENTS: Final = 16 * 1024
"""Characters of one call's JSON arguments; a model writing more is looping."""
MAX_TOOL_CALLS: Final = 8
"""Tool calls kept from one reply; a model asking for more is looping."""


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function tool offered to an engine (OpenAI ``tools[].function``, no ``strict``)."""

    name: str
    description: str
    parameters: dict[str, Any]
    """A JSON Schema object, passed through as the lender declared it."""

    def __post_init__(self) -> None:
        if not TOOL_NAME_PATTERN.match(self.name):
            raise ToolSpecError(f"a tool name is [A-Za-z0-9_-]{{1,64}}, not {self.name!r}")
        if not isinstance(self.parameters, dict):
            raise ToolSpecError(f"tool {self.name!r}: parameters must be a JSON object")
        if len(self.description) > MAX_TOOL_DESCRIPTION:
            raise ToolSpecError(
                f"tool {self.name!r}: description over {MAX_TOOL_DESCRIPTION} characters"
            )

    def as_openai(self) -> dict[str, Any]:
        """The ``tools[]`` entry of an OpenAI chat request."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


class ToolSpecError(LocalError):
    """Our own code offered a tool no server accepts (bad name, schema or description)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call an engine asked for. ``arguments`` is the raw JSON text the model wrote:
    it may not parse, or not be an object (see :meth:`parsed_arguments`)."""

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> dict[str, Any] | None:
        """The arguments as a JSON object, or None if the model wrote anything else."""
        try:
            value = json.loads(self.arguments) if self.arguments.strip() else {}
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


def tool_call_of(raw_id: object, name: object, arguments: object) -> ToolCall | None:
    """A :class:`ToolCall` from loosely typed server JSON, or None if it cannot be one.

    A call with a name no tool could have is dropped (it cannot be routed); arguments sent
    as an object instead of JSON text are re-encoded; an id that is missing or odd is
    replaced by one that is unique enough to pair the result with the call.
    """
    if not isinstance(name, str) or not TOOL_NAME_PATTERN.match(name):
        return None
    if isinstance(arguments, dict):
        arguments = json.dumps(arguments, ensure_ascii=False)
    elif arguments is None:
        arguments = "{}"
    if not isinstance(arguments, str) or len(arguments) > MAX_TOOL_ARGUMENTS:
        return None
    if not isinstance(raw_id, str) or not raw_id or len(raw_id) > MAX_TOOL_CALL_ID:
        raw_id = f"call_{secrets.token_hex(8)}"
    return ToolCall(raw_id, name, arguments)


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message. ``ChatMessage(role, content)`` is the common case; an assistant
    message that asked for tools carries ``tool_calls``, and a ``"tool"`` message carries
    one call's result with the ``tool_call_id`` it answers."""

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""

    def __post_init__(self) -> None:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only an assistant message carries tool_calls")
        if (self.role == "tool") != bool(self.tool_call_id):
            raise ValueError("a tool message, and only a tool message, has a tool_call_id")


@dataclass(frozen=True, slots=True)
class Sampling:
    """How to sample a reply; None leaves a setting to the server's default.

    ``temperature``, ``top_p`` and ``stop`` are standard OpenAI parameters. ``min_p`` and
    ``repeat_penalty`` are llama.cpp's names (its server, llama-cpp-python, LM Studio and
    KoboldCpp read them); the client sends them only where they are understood.
    """

    temperature: float | None = None
    top_p: float | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("temperature", self.temperature, 0.0, 2.0),
            ("top_p", self.top_p, 0.0, 1.0),
            ("min_p", self.min_p, 0.0, 1.0),
            ("repeat_penalty", self.repeat_penalty, 0.0, 10.0),
        ):
            if value is not None and not (math.isfinite(value) and low <= value <= high):
                raise SamplingError(f"{name} {value} outside {low:g}..{high:g}")
        if len(self.stop) > MAX_STOPS or not all(self.stop):
            raise SamplingError(f"at most {MAX_STOPS} non-empty stop sequences: {self.stop!r}")


class SamplingError(LocalError):
    """Our own code asked for sampling settings no server accepts."""


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    engine: str
    """Name of the engine that answered (after failover)."""
    prompt_tokens: int
    completion_tokens: int
    tool_calls: tuple[ToolCall, ...] = ()
    """Tools the engine asked to call; ``text`` may then be empty."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def flatten_tool_messages(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """``messages`` for an engine that takes no tools: an assistant's tool calls become a
    line saying what it called, a tool result a user message saying whose result it is.

    Why: after a failover, a tool-less engine may get a conversation in which another
    engine called a tool; servers without tools refuse the ``tool`` role.
    """
    names = {call.id: call.name for m in messages for call in m.tool_calls}
    flat: list[ChatMessage] = []
    for message in messages:
        if message.role == "tool":
            name = names.get(message.tool_call_id, "a tool")
            flat.append(ChatMessage("user", f"[result of {name}]\n{message.content}"))
        elif message.tool_calls:
            called = "; ".join(f"[called {c.name}({c.arguments})]" for c in message.tool_calls)
            text = f"{message.content}\n{called}" if message.content else called
            flat.append(ChatMessage("assistant", text))
        else:
            flat.append(message)
    return flat
