"""The embedded engine with tools: its ChatML function-calling prompt, and real
llama-cpp (SmolLM2-135M) answering a request that offers a tool over HTTP."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import openai
import pytest
import trio
from openai.types.chat import ChatCompletionToolParam

from node.config import BudgetSettings, EngineSettings
from node.engine.embedded import LlamaGenerator, load_llama, open_embedded_engine, tool_prompt
from node.engine.engines import Purpose, open_engines
from node.engine.key_store import KeyLookup
from node.engine.messages import ChatMessage, ToolCall, ToolSpec
from node.engine.model_pack import MODELS, ensure_model
from node.engine.openai_server import ChatRequest
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
            follow_up, max_tokens=16, purpose=Purpose.REPLY, tools=[TIME_TOOL]
        )
        assert second.text or second.tool_calls
        # Without tools the same engine speaks as before.
        plain = await engines.complete(ASK, max_tokens=8, purpose=Purpose.REPLY)
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


# --- the model's own tool template, on a scripted stand-in for llama_cpp.Llama ---------

TOOLS_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n{{ messages[0]['content'] }}\n<tools>"
    "{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools><|im_end|>\n{% endif %}"
    "{% for message in messages %}{% if message.role == 'user' %}"
    "<|im_start|>user\n{{ message.content }}<|im_end|>\n"
    "{% elif message.role == 'assistant' %}<|im_start|>assistant"
    "{% for call in message.tool_calls %}\n<tool_call>\n"
    '{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}'
    "\n</tool_call>{% endfor %}<|im_end|>\n"
    "{% elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}"
    "\n</tool_response><|im_end|>\n{% endif %}{% endfor %}"
    # An expression: Jinja drops a template's trailing newline.
    "{{ '<|im_start|>assistant\\n' }}"
)


class _Model:
    def token_get_text(self, token: int) -> str:
        return {2: "<|im_end|>", 1: ""}[token]


class ScriptedLlama:
    """Answers ``create_completion`` with scripted texts; records each call."""

    def __init__(self, *texts: str) -> None:
        self.metadata = {"tokenizer.chat_template": TOOLS_TEMPLATE}
        self._model = _Model()
        self.texts = list(texts)
        self.calls: list[dict[str, object]] = []

    def token_eos(self) -> int:
        return 2

    def token_bos(self) -> int:
        return 1

    def create_completion(self, **kwargs: object) -> dict[str, object]:
        self.calls.append(kwargs)
        text = self.texts.pop(0)
        return {
            "choices": [{"text": text, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": max(1, len(text) // 4)},
        }


def tool_request(*messages: ChatMessage, **changes: object) -> ChatRequest:
    request = ChatRequest(
        model="m",
        messages=list(messages or ASK),
        max_tokens=40,
        temperature=0.7,
        headers={},
        tools=(TIME_TOOL,),
        tool_choice="auto",
    )
    return replace(request, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("opening", ["<tool_call>\n{", "<tools>\n", "{{", "```json\n{"])
async def test_native_template_call_is_written_in_its_own_form(opening: str) -> None:
    llama = ScriptedLlama(opening, 'get_current_time"', '{"timezone": "Asia/Tokyo"}')
    generate = LlamaGenerator(llama)
    assert generate.tool_format == "native"
    generation = await generate(tool_request())
    assert generation.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in generation.tool_calls] == [
        ("get_current_time", '{"timezone": "Asia/Tokyo"}')
    ]
    prompt = str(llama.calls[0]["prompt"])
    assert '"name": "get_current_time"' in prompt and "<tools>" in prompt
    assert llama.calls[0]["grammar"] is None  # the first words are the model's own
    assert str(llama.calls[1]["prompt"]).endswith('<tool_call>\n{"name": "')
    assert str(llama.calls[2]["prompt"]).endswith(
        '<tool_call>\n{"name": "get_current_time", "arguments": '
    )
    assert llama.calls[2]["grammar"] is not None  # the tool's schema
    assert generation.completion_tokens == sum(
        max(1, len(t) // 4) for t in (opening, 'get_current_time"', '{"timezone": "Asia/Tokyo"}')
    )


async def test_native_template_words_go_on_from_the_first_ones() -> None:
    llama = ScriptedLlama("It is", " about nine, I think.")
    llama.create_completion = _unfinished_first(llama.create_completion)  # type: ignore[method-assign]
    generation = await LlamaGenerator(llama)(tool_request())
    assert (generation.text, generation.tool_calls) == ("It is about nine, I think.", ())
    assert str(llama.calls[1]["prompt"]).endswith("<|im_start|>assistant\nIt is")


async def test_native_template_renders_calls_and_results_and_forced_tool() -> None:
    call = ToolCall("call_1", "get_current_time", '{"timezone": "Asia/Tokyo"}')
    llama = ScriptedLlama('{"timezone": "UTC"}')
    history = (
        *ASK,
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "09:00", tool_call_id="call_1"),
    )
    generation = await LlamaGenerator(llama)(
        tool_request(*history, tool_choice="required", forced_tool="get_current_time")
    )
    assert generation.tool_calls[0].arguments == '{"timezone": "UTC"}'
    prompt = str(llama.calls[0]["prompt"])
    assert '<tool_call>\n{"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo"}}' in (
        prompt
    )
    assert "<tool_response>\n09:00\n</tool_response>" in prompt
    assert len(llama.calls) == 1  # forced: straight to the arguments


async def test_without_native_tools_the_chatml_prompt_is_used() -> None:
    llama = ScriptedLlama("message:", "Hello!")
    generate = LlamaGenerator(llama, native_tools=False)
    assert generate.tool_format == "chatml-function-calling"
    generation = await generate(tool_request())
    assert generation.text == "Hello!"
    assert str(llama.calls[0]["prompt"]).startswith("<|im_start|>system\nYou are Mina.")
    assert llama.calls[0]["temperature"] == 0.0
    assert str(llama.calls[1]["prompt"]).endswith("<|im_start|>assistant\nmessage:\n")


def _unfinished_first(complete: Any) -> Any:
    """The first completion stops at its token limit, not at the end of the turn."""
    count = 0

    def wrapped(**kwargs: object) -> dict[str, Any]:
        nonlocal count
        result: dict[str, Any] = complete(**kwargs)
        if count == 0:
            result["choices"][0]["finish_reason"] = "length"
        count += 1
        return result

    return wrapped


@pytest.mark.embedded
@needs_smollm2
async def test_cancelled_tool_arguments_stop_early(tmp_path: Path) -> None:
    """A grammar that forbids the end of text (an open JSON string) must not outlast a
    cancel: forcing EOS does not end it, the stopping criterion does."""
    path = ensure_model(MODELS["smollm2-135m"], cache_dir=tmp_path)
    llama = await trio.to_thread.run_sync(lambda: load_llama(path, threads=1))
    try:
        poem = ToolSpec(
            "write_poem",
            "Write a very long poem.",
            {"type": "object", "properties": {"poem": {"type": "string"}}, "required": ["poem"]},
        )
        request = ChatRequest(
            model="smollm2-135m",
            messages=[ChatMessage("user", "Write a very long poem about bread.")],
            max_tokens=3000,
            temperature=0.8,
            headers={},
            tools=(poem,),
            tool_choice="required",
            forced_tool="write_poem",
        )
        generate = LlamaGenerator(llama)
        started = trio.current_time()
        with trio.move_on_after(0.5) as scope:
            await generate(request)
        assert scope.cancelled_caught
        # Measured before the stopping criterion: 15 s (to MAX_ARGUMENT_TOKENS).
        assert trio.current_time() - started < 3
        again = await generate(replace(request, max_tokens=20))
        assert again.tool_calls[0].name == "write_poem"
    finally:
        llama.close()
