"""Engines over real HTTP: presets, failover, breakers, timeouts, the budget, API keys.

Every engine here is the fake OpenAI-compatible server (``node.testing.fake_openai``) on
loopback, reached through the real ``openai`` SDK, so what is tested is what runs.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import openai
import pytest
import trio

from keys.errors import ConfigError, LocalError
from node.config import BudgetSettings, EngineSettings
from node.engine.budget import BudgetTier
from node.engine.client import EngineClient, accepts_llama_params
from node.engine.embedded import sampling_kwargs
from node.engine.engines import (
    ANSWERING_MACHINE_MAX_TOKENS,
    Engines,
    Purpose,
    open_engines,
)
from node.engine.errors import EngineResting, EnginesUnavailable
from node.engine.key_store import KeyLookup, KeyStore
from node.engine.messages import ChatMessage, Sampling, SamplingError
from node.engine.openai_server import parse_chat_request
from node.engine.presets import display_url, resolve
from node.testing.clock import ManualClock
from node.testing.fake_openai import FakeOpenAI, FakeReply, serve_fake_openai

DAY = "2026-11-21"
NEXT_DAY = "2026-11-22"
HELLO = [ChatMessage("system", "You are Mina."), ChatMessage("user", "hello")]
SEED = bytes(range(32))


class Day:
    def __init__(self, day: str = DAY) -> None:
        self.day = day

    def __call__(self) -> str:
        return self.day


class MemoryBudgetStore:
    """The BudgetStore protocol over a variable (the node's is a SQLite meta row)."""

    def __init__(self) -> None:
        self.saved: tuple[str, int] | None = None

    async def load(self) -> tuple[str, int] | None:
        return self.saved

    async def save(self, day: str, spent: int) -> None:
        self.saved = (day, spent)


def engine(name: str, fake: FakeOpenAI, **changes: object) -> EngineSettings:
    settings = EngineSettings(
        name=name,
        preset="openai-compatible",
        base_url=fake.base_url,
        model=fake.model,
        timeout_s=5.0,
    )
    return replace(settings, **changes)  # type: ignore[arg-type]


def reply(tokens: int, text: str = "fine, thanks") -> FakeReply:
    """A reply that costs exactly ``tokens`` (all of them prompt tokens)."""
    return FakeReply(text=text, prompt_tokens=tokens, completion_tokens=0)


@asynccontextmanager
async def two_fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI]]:
    async with serve_fake_openai(model="big") as a, serve_fake_openai(model="small") as b:
        yield a, b


@asynccontextmanager
async def engines_for(
    settings: Sequence[EngineSettings],
    *,
    daily_tokens: int = 1_000_000,
    env: Mapping[str, str] | None = None,
    key_store: KeyStore | None = None,
    store: MemoryBudgetStore | None = None,
    clock: ManualClock | None = None,
    today: Day | None = None,
) -> AsyncIterator[Engines]:
    async with open_engines(
        settings,
        BudgetSettings(daily_tokens=daily_tokens, low_at=0.5, critical_at=0.8),
        keys=KeyLookup(env or {}, key_store),
        embedded_url=None,
        store=store,
        clock=clock or ManualClock(),
        today=today or Day(),
    ) as engines:
        yield engines


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# --- presets ----------------------------------------------------------------------------


def test_presets_resolve_to_their_servers_defaults() -> None:
    ollama = resolve(EngineSettings(name="o", preset="ollama"), None)
    assert (ollama.base_url, ollama.model) == ("http://127.0.0.1:11434/v1", "llama3.2")
    assert ollama.key_source.default == "ollama"
    lmstudio = resolve(EngineSettings(name="l", preset="lmstudio"), None)
    assert lmstudio.base_url == "http://127.0.0.1:1234/v1"
    assert lmstudio.key_source.default == "lm-studio"
    kobold = resolve(EngineSettings(name="k", preset="koboldcpp", model="mine"), None)
    assert (kobold.base_url, kobold.model) == ("http://127.0.0.1:5001/v1", "mine")
    assert kobold.key_source.default == "koboldcpp"
    moved = resolve(EngineSettings(name="o", preset="ollama", base_url="http://pc:1/v1"), None)
    assert moved.base_url == "http://pc:1/v1"
    embedded = resolve(EngineSettings(), "http://127.0.0.1:4242/v1")
    assert (embedded.base_url, embedded.model) == ("http://127.0.0.1:4242/v1", "embedded")
    cloud = EngineSettings(
        name="cloud",
        preset="openai-compatible",
        base_url="https://api.example/v1",
        model="m",
        api_key_env="CLOUD_KEY",
        timeout_s=9.0,
        cheap=True,
    )
    custom = resolve(cloud, None)
    assert (custom.name, custom.timeout_s, custom.cheap) == ("cloud", 9.0, True)
    assert custom.key_source.env_var == "CLOUD_KEY"
    assert custom.key_source.default is None
    assert not custom.key_source.override_env
    assert resolve(replace(cloud, name="override"), None).key_source.override_env


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (EngineSettings(), "engines[embedded].preset"),  # embedded server not running
        (EngineSettings(name="x", preset="nope"), "engines[x].preset"),
        (EngineSettings(name="x", preset="openai-compatible", model="m"), "engines[x].base_url"),
        (
            EngineSettings(name="x", preset="openai-compatible", base_url="http://h/v1"),
            "engines[x].model",
        ),
        (EngineSettings(name="x", preset="ollama", base_url="ftp://h/"), "engines[x].base_url"),
        (
            EngineSettings(name="x", preset="ollama", base_url="http://h:port/"),
            "engines[x].base_url",
        ),
        (EngineSettings(name="x", preset="ollama", timeout_s=0.0), "engines[x].timeout_s"),
        (EngineSettings(name="x", preset="ollama", timeout_s=float("nan")), "engines[x].timeout_s"),
    ],
)
def test_presets_refuse_unusable_settings(settings: EngineSettings, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(settings, None)
    assert info.value.field == field


def test_display_url_drops_credentials() -> None:
    assert display_url("https://user:pw@host:8443/v1") == "https://host:8443/v1"
    assert display_url("http://127.0.0.1:1234/v1") == "http://127.0.0.1:1234/v1"


async def test_duplicate_or_missing_engines_are_refused() -> None:
    async with serve_fake_openai() as fake:
        with pytest.raises(ConfigError, match="duplicate"):
            async with engines_for([engine("a", fake), engine("a", fake)]):
                pass  # pragma: no cover
        with pytest.raises(ConfigError):
            async with engines_for([]):
                pass  # pragma: no cover


# --- failover ---------------------------------------------------------------------------


async def test_first_engine_500_second_answers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="node.engine")
    async with two_fakes() as (a, b), engines_for([engine("a", a), engine("b", b)]) as engines:
        a.script(FakeReply(status=500))
        completion = await engines.complete(HELLO, max_tokens=50, purpose=Purpose.REPLY)
        assert completion.engine == "b"
        assert completion.text.startswith("(small) reply #1")
        assert (len(a.requests), len(b.requests)) == (1, 1)
        assert b.requests[0].messages == HELLO
        assert b.requests[0].max_tokens == 50
        # The next call goes to the first engine again: one failure does not open it.
        assert (await engines.complete(HELLO, max_tokens=50, purpose=Purpose.REPLY)).engine == "a"
    warnings = [r.getMessage() for r in caplog.records if r.name == "node.engine.engines"]
    assert warnings == ["engine 'a' failed (http_500); failing over to 'b'"]


SLOW_ANSWER_S = 30.0
"""How late the timed-out engine would answer."""


async def test_first_engine_times_out_second_answers() -> None:
    async with (
        two_fakes() as (a, b),
        engines_for([engine("a", a, timeout_s=0.3), engine("b", b)]) as engines,
    ):
        a.script(FakeReply(text="too late", delay_s=SLOW_ANSWER_S))
        started = trio.current_time()
        completion = await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
        elapsed = trio.current_time() - started
        assert completion.engine == "b"
        # a's timeout was waited out, and a's answer was not: the upper bound leaves a
        # loaded runner ample room and still sits far below a's answer.
        assert 0.3 <= elapsed < SLOW_ANSWER_S / 2


async def test_connection_refused_fails_over() -> None:
    async with serve_fake_openai() as b:
        dead = replace(engine("dead", b), base_url=closed_port_url())
        async with engines_for([dead, engine("b", b)]) as engines:
            completion = await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
            assert completion.engine == "b"


async def test_every_engine_failing_names_each_reason() -> None:
    clock = ManualClock()
    async with (
        two_fakes() as (a, b),
        engines_for([engine("a", a), engine("b", b)], clock=clock) as engines,
    ):
        a.responder = lambda _request: FakeReply(status=500)
        b.responder = lambda _request: FakeReply(text=" \n ")
        with pytest.raises(EnginesUnavailable) as info:
            await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
        assert info.value.failures == {"a": "http_500", "b": "empty_reply"}
        assert info.value.reason == "unavailable"
        assert "a: http_500, b: empty_reply" in str(info.value)
        for _ in range(2):
            with pytest.raises(EnginesUnavailable):
                await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
        # Both breakers are open now: nothing is sent at all.
        with pytest.raises(EnginesUnavailable) as info:
            await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
        assert info.value.failures == {"a": "breaker_open", "b": "breaker_open"}
        assert (len(a.requests), len(b.requests)) == (3, 3)


async def test_breaker_opens_skips_the_dead_engine_then_probes_once() -> None:
    clock = ManualClock()
    async with (
        two_fakes() as (a, b),
        engines_for([engine("a", a), engine("b", b)], clock=clock) as engines,
    ):
        a.responder = lambda _request: FakeReply(status=503)
        for _ in range(3):
            completion = await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
            assert completion.engine == "b"
        status = engines.describe()["engines"][0]
        assert (status["name"], status["breaker"], status["retry_in_s"]) == ("a", "open", 30.0)

        clock.advance(29.0)
        for _ in range(3):
            assert (
                await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
            ).engine == "b"
        assert len(a.requests) == 3  # skipped while open

        # Cool-down over: exactly one probe, even with a second call arriving meanwhile.
        clock.advance(1.0)
        a.responder = lambda _request: FakeReply(text="back again", delay_s=0.5)
        results: dict[str, str] = {}

        async def call(label: str) -> None:
            done = await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
            results[label] = done.engine

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "probe")
            await a.wait_for_requests(4, timeout=5.0)
            assert engines.describe()["engines"][0]["breaker"] == "half_open"
            await call("meanwhile")
        assert results == {"probe": "a", "meanwhile": "b"}
        assert len(a.requests) == 4
        assert engines.describe()["engines"][0]["breaker"] == "closed"
        assert (await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)).engine == "a"


async def test_a_cancelled_probe_is_given_back() -> None:
    clock = ManualClock()
    async with (
        two_fakes() as (a, b),
        engines_for([engine("a", a), engine("b", b)], clock=clock) as engines,
    ):
        a.responder = lambda _request: FakeReply(status=500)
        for _ in range(3):
            await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
        clock.advance(30.0)
        a.responder = lambda _request: FakeReply(text="slow", delay_s=3.0)
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    partial(engines.complete, HELLO, max_tokens=20, purpose=Purpose.REPLY)
                )
                await a.wait_for_requests(4, timeout=5.0)
                scope.cancel()
        a.responder = a.default_reply
        # Without the release the probe would still be out and "a" skipped for good.
        assert (await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)).engine == "a"


# --- budget -----------------------------------------------------------------------------


async def test_budget_tiers_change_order_and_refuse_purposes() -> None:
    today = Day()
    async with (
        two_fakes() as (a, b),
        engines_for(
            [engine("a", a), engine("b", b, cheap=True)], daily_tokens=100, today=today
        ) as engines,
    ):
        a.script(reply(50))
        assert (await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)).tokens == 50
        assert engines.tier() is BudgetTier.LOW
        assert engines.policy().visit_interval_factor == 2.0
        # Low: the cheap engine first; autonomy and summaries still allowed.
        b.script(reply(10), reply(10), reply(10))
        for purpose in (Purpose.REPLY, Purpose.AUTONOMY, Purpose.SUMMARY):
            assert (await engines.complete(HELLO, max_tokens=20, purpose=purpose)).engine == "b"
        assert engines.tier() is BudgetTier.CRITICAL

        sent = (len(a.requests), len(b.requests))
        for purpose in (Purpose.AUTONOMY, Purpose.SUMMARY, Purpose.REACTION):
            with pytest.raises(EngineResting) as info:
                await engines.complete(HELLO, max_tokens=20, purpose=purpose)
            assert info.value.tier is BudgetTier.CRITICAL
            assert info.value.reason == "resting"
        assert (len(a.requests), len(b.requests)) == sent
        b.script(reply(15))
        assert (await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)).engine == "b"
        b.script(reply(5))
        answer = await engines.complete(HELLO, max_tokens=20, purpose=Purpose.ANSWERING_MACHINE)
        assert answer.engine == "b"
        assert engines.tier() is BudgetTier.STOPPED

        for purpose in Purpose:
            with pytest.raises(EngineResting) as info:
                await engines.complete(HELLO, max_tokens=20, purpose=purpose)
            assert info.value.tier is BudgetTier.STOPPED
        assert engines.describe()["budget"] == {
            "day": DAY,
            "daily_tokens": 100,
            "spent": 100,
            "remaining": 0,
            "tier": "stopped",
        }

        today.day = NEXT_DAY
        assert engines.tier() is BudgetTier.NORMAL
        assert (
            await engines.complete(HELLO, max_tokens=20, purpose=Purpose.AUTONOMY)
        ).engine == "a"


async def test_answering_machine_is_cheap_first_and_short_in_any_tier() -> None:
    async with (
        two_fakes() as (a, b),
        engines_for([engine("a", a), engine("b", b, cheap=True)]) as engines,
    ):
        assert engines.tier() is BudgetTier.NORMAL
        assert (await engines.complete(HELLO, max_tokens=500, purpose=Purpose.REPLY)).engine == "a"
        away = await engines.complete(HELLO, max_tokens=500, purpose=Purpose.ANSWERING_MACHINE)
        assert away.engine == "b"
        assert b.requests[-1].max_tokens == ANSWERING_MACHINE_MAX_TOKENS
        await engines.complete(HELLO, max_tokens=30, purpose=Purpose.ANSWERING_MACHINE)
        assert b.requests[-1].max_tokens == 30


async def test_budget_survives_reopen_through_the_store() -> None:
    store = MemoryBudgetStore()
    today = Day()
    async with serve_fake_openai() as fake:
        settings = [engine("a", fake)]
        async with engines_for(settings, daily_tokens=100, store=store, today=today) as engines:
            fake.script(reply(30), reply(25))
            await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
            await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
        assert store.saved == (DAY, 55)
        async with engines_for(settings, daily_tokens=100, store=store, today=today) as engines:
            assert engines.tier() is BudgetTier.LOW
            assert engines.describe()["budget"]["spent"] == 55
        today.day = NEXT_DAY
        async with engines_for(settings, daily_tokens=100, store=store, today=today) as engines:
            assert engines.describe()["budget"]["spent"] == 0
            fake.script(reply(7))
            await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
        assert store.saved == (NEXT_DAY, 7)
        # A saved day ahead of today (the clock was set back) is not restored.
        today.day = DAY
        async with engines_for(settings, daily_tokens=100, store=store, today=today) as engines:
            assert engines.describe()["budget"]["spent"] == 0


async def test_usage_reported_by_the_server_is_what_is_spent() -> None:
    async with serve_fake_openai() as fake, engines_for([engine("a", fake)]) as engines:
        fake.script(FakeReply(text="hi", prompt_tokens=17, completion_tokens=4))
        completion = await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
        assert (completion.prompt_tokens, completion.completion_tokens) == (17, 4)
        assert engines.describe()["budget"]["spent"] == 21


# --- servers that do not speak OpenAI properly -------------------------------------------


@asynccontextmanager
async def serve_raw_http(content_type: str, body: bytes) -> AsyncIterator[str]:
    """A loopback HTTP server answering every request with the same 200 response: what
    a half-compatible engine sends, which the OpenAI fake never does."""
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()

    async def handle(stream: trio.SocketStream) -> None:
        received = b""
        with trio.move_on_after(5.0):
            while b"\r\n\r\n" not in received and len(received) < 65536:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                received += chunk
        await stream.send_all(head + body)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}/v1"
        nursery.cancel_scope.cancel()


COMPLETION_WITHOUT_USAGE = (
    b'{"id":"x","object":"chat.completion","created":1,"model":"m",'
    b'"choices":[{"index":0,"finish_reason":"stop",'
    b'"message":{"role":"assistant","content":"Hello there, traveller."}}]}'
)


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("text/plain", b"hello, I am not JSON", "bad_response"),
        ("application/json", b'{"choices": [', "bad_response"),
        ("application/json", b'{"choices": []}', "bad_response"),
        ("application/json", b'{"choices": [{"message": {"content": 7}}]}', "bad_response"),
        ("application/json", b'{"choices": [{"message": {"content": null}}]}', "empty_reply"),
    ],
)
async def test_malformed_replies_fail_with_a_reason(
    content_type: str, body: bytes, reason: str
) -> None:
    async with serve_raw_http(content_type, body) as url:
        settings = EngineSettings(name="odd", preset="openai-compatible", base_url=url, model="m")
        async with engines_for([settings]) as engines:
            with pytest.raises(EnginesUnavailable) as info:
                await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
            assert info.value.failures == {"odd": reason}


async def test_tokens_are_estimated_when_the_server_reports_no_usage() -> None:
    async with serve_raw_http("application/json", COMPLETION_WITHOUT_USAGE) as url:
        settings = EngineSettings(name="odd", preset="openai-compatible", base_url=url, model="m")
        async with engines_for([settings]) as engines:
            completion = await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
            assert completion.text == "Hello there, traveller."
            # ceil(23 / 4) for the reply; per message ceil(chars / 4) + 4 for the prompt.
            assert completion.completion_tokens == 6
            assert completion.prompt_tokens == (4 + 4) + (2 + 4)
            assert engines.describe()["budget"]["spent"] == completion.tokens


# --- API keys ---------------------------------------------------------------------------

ENV_KEY = "sk-env-4f9c1d2e8b7a6f5e4d3c"
STORED_KEY = "sk-stored-9a8b7c6d5e4f3a2b1c0d"
OVERRIDE_KEY = "sk-override-1a2b3c4d5e6f7a8b"
OWNER_OPENAI_KEY = "sk-owner-openai-0f1e2d3c4b5a"


async def test_authorization_carries_the_key_from_each_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK would read these from the process environment; none may reach a server.
    monkeypatch.setenv("OPENAI_API_KEY", OWNER_OPENAI_KEY)
    monkeypatch.setenv("OPENAI_ORG_ID", "org-owner")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-owner")
    key_store = KeyStore(tmp_path / "engine_keys.bin", SEED)
    key_store.set("stored", STORED_KEY)
    key_store.set("envwins", STORED_KEY)
    env = {"CLOUD_KEY": ENV_KEY, "ROOMVERSE_ENGINE_KEY": OVERRIDE_KEY}
    async with serve_fake_openai() as fake:
        settings = [
            engine("envwins", fake, api_key_env="CLOUD_KEY"),
            engine("override", fake),
            engine("stored", fake),
            engine("preset", fake, preset="ollama"),
            engine("nokey", fake),
            engine("unset", fake, api_key_env="MISSING_VAR"),
        ]
        async with engines_for(settings, env=env, key_store=key_store) as engines:
            origins = {e["name"]: e["key"] for e in engines.describe()["engines"]}
            assert origins == {
                "envwins": "env",
                "override": "override_env",
                "stored": "store",
                "preset": "preset",
                "nokey": "none",
                "unset": "none",
            }
            # Every engine but the last fails, so one call sends one request through each.
            fake.script(*[FakeReply(status=500)] * (len(settings) - 1))
            completion = await engines.complete(HELLO, max_tokens=5, purpose=Purpose.REPLY)
            assert completion.engine == "unset"
    sent = [request.headers["authorization"] for request in fake.requests]
    assert sent == [
        f"Bearer {ENV_KEY}",
        f"Bearer {OVERRIDE_KEY}",
        f"Bearer {STORED_KEY}",
        "Bearer ollama",
        "Bearer none",
        "Bearer none",
    ]
    for request in fake.requests:
        assert "openai-organization" not in request.headers
        assert "openai-project" not in request.headers


async def test_keys_never_reach_logs_or_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: openai, httpx2, httpcore2, hypercorn
    key_store = KeyStore(tmp_path / "engine_keys.bin", SEED)
    key_store.set("b", STORED_KEY)
    env = {"A_KEY": ENV_KEY}
    async with two_fakes() as (a, b):
        dead = EngineSettings(
            name="dead",
            preset="openai-compatible",
            base_url=closed_port_url(),
            model="m",
            api_key_env="A_KEY",
        )
        settings = [
            engine("a", a, api_key_env="A_KEY", timeout_s=0.3),
            dead,
            engine("b", b),
        ]
        async with engines_for(settings, env=env, key_store=key_store) as engines:
            await engines.complete(HELLO, max_tokens=5, purpose=Purpose.REPLY)
            a.script(FakeReply(status=401), FakeReply(text="slow", delay_s=2.0))
            b.script(FakeReply(status=500), FakeReply(status=500))
            errors: list[EnginesUnavailable] = []
            for _ in range(2):
                with pytest.raises(EnginesUnavailable) as info:
                    await engines.complete(HELLO, max_tokens=5, purpose=Purpose.REPLY)
                errors.append(info.value)
            assert errors[0].failures == {"a": "http_401", "dead": "connection", "b": "http_500"}
            assert errors[1].failures == {"a": "timeout", "dead": "connection", "b": "http_500"}
            texts = [repr(engines), str(engines.describe()), repr(key_store)]
    assert len(caplog.records) > 20  # the SDK and transport did log at DEBUG
    for error in errors:
        texts.append("".join(traceback.format_exception(error)))
    texts.append(caplog.text)
    texts.extend(repr(record.args) for record in caplog.records)
    for text in texts:
        for key in (ENV_KEY, STORED_KEY):
            assert key not in text
            assert key[8:] not in text


# --- sampling and stop sequences ---------------------------------------------------------

ROLEPLAY = Sampling(
    temperature=0.8, top_p=0.9, min_p=0.05, repeat_penalty=1.15, stop=("\n\n", "Rex:")
)


async def test_sampling_and_stops_reach_a_local_server() -> None:
    async with serve_fake_openai() as fake, engines_for([engine("a", fake)]) as engines:
        fake.script(FakeReply(text="The kettle is on.\nRex: and so am I"))
        completion = await engines.complete(
            HELLO, max_tokens=20, purpose=Purpose.REPLY, sampling=ROLEPLAY
        )
        (request,) = fake.requests
        assert (request.temperature, request.top_p) == (0.8, 0.9)
        assert (request.min_p, request.repeat_penalty) == (0.05, 1.15)
        assert request.stop == ("\n\n", "Rex:")
        # The server ends the reply where the partner's label begins, as llama.cpp does.
        assert completion.text == "The kettle is on."


async def test_no_sampling_sends_no_sampling_fields() -> None:
    async with serve_fake_openai() as fake, engines_for([engine("a", fake)]) as engines:
        await engines.complete(HELLO, max_tokens=20, purpose=Purpose.REPLY)
        (request,) = fake.requests
        assert (request.temperature, request.top_p, request.min_p) == (None, None, None)
        assert (request.repeat_penalty, request.stop) == (None, ())


async def test_a_temperature_argument_wins_over_the_sampling_one() -> None:
    async with serve_fake_openai() as fake, engines_for([engine("a", fake)]) as engines:
        await engines.complete(
            HELLO, max_tokens=20, purpose=Purpose.REPLY, temperature=0.1, sampling=ROLEPLAY
        )
        assert fake.requests[0].temperature == 0.1


async def test_a_hosted_api_gets_only_the_standard_sampling_fields() -> None:
    async with serve_fake_openai() as fake:
        hosted = replace(resolve(engine("cloud", fake), None), base_url="https://api.example/v1")
        sdk = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0)
        async with sdk:
            client = EngineClient(hosted, sdk)
            assert not client.llama_params
            await client.complete(HELLO, max_tokens=20, sampling=ROLEPLAY)
        (request,) = fake.requests
        assert (request.temperature, request.top_p, request.stop) == (0.8, 0.9, ROLEPLAY.stop)
        assert (request.min_p, request.repeat_penalty) == (None, None)


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8080/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:1234/v1", True),
        ("http://192.168.1.20:5001/v1", True),
        ("http://ollama:11434/v1", True),
        ("https://api.openai.com/v1", False),
        ("https://openrouter.ai/api/v1", False),
        ("http://8.8.8.8/v1", False),
    ],
)
def test_llama_params_go_to_servers_on_this_machine_or_network(url: str, local: bool) -> None:
    assert accepts_llama_params(url) is local


@pytest.mark.parametrize(
    "extra",
    [
        {"stop": ["a", "b", "c", "d", "e"]},
        {"stop": [""]},
        {"stop": 5},
        {"top_p": 1.5},
        {"min_p": "low"},
        {"repeat_penalty": -1},
    ],
)
async def test_the_server_refuses_malformed_sampling(extra: dict[str, object]) -> None:
    async with serve_fake_openai() as fake:
        async with openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0) as ai:
            with pytest.raises(openai.BadRequestError):
                await ai.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}], extra_body=extra
                )
        assert fake.requests == []


def test_the_server_takes_a_single_stop_string() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stop": "Rex:"}
    assert parse_chat_request(body, {}).stop == ("Rex:",)


@pytest.mark.parametrize(
    "changes",
    [
        {"temperature": 3.0},
        {"top_p": -0.1},
        {"min_p": float("nan")},
        {"stop": ("a", "b", "c", "d", "e")},
        {"stop": ("",)},
    ],
)
def test_sampling_settings_no_server_accepts_are_our_bug(changes: dict[str, object]) -> None:
    with pytest.raises(SamplingError):
        Sampling(**changes)  # type: ignore[arg-type]
    assert issubclass(SamplingError, LocalError)


def test_the_embedded_engine_forwards_what_was_asked_to_llama_cpp() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "top_p": 0.9,
        "min_p": 0.05,
        "repeat_penalty": 1.15,
        "stop": ["\n\n", "Rex:"],
    }
    assert sampling_kwargs(parse_chat_request(body, {})) == {
        "top_p": 0.9,
        "min_p": 0.05,
        "repeat_penalty": 1.15,
        "stop": ["\n\n", "Rex:"],
    }
    bare = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert sampling_kwargs(parse_chat_request(bare, {})) == {}  # llama-cpp's defaults
