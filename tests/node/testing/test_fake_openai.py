"""The fake engine (and so the shared OpenAI-compatible app) over real HTTP with the real SDK."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

import openai
import pytest
import trio
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from node.engine import ChatMessage
from node.testing.fake_openai import FakeReply, serve_fake_openai

PROMPT = "Hello there, how is the weather in your room today?"
USER: ChatCompletionMessageParam = {"role": "user", "content": PROMPT}
SNIPPET = "Hello there, how is the weather in your"
"""The first 40 characters of PROMPT, as the default reply quotes them (stripped)."""


def client(base_url: str, *, max_retries: int = 2, timeout: float = 30.0) -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url=base_url, api_key="test-key", max_retries=max_retries, timeout=timeout
    )


async def post(url: str, body: bytes) -> tuple[int, Mapping[str, object]]:
    """A raw POST, for bodies the SDK would refuse to send."""

    def send() -> tuple[int, Mapping[str, object]]:
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    return await trio.to_thread.run_sync(send)


async def test_default_reply_usage_and_recorded_request() -> None:
    async with serve_fake_openai(model="m1") as fake, client(fake.base_url) as ai:
        assert fake.base_url.startswith("http://127.0.0.1:")
        assert fake.base_url.endswith("/v1")
        models = await ai.models.list()
        assert [m.id for m in models.data] == ["m1"]
        out = await ai.chat.completions.create(
            model="m1",
            messages=[{"role": "system", "content": "Be kind."}, USER],
            max_tokens=20,
            temperature=0.5,
        )
        text = out.choices[0].message.content
        assert text == f"(m1) reply #1 to: {SNIPPET}"
        assert out.usage is not None
        assert out.usage.prompt_tokens == 12
        assert out.usage.completion_tokens == len(text.split())
        [req] = fake.requests
        assert req.model == "m1"
        assert req.messages == [
            ChatMessage("system", "Be kind."),
            ChatMessage("user", PROMPT),
        ]
        assert (req.max_tokens, req.temperature) == (20, 0.5)
        assert req.headers["authorization"] == "Bearer test-key"


async def test_script_then_responder() -> None:
    async with serve_fake_openai() as fake, client(fake.base_url, max_retries=0) as ai:
        fake.script(FakeReply("first", prompt_tokens=7, completion_tokens=3), FakeReply("second"))
        fake.responder = lambda req: FakeReply(f"echo {len(req.messages)}")
        texts = []
        for _ in range(3):
            out = await ai.chat.completions.create(model="x", messages=[USER])
            texts.append(out.choices[0].message.content)
            if len(texts) == 1:
                assert out.usage is not None
                assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (7, 3)
        assert texts == ["first", "second", "echo 1"]


async def test_scripted_500_surfaces_as_internal_server_error() -> None:
    async with serve_fake_openai() as fake, client(fake.base_url, max_retries=0) as ai:
        fake.script(FakeReply(status=500), FakeReply(status=429))
        with pytest.raises(openai.InternalServerError) as err:
            await ai.chat.completions.create(model="x", messages=[USER])
        assert err.value.status_code == 500
        assert isinstance(err.value.body, dict)
        assert err.value.body["type"] == "server_error"
        with pytest.raises(openai.RateLimitError):
            await ai.chat.completions.create(model="x", messages=[USER])
        out = await ai.chat.completions.create(model="x", messages=[USER])
        assert out.choices[0].message.content
        assert len(fake.requests) == 3


async def test_sdk_retries_a_500_then_succeeds() -> None:
    async with serve_fake_openai() as fake, client(fake.base_url, max_retries=1) as ai:
        fake.script(FakeReply(status=500))
        out = await ai.chat.completions.create(model="x", messages=[USER])
        assert out.choices[0].message.content == f"(x) reply #2 to: {SNIPPET}"
        assert len(fake.requests) == 2


async def test_delay_trips_client_timeout_and_request_is_seen_first() -> None:
    async with serve_fake_openai() as fake, client(fake.base_url, max_retries=0, timeout=0.3) as ai:
        fake.script(FakeReply("late", delay_s=5.0))
        async with trio.open_nursery() as nursery:

            async def call() -> None:
                with pytest.raises(openai.APITimeoutError):
                    await ai.chat.completions.create(model="x", messages=[USER])

            nursery.start_soon(call)
            await fake.wait_for_requests(1, timeout=5)
        # A short delay is simply a slow answer.
        fake.script(FakeReply("slow", delay_s=0.05))
        out = await ai.chat.completions.create(model="x", messages=[USER])
        assert out.choices[0].message.content == "slow"


async def test_wait_for_requests_times_out() -> None:
    async with serve_fake_openai() as fake:
        with pytest.raises(TimeoutError):
            await fake.wait_for_requests(1, timeout=0.05)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"messages": [{"role": "user", "content": "hi"}]}',
        b'{"model": "x", "messages": []}',
        b'{"model": "x", "messages": [{"role": "wizard", "content": "hi"}]}',
        b'{"model": "x", "messages": [{"role": "user", "content": 5}]}',
        b'{"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "9"}',
        b'{"model": "x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}',
        b'{"model": "x", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}',
        b'{"model": "x", "messages": [{"role": "user", "content": "hi"}], "temperature": 9}',
        b'{"model": "x", "messages": [{"role": "user", "content": "hi"}], "stream": true}',
    ],
)
async def test_bad_requests_get_openai_style_400(body: bytes) -> None:
    async with serve_fake_openai() as fake:
        status, answer = await post(f"{fake.base_url}/chat/completions", body)
        assert status == 400
        error = answer["error"]
        assert isinstance(error, dict)
        assert error["type"] == "invalid_request_error"
        assert isinstance(error["message"], str) and error["message"]
        assert fake.requests == []


async def test_sdk_maps_400_and_oversize_body_is_refused() -> None:
    async with serve_fake_openai() as fake, client(fake.base_url, max_retries=0) as ai:
        with pytest.raises(openai.BadRequestError):
            await ai.chat.completions.create(
                model="x",
                messages=[USER],
                temperature=7,
            )
        huge = json.dumps(
            {"model": "x", "messages": [{"role": "user", "content": "a" * (2 << 20)}]}
        )
        status, answer = await post(f"{fake.base_url}/chat/completions", huge.encode())
        assert status == 413
        assert "error" in answer
        status, answer = await post(f"{fake.base_url}/nowhere", b"{}")
        assert status == 404
        assert "error" in answer
        assert fake.requests == []


def test_cli_prints_base_url_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.testing.fake_openai", "--port", "0", "--model", "cli-m"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        with urllib.request.urlopen(f"{base_url}/models", timeout=10) as resp:
            assert json.loads(resp.read())["data"][0]["id"] == "cli-m"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
