"""The embedded engine: llama-cpp-python behind the shared OpenAI-compatible app on loopback.

Why: a fresh machine runs a character with no LLM server. Serving the embedded model over
HTTP (instead of calling it in-process) keeps one client path for every engine, so
failover, timeouts and budgets behave the same whether the model is local or remote.

llama.cpp holds one context, so generations run one at a time (a ``trio.Lock``) on a worker
thread, and the trio loop keeps serving while a reply decodes. A cancelled generation is
told to stop at its next token, so shutdown waits for one token, not for a whole reply.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio

from keys.errors import LocalError
from node.engine.fair_queue import FairQueue
from node.engine.model_pack import ModelChoice, Progress, ensure_model
from node.engine.openai_server import (
    ChatRequest,
    Generation,
    GenerationError,
    create_openai_app,
    open_openai_server,
)
from node.engine.shared import SharedEngine

log = logging.getLogger(__name__)

BUILD_FLAGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
INSTALL_HINT = f"CMAKE_ARGS=\"{BUILD_FLAGS}\" pip install 'roomverse[embedded]'"
"""The native build enables AMX and crashes on these CPUs: build portable."""

DEFAULT_CONTEXT = 4096
MIN_CONTEXT = 256
DEFAULT_MAX_TOKENS = 256
MAX_DEFAULT_THREADS = 8


def default_threads() -> int:
    """Every core this process may use, at most :data:`MAX_DEFAULT_THREADS`.

    The model is the work; the nodes' loops wait on it. Measured with the 1.5B model on 2
    quiet cores: 1 thread reads 35 prompt tokens/s and writes 7.6, 2 threads 67 and 10.3;
    a scripted 6-line visit took 36 s on 1 thread, 22 s on 2. (An earlier rule kept a core
    for the loop, from SmolLM2 on cores busy with other work.) Past 8, threads contend for
    memory bandwidth more than they add.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_THREADS))


class EmbeddedEngineError(LocalError):
    """The embedded engine cannot run here."""


class EmbeddedUnavailable(EmbeddedEngineError):
    """llama-cpp-python is not installed."""


def load_llama(model_path: Path, *, threads: int | None, context: int = DEFAULT_CONTEXT) -> Any:
    """Load the GGUF (blocking, seconds). Returns a ``llama_cpp.Llama``.

    ``llama_cpp`` is imported here, not at module import, so the node runs without the extra.
    """
    # Busy-waiting OpenMP workers halve decode speed when anything else wants the cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        # Through import_module: the extra may be absent (kept_states imports llama_cpp).
        kept_states = importlib.import_module("node.engine.kept_states")
    except ImportError as exc:
        raise EmbeddedUnavailable(
            f"the embedded engine needs llama-cpp-python; install it with: {INSTALL_HINT}"
        ) from exc
    n_threads = threads or default_threads()
    # llama.cpp raises a context under 256 to 256 but llama-cpp-python sizes its token
    # buffer by the number asked for, and then fails on long prompts.
    context = max(context, MIN_CONTEXT)
    try:
        llama = kept_states.TurnTakingLlama(
            model_path=str(model_path),
            n_ctx=context,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
    except ValueError as exc:
        raise EmbeddedEngineError(f"llama.cpp cannot load {model_path.name}: {exc}") from exc
    llama.set_cache(kept_states.KeptStates())
    return llama


class LlamaGenerator:
    """The ``generate`` callable for :func:`create_openai_app`, one generation at a time."""

    def __init__(self, llama: Any) -> None:
        self._llama = llama
        self._eos: int = llama.token_eos()
        self._lock = trio.Lock()

    async def __call__(self, request: ChatRequest) -> Generation:
        async with self._lock:
            stop = threading.Event()
            finished = threading.Event()
            work = partial(self._complete, request, stop, finished)
            try:
                # trio_typing's stubs predate abandon_on_cancel (trio >= 0.23).
                result = await trio.to_thread.run_sync(work, abandon_on_cancel=True)  # type: ignore[call-arg]
            except BaseException:
                # Cancelled (or failed): stop at the next token and keep the context locked
                # until the thread lets go of it.
                stop.set()
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(finished.wait)
                raise
        return _generation_of(result)

    def _complete(
        self, request: ChatRequest, stop: threading.Event, finished: threading.Event
    ) -> dict[str, Any]:
        try:
            result: dict[str, Any] = self._llama.create_chat_completion(
                messages=[{"role": m.role, "content": m.content} for m in request.messages],
                max_tokens=request.max_tokens or DEFAULT_MAX_TOKENS,
                temperature=0.8 if request.temperature is None else request.temperature,
                # Without a seed, llama-cpp-python draws each call's from the last one,
                # starting at a fixed number: every run said the same things, and a
                # restored kept state rewound the chain (seen: a visit repeating the one
                # before it word for word).
                seed=secrets.randbits(32),
                logits_processor=[partial(_end_when_set, stop, self._eos)],
                **sampling_kwargs(request),
            )
            return result
        except ValueError as exc:
            # llama-cpp-python reports a prompt longer than the context as a ValueError.
            if "context window" not in str(exc):
                raise
            raise GenerationError(400, str(exc), code="context_length_exceeded") from exc
        finally:
            finished.set()


def sampling_kwargs(request: ChatRequest) -> dict[str, Any]:
    """The request's other sampling settings, in ``create_chat_completion``'s names;
    absent ones are left out so llama-cpp-python's defaults apply."""
    kwargs: dict[str, Any] = {
        name: value
        for name, value in (
            ("top_p", request.top_p),
            ("min_p", request.min_p),
            ("repeat_penalty", request.repeat_penalty),
        )
        if value is not None
    }
    if request.stop:
        kwargs["stop"] = list(request.stop)
    return kwargs


def _end_when_set(stop: threading.Event, eos: int, _input_ids: Any, scores: Any) -> Any:
    """A logits processor (called once per token) that forces end-of-sequence once ``stop`` is set.

    create_chat_completion takes no stopping criteria, and an exception raised here is
    swallowed by the ctypes sampler callback, so the only way out is to make EOS the one
    choice: the reply ends at the next token.
    """
    if stop.is_set():
        scores[:] = -math.inf
        scores[eos] = 0.0
    return scores


def _generation_of(result: dict[str, Any]) -> Generation:
    choice = result["choices"][0]
    usage = result["usage"]
    return Generation(
        text=choice["message"]["content"] or "",
        prompt_tokens=int(usage["prompt_tokens"]),
        completion_tokens=int(usage["completion_tokens"]),
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
    )


@asynccontextmanager
async def open_embedded_engine(
    choice: ModelChoice,
    *,
    cache_dir: Path | None = None,
    on_progress: Progress | None = None,
    threads: int | None = None,
    context: int = DEFAULT_CONTEXT,
    port: int = 0,
) -> AsyncIterator[str]:
    """Provide the packaged model, load it, serve it on loopback; yields the base URL.

    ``on_progress`` reports the model's verification or assembly (from a worker thread).
    """
    async with open_shared_engine(
        choice,
        cache_dir=cache_dir,
        on_progress=on_progress,
        threads=threads,
        context=context,
        port=port,
    ) as engine:
        yield engine.base_url


@asynccontextmanager
async def open_shared_engine(
    choice: ModelChoice,
    *,
    cache_dir: Path | None = None,
    on_progress: Progress | None = None,
    threads: int | None = None,
    context: int = DEFAULT_CONTEXT,
    port: int = 0,
) -> AsyncIterator[SharedEngine]:
    """:func:`open_embedded_engine` for several callers: one model in memory, its
    generations queued fairly per caller (each uses :meth:`SharedEngine.url_for`)."""
    path = await trio.to_thread.run_sync(
        partial(ensure_model, choice, cache_dir=cache_dir, on_progress=on_progress)
    )
    llama = await trio.to_thread.run_sync(
        partial(load_llama, path, threads=threads, context=context)
    )
    log.info("embedded engine loaded %s", path.name)
    try:
        queue = FairQueue(LlamaGenerator(llama))
        app = create_openai_app(queue, models=[choice.name])
        async with open_openai_server(app, port=port) as base_url:
            yield SharedEngine(base_url=base_url, model=choice.name, queue=queue)
    finally:
        llama.close()
