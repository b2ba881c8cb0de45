"""Can the embedded engine call a tool? Asks a packaged model, through the embedded
engine's HTTP face (the path a character uses), questions a ``get_current_time`` tool
answers and small talk it does not, and counts what comes back.

    python3 bench/embedded_tools.py [--model qwen2.5-coder-1.5b] [--tries 5] [--chatml]

Prints one JSON object: per prompt kind, tries, tool calls produced, calls with the right
argument, spoken replies, and latency (p50, max) in seconds; the engine's start time; and a
few samples of each kind's output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import openai
import trio
from openai.types.chat import ChatCompletion, ChatCompletionToolParam

from node import DEFAULT_MODEL, model_choice, open_embedded_engine

TIME_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_current_time",
        "description": "Get the current time in a specific timezone.",
        "parameters": {
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": (
                        "IANA timezone name (e.g. 'America/New_York', 'Europe/London')."
                    ),
                }
            },
            "required": ["timezone"],
        },
    },
}
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


async def ask(client: openai.AsyncOpenAI, model: str, prompt: str) -> tuple[ChatCompletion, float]:
    started = time.monotonic()
    reply = await client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        max_tokens=60,
        temperature=0.7,
        tools=[TIME_TOOL],
        tool_choice="auto",
    )
    return reply, time.monotonic() - started


def described(reply: ChatCompletion) -> tuple[str | None, str]:
    """(the called tool's arguments or None, a sample line)."""
    message = reply.choices[0].message
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is not None:
            return function.arguments, f"{function.name}({function.arguments})"
    return None, f"said: {(message.content or '')[:80]}"


def timezone_of(arguments: str) -> object:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return None
    return parsed.get("timezone") if isinstance(parsed, dict) else None


def latency(seconds: list[float]) -> dict[str, float]:
    return {"p50_s": round(statistics.median(seconds), 2), "max_s": round(max(seconds), 2)}


async def run(model: str, tries: int, threads: int | None, chatml: bool) -> dict[str, Any]:
    started = time.monotonic()
    async with open_embedded_engine(
        model_choice(model), threads=threads, native_tools=not chatml
    ) as base_url:
        report: dict[str, Any] = {
            "model": model,
            "tool_prompt": "chatml-function-calling"
            if chatml
            else "the model's own if it renders tools",
            "start_s": round(time.monotonic() - started, 2),
        }
        async with openai.AsyncOpenAI(base_url=base_url, api_key="none") as client:
            calls = right = 0
            seconds: list[float] = []
            samples: list[str] = []
            for index in range(tries):
                prompt, zone = NEEDS_TOOL[index % len(NEEDS_TOOL)]
                reply, elapsed = await ask(client, model, prompt)
                seconds.append(elapsed)
                arguments, sample = described(reply)
                samples.append(sample)
                if arguments is not None:
                    calls += 1
                    right += timezone_of(arguments) == zone
            report["needs_tool"] = {
                "tries": tries,
                "tool_calls": calls,
                "right_timezone": right,
                "spoke_instead": tries - calls,
                **latency(seconds),
                "samples": samples[:3],
            }
            calls = 0
            seconds, samples = [], []
            for index in range(tries):
                reply, elapsed = await ask(client, model, NO_TOOL[index % len(NO_TOOL)])
                seconds.append(elapsed)
                arguments, sample = described(reply)
                samples.append(sample)
                calls += arguments is not None
            report["no_tool_needed"] = {
                "tries": tries,
                "tool_calls": calls,
                "spoken_replies": tries - calls,
                **latency(seconds),
                "samples": samples[:3],
            }
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
