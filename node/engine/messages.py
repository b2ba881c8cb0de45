"""What goes into and comes out of a chat engine, independent of which server answers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from keys.errors import LocalError

Role = Literal["system", "user", "assistant"]

MAX_STOPS: Final = 4
"""OpenAI's API refuses more than four stop sequences; every server accepts four."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


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

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
