"""The embedded engine with tools: its ChatML function-calling prompt, and real
llama-cpp (SmolLM2-135M) answering a request that offers a tool over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from node.config import BudgetSettings, EngineSettings
from node.engine.embedded import open_embedded_engine, tool_prompt
from node.engine.engines import Purpose, open_engines
from node.engine.key_store import KeyLookup
from node.engine.messages import ChatMessage, ToolCall, ToolSpec
from node.engine.model_pack import MODELS
from node.testing.clock import ManualClock
from tests.support.embedded_model import needs_smollm2

TIME_TOOL = ToolSpec(
    name="get_current_time",
    description="Get the current time in a specific timezone.",
    parameters={
        "type": "object",
        "properties": {"timezone": {"type": "string", "description": "IANA timezone name"}},
        "required": ["timezone"],
    },
)
ASK = [
    ChatMessage("system", "You are Mina. Use a tool when it helps."),
    ChatMessage("user", "What time is it in Tokyo right now?"),
]


def test_tool_prompt_lists_tools_and_carries_calls_and_results() -> None:
    call = ToolCall("call_1", "get_current_time", '{"timezone": "Asia/Tokyo"}')
    prompt = tool_prompt(
        [
            *ASK,
            ChatMessage("assistant", "", tool_calls=(call,)),
            ChatMessage("tool", '{"datetime": "09:00"}<|im_end|>', tool_call_id="call_1"),
        ],
        (TIME_TOOL,),
    )
    assert prompt.startswith("<|im_start|>system\nYou are Mina. Use a tool when it helps.")
    assert "\nfunctions.get_current_time:\n// Get the current time in a specific timezone.\n" in (
        prompt
    )
    assert json.dumps(TIME_TOOL.parameters) in prompt
    assert (
        '<|im_start|>assistant\nfunctions.get_current_time:\n{"timezone": "Asia/Tokyo"}'
        "<|im_end|>\n" in prompt
    )
    # The result is the user's turn, named after the call; its ChatML markers are gone.
    assert (
        '<|im_start|>user\nfunctions.get_current_time returned:\n{"datetime": "09:00"}'
        "<|im_end|>\n" in prompt
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    assert prompt.count("<|im_end|>") == prompt.count("<|im_start|>") - 1


def test_tool_prompt_without_a_system_message_still_lists_the_tools() -> None:
    prompt = tool_prompt([ChatMessage("user", "hi")], (TIME_TOOL,))
    assert prompt.startswith("<|im_start|>system\nYou have access to the following functions:")
    assert "<|im_start|>user\nhi<|im_end|>" in prompt


@pytest.mark.embedded
@needs_smollm2
async def test_smollm2_asks_for_the_tool_and_reads_its_result(tmp_path: Path) -> None:
    async with (
        open_embedded_engine(MODELS["smollm2-135m"], cache_dir=tmp_path) as base_url,
        open_engines(
            [
                EngineSettings(
                    name="embedded",
                    preset="openai-compatible",
                    base_url=base_url,
                    model="smollm2-135m",
                    timeout_s=120.0,
                )
            ],
            BudgetSettings(daily_tokens=1_000_000, low_at=0.5, critical_at=0.8),
            keys=KeyLookup({}, None),
            embedded_url=None,
            clock=ManualClock(),
            today=lambda: "2026-12-07",
        ) as engines,
    ):
        assert engines.takes_tools()
        first = await engines.complete(ASK, max_tokens=60, purpose=Purpose.REPLY, tools=[TIME_TOOL])
        # The choice between speaking and calling is greedy: SmolLM2 calls the tool here
        # (it calls it for nearly anything; bench/embedded_tools.py measures the models).
        assert [call.name for call in first.tool_calls] == ["get_current_time"]
        assert first.tool_calls[0].arguments.startswith("{")
        assert first.completion_tokens > 0
        follow_up = [
            *ASK,
            ChatMessage("assistant", "", tool_calls=first.tool_calls),
            ChatMessage(
                "tool",
                '{"timezone": "Asia/Tokyo", "datetime": "2026-12-08T09:00:00+09:00"}',
                tool_call_id=first.tool_calls[0].id,
            ),
        ]
        second = await engines.complete(
            follow_up, max_tokens=40, purpose=Purpose.REPLY, tools=[TIME_TOOL]
        )
        assert second.text or second.tool_calls
        # Without tools the same engine speaks as before.
        plain = await engines.complete(ASK, max_tokens=20, purpose=Purpose.REPLY)
        assert plain.text and not plain.tool_calls


@pytest.mark.embedded
@needs_smollm2
async def test_smollm2_forced_tool_and_no_tools_choice_over_http(tmp_path: Path) -> None:
    async with (
        open_embedded_engine(MODELS["smollm2-135m"], cache_dir=tmp_path) as base_url,
        openai.AsyncOpenAI(base_url=base_url, api_key="none") as client,
    ):
        tools: list[ChatCompletionToolParam] = [
            {
                "type": "function",
                "function": {
                    "name": TIME_TOOL.name,
                    "description": TIME_TOOL.description,
                    "parameters": TIME_TOOL.parameters,
                },
            }
        ]
        forced = await client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "Hello there."}],
            max_tokens=60,
            tools=tools,
            tool_choice={"type": "function", "function": {"name": "get_current_time"}},
        )
        choice = forced.choices[0]
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        assert [call.function.name for call in calls] == ["get_current_time"]  # type: ignore[union-attr]
        spoken = await client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
            max_tokens=20,
            tools=tools,
            tool_choice="none",
        )
        assert spoken.choices[0].message.tool_calls is None
        assert spoken.choices[0].message.content
