"""The embedded engine: llama-cpp-python behind the shared OpenAI-compatible app on loopback.

Why: a fresh machine runs a character with no LLM server. Serving the embedded model over
HTTP (instead of calling it in-process) keeps one client path for every engine, so
failover, timeouts and budgets behave the same whether the model is local or remote.

llama.cpp holds one context, so generations run one at a time (a ``trio.Lock``) on a worker
thread, and the trio loop keeps serving while a reply decodes. A cancelled generation is
told to stop at its next token, so shutdown waits for one token, not for a whole reply.

With tools, a reply is made the way llama-cpp-python's "chatml-function-calling" handler
makes it (or in the model's own template's tool format, where it has one), on the same
loaded model (:meth:`LlamaGenerator._complete_with_tools`): the model chooses between
speaking and calling one of the tools, then either the words or the call's JSON arguments
(constrained by the tool's schema) are generated.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import secrets
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import trio

from keys.errors import LocalError
from node.engine.fair_queue import FairQueue
from node.engine.messages import ChatMessage, ToolCall, ToolSpec, flatten_tool_messages
from node.engine.model_pack import ModelChoice, Progress, ensure_model
from node.engine.openai_server import (
    ChatRequest,
    FinishReason,
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
MAX_ARGUMENT_TOKENS = 256
"""Tokens of one tool call's JSON arguments; a small model in a long string loops."""
CALL_OPENERS = ("<tool", "{", "```")
"""How a reply that is a tool call starts, in a template's own tool format (see
:meth:`LlamaGenerator._complete_with_tools`); a character's spoken line never does."""
CHATML_MARKERS = ("<|im_start|>", "<|im_end|>")
"""The tool prompt is tokenized with special tokens parsed: text must not carry them."""


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

    def __init__(self, llama: Any, *, native_tools: bool = True) -> None:
        self._llama = llama
        # False: always the chatml-function-calling prompt (bench/embedded_tools.py
        # compares the two on one model).
        self._native_tools = native_tools
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
        return result

    def _complete(
        self, request: ChatRequest, stop: threading.Event, finished: threading.Event
    ) -> Generation:
        try:
            if request.tools and request.tool_choice != "none":
                return self._complete_with_tools(request, stop)
            result: dict[str, Any] = self._llama.create_chat_completion(
                messages=[
                    {"role": m.role, "content": m.content}
                    # A model's own template may know no tool role: results go as text.
                    for m in flatten_tool_messages(request.messages)
                ],
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
            return _generation_of(result)
        except ValueError as exc:
            # llama-cpp-python reports a prompt longer than the context as a ValueError.
            if "context window" not in str(exc):
                raise
            raise GenerationError(400, str(exc), code="context_length_exceeded") from exc
        finally:
            finished.set()

    def _complete_with_tools(self, request: ChatRequest, stop: threading.Event) -> Generation:
        """Speak or call one offered tool: the model's first words choose (or, in the
        chatml-function-calling prompt, a grammar between ``message:`` and the tools).

        A model whose own chat template knows tools (Qwen2.5's) gets that template and its
        ``<tool_call>`` format; any other gets the prompt of llama-cpp-python's
        "chatml-function-calling" handler (:func:`tool_prompt`). Why not that handler
        itself: its ``auto`` mode constrains the spoken reply with the grammar meant for a
        follow-up call, so every reply it speaks is empty (measured with 0.3.36); it may
        chain calls until the context is full, shows the model no tool descriptions and
        drops ``tool`` messages. Either way the call's arguments are generated under the
        tool's JSON schema, at most one call per reply, on the loaded model.
        """
        grammars = importlib.import_module("llama_cpp.llama_grammar")
        steps = _Steps(self._llama, request, stop, grammars)
        names = [tool.name for tool in request.tools]
        speak = request.tool_choice != "required"
        native = self._native_template()
        if native is not None:
            prompt = self._native_prompt(native, request)
            opener = '<tool_call>\n{"name": "'
            tool_name = request.forced_tool
            if tool_name is None and speak:
                # The model's first words, unconstrained: Qwen2.5-Coder-1.5B opens a call
                # as "<tool_call>", "<tools>", "{{" or "```json" (a grammar holding it to
                # "<tool_call>" made it write fenced JSON instead). Any of these starts a
                # call, written out in the template's own form from here on.
                first = steps.run(prompt, None, max_tokens=6, stops=["<|im_end|>"])
                if not first.lstrip().startswith(CALL_OPENERS):
                    return steps.words(prompt + first, first, ["<tool_call>", "<tools>"])
            if tool_name is None:
                choices = " | ".join(json.dumps(f'{name}"') for name in names)
                tool_name = steps.run(prompt + opener, f"root ::= {choices}\n", 24)[:-1]
            return steps.call(f'{prompt}{opener}{tool_name}", "arguments": ', tool_name)
        prompt = tool_prompt(request.messages, request.tools)
        tool_name = request.forced_tool
        if tool_name is None:
            choices = " | ".join(json.dumps(f"functions.{name}:") for name in names)
            either = "functions" + (' | "message:"' if speak else "")
            # Greedy, as the handler chooses: the same conversation, the same choice.
            chosen = steps.run(
                prompt, f"root ::= {either}\nfunctions ::= {choices}\n", 24, greedy=True
            )
            if not chosen.startswith("functions."):
                return steps.words(prompt + "message:\n", "", [])
            tool_name = chosen.removeprefix("functions.").removesuffix(":")
        return steps.call(f"{prompt}functions.{tool_name}:\n", tool_name)

    def _native_template(self) -> str | None:
        """The model's own chat template if it renders tools, else None."""
        if not self._native_tools:
            return None
        metadata = getattr(self._llama, "metadata", None) or {}
        template = metadata.get("tokenizer.chat_template")
        return template if isinstance(template, str) and "tools" in template else None

    @property
    def tool_format(self) -> str:
        """How tools are offered to this model: ``"native"`` or ``"chatml-function-calling"``."""
        return "native" if self._native_template() is not None else "chatml-function-calling"

    def _native_prompt(self, template: str, request: ChatRequest) -> str:
        formats = importlib.import_module("llama_cpp.llama_chat_format")
        model = self._llama._model  # llama-cpp-python names the special tokens this way
        eos = model.token_get_text(self._llama.token_eos())
        bos_id = self._llama.token_bos()
        bos = model.token_get_text(bos_id) if bos_id != -1 else ""
        formatter = formats.Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        rendered = formatter(
            messages=[_native_message(m) for m in request.messages],
            tools=[tool.as_openai() for tool in request.tools],
        )
        prompt: str = rendered.prompt
        # create_completion adds the BOS token itself.
        return prompt.removeprefix(bos) if bos else prompt


class _Steps:
    """The completions one tool-offering reply is made of, sharing the request's sampling,
    the stop-on-cancel processor and a token count."""

    def __init__(
        self, llama: Any, request: ChatRequest, stop: threading.Event, grammars: Any
    ) -> None:
        self._llama = llama
        self._request = request
        self._grammars = grammars
        self._common: dict[str, Any] = {
            # create_completion, unlike create_chat_completion, takes stopping criteria:
            # forcing EOS (_end_when_set) does not end a generation whose grammar
            # forbids EOS (measured: a cancelled call's arguments ran on for 15 s).
            "stopping_criteria": importlib.import_module("llama_cpp").StoppingCriteriaList(
                [lambda _ids, _logits: stop.is_set()]
            ),
            **sampling_kwargs(request),
        }
        self._common.pop("stop", None)
        self._temperature = 0.8 if request.temperature is None else request.temperature
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.ended = False
        """Whether the last :meth:`run` ended its turn (end of turn or a stop sequence)."""

    def _complete(
        self, prompt: str, *, max_tokens: int, greedy: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._llama.create_completion(
            prompt=prompt,
            max_tokens=max_tokens,
            temperature=0.0 if greedy else self._temperature,
            seed=secrets.randbits(32),
            **self._common,
            **kwargs,
        )
        usage = result["usage"]
        self.prompt_tokens = max(self.prompt_tokens, int(usage["prompt_tokens"]))
        self.completion_tokens += int(usage["completion_tokens"])
        return result

    def run(
        self,
        prompt: str,
        grammar: str | None,
        max_tokens: int,
        *,
        greedy: bool = False,
        stops: Sequence[str] = (),
    ) -> str:
        """Text generated under ``grammar`` (GBNF; None: free)."""
        result = self._complete(
            prompt,
            max_tokens=max_tokens,
            greedy=greedy,
            stop=list(stops) or None,
            grammar=(
                None
                if grammar is None
                else self._grammars.LlamaGrammar.from_string(grammar, verbose=False)
            ),
        )
        self.ended = result["choices"][0].get("finish_reason") == "stop"
        return str(result["choices"][0]["text"])

    def words(self, prompt: str, said: str, stops: list[str]) -> Generation:
        """The spoken reply: ``said`` so far, then free text to the end of the turn."""
        budget = (self._request.max_tokens or DEFAULT_MAX_TOKENS) - self.completion_tokens
        if said and (self.ended or any(stop in said for stop in self._request.stop)):
            return self._generation(cut_at_stops(said, self._request.stop), "stop")
        result = self._complete(
            prompt,
            max_tokens=max(1, budget),
            stop=["<|im_end|>", *stops, *self._request.stop],
        )
        choice = result["choices"][0]
        text = said + str(choice["text"])
        return self._generation(
            text, "length" if choice.get("finish_reason") == "length" else "stop"
        )

    def call(self, prompt: str, tool_name: str) -> Generation:
        """One call of ``tool_name``, its arguments under the tool's JSON schema."""
        tool = next((tool for tool in self._request.tools if tool.name == tool_name), None)
        if tool is None:  # the name ran past its token limit
            raise GenerationError(500, "the model named no tool it was offered")
        try:
            grammar = self._grammars.LlamaGrammar.from_json_schema(
                json.dumps(tool.parameters), verbose=False
            )
        except Exception:  # a schema the converter cannot read: any JSON then
            grammar = self._grammars.LlamaGrammar.from_string(
                self._grammars.JSON_GBNF, verbose=False
            )
        limit = min(self._request.max_tokens or DEFAULT_MAX_TOKENS, MAX_ARGUMENT_TOKENS)
        result = self._complete(prompt, max_tokens=limit, grammar=grammar)
        arguments = str(result["choices"][0]["text"]).strip()
        call = ToolCall(f"call_{secrets.token_hex(8)}", tool_name, arguments)
        return replace(self._generation("", "tool_calls"), tool_calls=(call,))

    def _generation(self, text: str, finish: FinishReason) -> Generation:
        return Generation(
            text=text.strip(),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            finish_reason=finish,
        )


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """``text`` up to its first stop sequence (the server's promise to the client)."""
    ends = [text.find(stop) for stop in stops if stop in text]
    return text[: min(ends)] if ends else text


def _native_message(message: ChatMessage) -> dict[str, Any]:
    """A message as chat templates read it (arguments as objects: Qwen's template writes
    them with ``tojson``)."""
    content = _clean(message.content)
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}
    if message.tool_calls:
        calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.parsed_arguments() or _clean(call.arguments),
                },
            }
            for call in message.tool_calls
        ]
        return {"role": "assistant", "content": content, "tool_calls": calls}
    return {"role": message.role, "content": content}


def tool_prompt(messages: list[ChatMessage], tools: tuple[ToolSpec, ...]) -> str:
    """The ChatML prompt of llama-cpp-python's "chatml-function-calling" handler, plus
    each tool's description (a comment line) and tool results (which it drops), ready for
    the assistant's first word: ``message:`` or ``functions.<name>:``.

    Every default model (Qwen2.5, SmolLM2) was trained on ChatML.
    """
    listing = "".join(
        f"\nfunctions.{tool.name}:\n// {_clean(' '.join(tool.description.split()))}\n"
        f"{json.dumps(tool.parameters, ensure_ascii=False)}\n"
        for tool in tools
    )
    instructions = (
        "\n\nYou have access to the following functions:\n"
        f"{listing}"
        "\n\nYou can respond to users messages with either a single message or one or more"
        " function calls."
        "\n\nTo respond with a message begin the message with 'message:', use the following"
        " format:\n\nmessage:\n<message>"
        "\n\nTo respond with one or more function calls begin the message with"
        " 'functions.<function_name>:', use the following format:"
        '\n\nfunctions.<function_name>:\n{ "arg1": "value1", "arg2": "value2" }'
    )
    names = {call.id: call.name for m in messages for call in m.tool_calls}
    parts: list[str] = []
    if not messages or messages[0].role != "system":
        parts.append(f"<|im_start|>system\n{instructions.lstrip()}<|im_end|>\n")
    for index, message in enumerate(messages):
        content = _clean(message.content)
        if message.role == "system":
            extra = instructions if index == 0 else ""
            parts.append(f"<|im_start|>system\n{content}{extra}<|im_end|>\n")
        elif message.role == "assistant":
            calls = "".join(
                f"functions.{call.name}:\n{_clean(call.arguments)}\n" for call in message.tool_calls
            )
            said = f"message:\n{content}\n" if content else ""
            parts.append(f"<|im_start|>assistant\n{said}{calls}".rstrip("\n") + "<|im_end|>\n")
        elif message.role == "tool":
            name = names.get(message.tool_call_id, "a function")
            parts.append(f"<|im_start|>user\nfunctions.{name} returned:\n{content}<|im_end|>\n")
        else:
            parts.append(f"<|im_start|>user\n{content}<|im_end|>\n")
    parts.append("<|im_start|>assistant\n")
    return "".join(parts)


def _clean(text: str) -> str:
    for marker in CHATML_MARKERS:
        text = text.replace(marker, "")
    return text


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
    native_tools: bool = True,
) -> AsyncIterator[str]:
    """Provide the packaged model, load it, serve it on loopback; yields the base URL.

    ``on_progress`` reports the model's verification or assembly (from a worker thread).
    ``native_tools=False`` offers tools in the chatml-function-calling prompt even to a
    model whose own template renders them (for comparing the two).
    """
    async with open_shared_engine(
        choice,
        cache_dir=cache_dir,
        on_progress=on_progress,
        threads=threads,
        context=context,
        port=port,
        native_tools=native_tools,
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
    native_tools: bool = True,
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
        queue = FairQueue(LlamaGenerator(llama, native_tools=native_tools))
        app = create_openai_app(queue, models=[choice.name])
        async with open_openai_server(app, port=port) as base_url:
            yield SharedEngine(base_url=base_url, model=choice.name, queue=queue)
    finally:
        llama.close()
