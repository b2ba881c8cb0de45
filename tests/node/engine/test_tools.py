"""Tool calling through the engines over real HTTP: offered, called, answered, refused.

Every engine is the fake OpenAI-compatible server (or, for shapes the fake would never
send, a one-route app answering a fixed body) reached through the real ``openai`` SDK.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from quart import Response, jsonify
from quart_trio import QuartTrio

from node.config import BudgetSettings, EngineSettings
from node.engine.engines import Engines, Purpose, open_engines
from node.engine.errors import EnginesUnavailable
from node.engine.key_store import KeyLookup
from node.engine.messages import (
    ChatMessage,
    ToolCall,
    ToolSpec,
    ToolSpecError,
    flatten_tool_messages,
    tool_call_of,
)
from node.engine.openai_server import BadRequest, open_openai_server, parse_chat_request
from node.testing.clock import ManualClock
from node.testing.fake_openai import FakeOpenAI, FakeReply, serve_fake_openai, tool_results

TIME_TOOL = ToolSpec(
    name="get_current_time",
    description="Get the current time in an IANA timezone.",
    parameters={
        "type": "object",
        "properties": {"timezone": {"type": "string", "description": "e.g. Asia/Tokyo"}},
        "required": ["timezone"],
    },
)
ASK = [
    ChatMessage("system", "You are Mina."),
    ChatMessage("user", "What time is it in Tokyo?"),
]
TOKYO = ToolCall("call_1", "get_current_time", '{"timezone": "Asia/Tokyo"}')


def engine(name: str, base_url: str, **changes: object) -> EngineSettings:
    settings = EngineSettings(
        name=name,
        preset="openai-compatible",
        base_url=base_url,
        model="fake-model",
        timeout_s=5.0,
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


@asynccontextmanager
async def engines_for(settings: Sequence[EngineSettings]) -> AsyncIterator[Engines]:
    async with open_engines(
        settings,
        BudgetSettings(daily_tokens=1_000_000, low_at=0.5, critical_at=0.8),
        keys=KeyLookup({}, None),
        embedded_url=None,
        clock=ManualClock(),
        today=lambda: "2026-12-07",
    ) as engines:
        yield engines


@asynccontextmanager
async def one_engine() -> AsyncIterator[tuple[FakeOpenAI, Engines]]:
    async with (
        serve_fake_openai() as fake,
        engines_for([engine("a", fake.base_url)]) as engines,
    ):
        yield fake, engines


async def test_tools_are_offered_and_a_scripted_call_comes_back() -> None:
    async with one_engine() as (fake, engines):
        assert engines.takes_tools()
        fake.script(FakeReply(tool_calls=(TOKYO,)))
        completion = await engines.complete(
            ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL]
        )
        assert completion.tool_calls == (TOKYO,)
        assert completion.text == ""
        assert completion.tool_calls[0].parsed_arguments() == {"timezone": "Asia/Tokyo"}
        offered = fake.requests[0]
        assert offered.tools == (TIME_TOOL,)
        assert offered.tool_choice == "auto"
        assert offered.messages == ASK


async def test_a_call_with_words_keeps_both() -> None:
    async with one_engine() as (fake, engines):
        fake.script(FakeReply(text="Let me look.", tool_calls=(TOKYO,)))
        completion = await engines.complete(
            ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL]
        )
        assert (completion.text, completion.tool_calls) == ("Let me look.", (TOKYO,))


async def test_the_tool_result_round_trips_to_the_engine() -> None:
    async with one_engine() as (fake, engines):
        fake.script(FakeReply(tool_calls=(TOKYO,)), FakeReply(text="It is 9 in Tokyo."))
        first = await engines.complete(ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL])
        call = first.tool_calls[0]
        result = json.dumps({"timezone": "Asia/Tokyo", "datetime": "2026-12-08T09:00:00+09:00"})
        follow_up = [
            *ASK,
            ChatMessage("assistant", "", tool_calls=first.tool_calls),
            ChatMessage("tool", result, tool_call_id=call.id),
        ]
        second = await engines.complete(
            follow_up, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL]
        )
        assert second.text == "It is 9 in Tokyo."
        assert second.tool_calls == ()
        received = fake.requests[1]
        assert received.messages == follow_up
        assert tool_results(received) == {"call_1": result}


async def test_no_tools_offered_sends_no_tools_field() -> None:
    async with one_engine() as (fake, engines):
        await engines.complete(ASK, max_tokens=50, purpose=Purpose.REPLY)
        assert fake.requests[0].tools == ()
        assert fake.requests[0].tool_choice == "none"


@pytest.mark.parametrize("status", [400, 404, 422, 501])
async def test_a_server_refusing_tools_becomes_tool_less_and_still_answers(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with one_engine() as (fake, engines):
        fake.refuse_tools_with = status
        completion = await engines.complete(
            ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL]
        )
        assert completion.tool_calls == ()
        assert completion.text.startswith("(fake-model) reply #2")
        assert [bool(r.tools) for r in fake.requests] == [True, False]
        assert not engines.takes_tools()
        assert engines.describe()["engines"][0]["tools"] is False
        # From now on no tools are offered at all: one request per call.
        await engines.complete(ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL])
        assert [bool(r.tools) for r in fake.requests] == [True, False, False]
    refusals = [
        r.getMessage() for r in caplog.records if "refused a request with tools" in r.message
    ]
    assert refusals == [
        f"engine 'a' refused a request with tools (http_{status}) and answered without: "
        "it gets no tools from now on"
    ]


async def test_a_400_that_is_not_about_tools_keeps_the_tools() -> None:
    """Two 400s in a row: the request without tools failed too, so tools were not why."""
    async with one_engine() as (fake, engines):
        fake.script(FakeReply(status=400), FakeReply(status=400))
        with pytest.raises(EnginesUnavailable) as err:
            await engines.complete(ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL])
        assert err.value.failures == {"a": "http_400"}
        assert engines.takes_tools()


async def test_a_server_error_is_failover_not_a_tool_refusal() -> None:
    async with (
        serve_fake_openai(model="big") as a,
        serve_fake_openai(model="small") as b,
        engines_for([engine("a", a.base_url), engine("b", b.base_url)]) as engines,
    ):
        a.script(FakeReply(status=500))
        b.script(FakeReply(tool_calls=(TOKYO,)))
        completion = await engines.complete(
            ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL]
        )
        assert (completion.engine, completion.tool_calls) == ("b", (TOKYO,))
        assert len(a.requests) == 1
        assert b.requests[0].tools == (TIME_TOOL,)
        assert engines.takes_tools()


async def test_configured_tool_less_engine_is_never_offered_tools() -> None:
    """An engine with ``"tools": false`` in the character file."""
    async with (
        serve_fake_openai() as fake,
        engines_for([engine("a", fake.base_url, tools=False)]) as engines,
    ):
        assert not engines.takes_tools()
        await engines.complete(ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL])
        assert fake.requests[0].tools == ()


async def test_tool_history_reaches_a_tool_less_engine_as_text() -> None:
    history = [
        *ASK,
        ChatMessage("assistant", "", tool_calls=(TOKYO,)),
        ChatMessage("tool", "09:00", tool_call_id="call_1"),
    ]
    async with one_engine() as (fake, engines):
        # The first refusal comes with a tool history already: the retry flattens it too.
        fake.refuse_tools_with = 400
        await engines.complete(history, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL])
        await engines.complete(history, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL])
        assert fake.requests[1].messages == fake.requests[2].messages
        sent = fake.requests[-1].messages
        assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
        assert sent[2].content == '[called get_current_time({"timezone": "Asia/Tokyo"})]'
        assert sent[3].content == "[result of get_current_time]\n09:00"
    assert flatten_tool_messages(ASK) == ASK


async def test_malformed_and_unoffered_calls_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    async with one_engine() as (fake, engines):
        fake.script(
            FakeReply(
                text="Hmm.",
                tool_calls=(
                    ToolCall("c1", "bad name!", "{}"),
                    ToolCall("c2", "rm_rf", "{}"),  # not offered
                    TOKYO,
                    ToolCall("call_1", "get_current_time", "not json"),  # same id
                ),
            ),
        )
        completion = await engines.complete(
            ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL]
        )
        assert completion.text == "Hmm."
        kept = completion.tool_calls
        assert [c.name for c in kept] == ["get_current_time", "get_current_time"]
        assert kept[0] == TOKYO
        assert kept[1].id != "call_1" and kept[1].arguments == "not json"
        assert kept[1].parsed_arguments() is None
    dropped = [r for r in caplog.records if "malformed or unoffered" in r.message]
    assert len(dropped) == 2


async def test_only_bad_calls_and_no_words_is_an_empty_reply() -> None:
    async with one_engine() as (fake, engines):
        fake.script(FakeReply(tool_calls=(ToolCall("c1", "nope", "{}"),)))
        with pytest.raises(EnginesUnavailable) as err:
            await engines.complete(ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL])
        assert err.value.failures == {"a": "empty_reply"}


def raw_reply_app(message: dict[str, Any]) -> QuartTrio:
    """A server answering every chat request with ``message``, however it is shaped."""
    app = QuartTrio(__name__)

    @app.post("/v1/chat/completions")
    async def chat() -> Response:
        return jsonify(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
            }
        )

    return app


@pytest.mark.parametrize(
    ("tool_calls", "expected"),
    [
        # Arguments as an object instead of JSON text (seen from some local servers).
        (
            [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "get_current_time", "arguments": {"timezone": "UTC"}},
                }
            ],
            [ToolCall("a", "get_current_time", '{"timezone": "UTC"}')],
        ),
        # No id, no arguments: still a call, with an id made here and empty arguments.
        ([{"type": "function", "function": {"name": "get_current_time"}}], ["get_current_time"]),
        ([{"type": "function", "function": {"name": 7, "arguments": "{}"}}], []),
        ([{"type": "function", "function": {"name": "get_current_time", "arguments": 3}}], []),
        ([{"id": "a", "type": "function"}], []),
        (["junk", None, 5], []),
        ("not a list", []),
    ],
)
async def test_odd_tool_calls_from_a_server_never_crash(
    tool_calls: object, expected: list[object]
) -> None:
    app = raw_reply_app({"role": "assistant", "content": "words", "tool_calls": tool_calls})
    async with (
        open_openai_server(app) as base_url,
        engines_for([engine("a", base_url)]) as engines,
    ):
        completion = await engines.complete(
            ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL]
        )
    assert completion.text == "words"
    if expected and isinstance(expected[0], str):
        assert [c.name for c in completion.tool_calls] == expected
        assert completion.tool_calls[0].id.startswith("call_")
        assert completion.tool_calls[0].arguments == "{}"
    else:
        assert list(completion.tool_calls) == expected


async def test_calls_not_asked_for_are_ignored() -> None:
    """A server that volunteers tool calls when none were offered: words only."""
    message = {
        "role": "assistant",
        "content": "hi",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "x", "arguments": "{}"}}
        ],
    }
    async with (
        open_openai_server(raw_reply_app(message)) as base_url,
        engines_for([engine("a", base_url)]) as engines,
    ):
        completion = await engines.complete(ASK, max_tokens=50, purpose=Purpose.REPLY)
    assert (completion.text, completion.tool_calls) == ("hi", ())


# --- the server side: what openai_server accepts --------------------------------------


def body(**fields: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}


def function_tool(name: str, **function: object) -> dict[str, object]:
    return {"type": "function", "function": {"name": name, **function}}


def test_server_parses_tools_choice_and_tool_messages() -> None:
    request = parse_chat_request(
        body(
            tools=[
                function_tool("a", description="d", parameters={"type": "object"}),
                function_tool("b"),
            ],
            tool_choice={"type": "function", "function": {"name": "b"}},
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "a", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": "42"},
            ],
        ),
        {},
    )
    assert [t.name for t in request.tools] == ["a", "b"]
    assert request.tools[1].parameters == {"type": "object", "properties": {}}
    assert (request.tool_choice, request.forced_tool) == ("required", "b")
    assert request.messages[1] == ChatMessage(
        "assistant", "", tool_calls=(ToolCall("c", "a", "{}"),)
    )
    assert request.messages[2] == ChatMessage("tool", "42", tool_call_id="c")


@pytest.mark.parametrize(
    "fields",
    [
        {"tools": "x"},
        {"tools": [function_tool(f"t{i}") for i in range(33)]},
        {"tools": [function_tool("bad name")]},
        {"tools": [function_tool("a", parameters="x")]},
        {"tools": [function_tool("a"), function_tool("a")]},
        {"tools": [{"type": "code_interpreter"}]},
        {"tool_choice": "auto"},
        {
            "tools": [function_tool("a")],
            "tool_choice": {"type": "function", "function": {"name": "z"}},
        },
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]}]},
        {"messages": [{"role": "user", "content": None}]},
    ],
)
def test_server_refuses_bad_tool_fields(fields: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        parse_chat_request(body(**fields), {})


def test_tool_spec_and_calls_are_checked() -> None:
    with pytest.raises(ToolSpecError):
        ToolSpec("has space", "", {})
    with pytest.raises(ToolSpecError):
        ToolSpec("x" * 65, "", {})
    with pytest.raises(ValueError):
        ChatMessage("tool", "42")  # no tool_call_id
    with pytest.raises(ValueError):
        ChatMessage("user", "hi", tool_calls=(TOKYO,))
    assert tool_call_of("id", "ok", "x" * 20_000) is None
    assert ToolCall("i", "n", "[1]").parsed_arguments() is None
    assert ToolCall("i", "n", "").parsed_arguments() == {}


async def test_tool_refusal_is_logged_once_per_engine(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with one_engine() as (fake, engines):
        fake.refuse_tools_with = 400
        for _ in range(3):
            await engines.complete(ASK, max_tokens=50, purpose=Purpose.REPLY, tools=[TIME_TOOL])
    assert sum("refused a request with tools" in r.message for r in caplog.records) == 1
