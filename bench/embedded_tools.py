"""Can the embedded engine call a tool? Asks a packaged model, through the real
``LlamaGenerator`` tool path, questions a ``get_current_time`` tool answers and questions it
does not, and counts what comes back.

    python3 bench/embedded_tools.py [--model qwen2.5-coder-1.5b] [--tries 5] [--chatml]

Prints one JSON object: per prompt kind, tries, tool calls produced, calls with the right
argument, spoken replies (non-empty), and latency (p50, max) in seconds; the model's load
time; and a sample of each kind's output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio

from node.engine.embedded import LlamaGenerator, load_llama
from node.engine.messages import ChatMessage, ToolSpec
from node.engine.model_pack import DEFAULT_MODEL, ensure_model, model_choice
from node.engine.openai_server import ChatRequest, Generation

TIME_TOOL = ToolSpec(
    name="get_current_time",
    description="Get the current time in a specific timezone.",
    parameters={
        "type": "object",
        "properties": {
            "timezone": {
                "type": "string",
                "description": "IANA timezone name (e.g. 'America/New_York', 'Europe/London').",
            }
        },
        "required": ["timezone"],
    },
)
SYSTEM = (
    "You are Mina, a cheerful baker visiting your friend Kai. Kai lent you tools; "
    "use one when it helps answer."
)
NEEDS_TOOL = [
    ("What time is it in Tokyo right now?", "Asia/Tokyo"),
    ("Kai: do you know the current time in London?", "Europe/London"),
    ("Quick question, what's the time in New York at the moment?", "America/New_York"),
]
NO_TOOL = [
    "Kai: Hi Mina! How was the bakery today?",
    "Kai: What is your favourite kind of bread?",
]


def request(prompt: str, tools: tuple[ToolSpec, ...]) -> ChatRequest:
    return ChatRequest(
        model="bench",
        messages=[ChatMessage("system", SYSTEM), ChatMessage("user", prompt)],
        max_tokens=60,
        temperature=0.7,
        headers={},
        tools=tools,
        tool_choice="auto",
    )


async def ask(generate: LlamaGenerator, prompt: str) -> tuple[Generation, float]:
    started = time.monotonic()
    generation = await generate(request(prompt, (TIME_TOOL,)))
    return generation, time.monotonic() - started


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_s": round(statistics.median(latencies), 2),
        "max_s": round(max(latencies), 2),
    }


async def run(model: str, tries: int, threads: int | None, chatml: bool) -> dict[str, Any]:
    path: Path = await trio.to_thread.run_sync(ensure_model, model_choice(model))
    started = time.monotonic()
    llama = await trio.to_thread.run_sync(lambda: load_llama(path, threads=threads))
    loaded_s = time.monotonic() - started
    generate = LlamaGenerator(llama, native_tools=not chatml)
    report: dict[str, Any] = {
        "model": model,
        "tool_format": generate.tool_format,
        "load_s": round(loaded_s, 2),
    }
    try:
        calls = right = spoken = 0
        latencies: list[float] = []
        samples: list[str] = []
        for index in range(tries):
            prompt, zone = NEEDS_TOOL[index % len(NEEDS_TOOL)]
            generation, elapsed = await ask(generate, prompt)
            latencies.append(elapsed)
            if generation.tool_calls:
                calls += 1
                arguments = generation.tool_calls[0].arguments
                parsed = generation.tool_calls[0].parsed_arguments() or {}
                right += parsed.get("timezone") == zone
                samples.append(f"{generation.tool_calls[0].name}({arguments})")
            else:
                spoken += bool(generation.text)
                samples.append(f"said: {generation.text[:80]}")
        report["needs_tool"] = {
            "tries": tries,
            "tool_calls": calls,
            "right_timezone": right,
            "spoke_instead": spoken,
            **summary(latencies),
            "samples": samples[:3],
        }
        calls = spoken = 0
        latencies, samples = [], []
        for index in range(tries):
            generation, elapsed = await ask(generate, NO_TOOL[index % len(NO_TOOL)])
            latencies.append(elapsed)
            calls += bool(generation.tool_calls)
            spoken += bool(generation.text)
            samples.append(
                f"{generation.tool_calls[0].name}({generation.tool_calls[0].arguments})"
                if generation.tool_calls
                else f"said: {generation.text[:80]}"
            )
        report["no_tool_needed"] = {
            "tries": tries,
            "tool_calls": calls,
            "spoken_replies": spoken,
            **summary(latencies),
            "samples": samples[:3],
        }
    finally:
        llama.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--chatml",
        action="store_true",
        help="offer tools in the chatml-function-calling prompt even if the model's own "
        "template renders tools",
    )
    args = parser.parse_args(argv)
    report = trio.run(run, args.model, args.tries, args.threads, args.chatml)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
