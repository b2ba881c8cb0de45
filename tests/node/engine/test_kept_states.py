"""Kept context states: speakers taking turns on one embedded context (real SmolLM2-135M)."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.engine.embedded import load_llama
from node.engine.model_pack import MODELS, ensure_model
from tests.support.embedded_model import needs_smollm2

SPEAKERS = {
    "Mina": "You are Mina, who keeps a tea house by the sea and loves trains. " * 8,
    "Kai": "You are Kai, a lighthouse mechanic who fixes old radios and likes storms. " * 8,
}


def turns() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Six calls, speakers alternating; each call's prompt is its speaker's last one plus
    the lines said since (a visit's shape)."""
    said: list[tuple[str, str]] = []
    for turn in range(6):
        me = "Mina" if turn % 2 == 0 else "Kai"
        messages = [
            {"role": "system", "content": SPEAKERS[me] + f"Write only {me}'s next line."},
            {"role": "user", "content": "(The door opens.)"},
        ]
        for who, text in said:
            own = who == me
            messages.append(
                {
                    "role": "assistant" if own else "user",
                    "content": text if own else f"{who}: {text}",
                }
            )
        yield me, messages
        said.append((me, f"line {turn} from {me}: the weather is fine today"))


def complete(llama: Any, messages: list[dict[str, str]]) -> str:
    out = llama.create_chat_completion(messages=messages, max_tokens=12, temperature=0.0)
    return str(out["choices"][0]["message"]["content"])


needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason="llama_cpp is not installed"
)


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    return ensure_model(MODELS["smollm2-135m"], cache_dir=tmp_path)


def counting_eval(llama: Any) -> list[int]:
    """Count the tokens each call reads (``Llama.eval`` is where prompts are decoded)."""
    counts: list[int] = []
    evaluate: Callable[[Any], None] = llama.eval

    def eval_counted(tokens: Any) -> None:
        counts[-1] += len(tokens)
        evaluate(tokens)

    llama.eval = eval_counted
    llama.counts = counts
    return counts


@pytest.mark.embedded
@needs_smollm2
def test_a_speakers_next_turn_reads_only_its_new_lines_and_says_the_same(
    model_path: Path,
) -> None:
    kept = load_llama(model_path, threads=1, context=2048)
    plain = load_llama(model_path, threads=1, context=2048)
    plain.set_cache(None)
    try:
        counts = counting_eval(kept)
        prompt_sizes: list[int] = []
        for _, messages in turns():
            counts.append(0)
            reply = complete(kept, messages)
            assert reply == complete(plain, messages)  # restored states change nothing said
            prompt_sizes.append(len(kept.tokenize(str(messages).encode())))
        # Calls 3..6 find their speaker's state from two calls before: they read the lines
        # since (two lines and the reply), not the ~140-token system prompt again.
        first_mina, first_kai = counts[0], counts[1]
        assert first_mina > 120 and first_kai > 120
        for later in counts[2:]:
            assert later < 60, counts
    finally:
        kept.close()
        plain.close()


@pytest.mark.embedded
@needs_smollm2
def test_kept_states_hold_no_logits_and_count_every_byte(model_path: Path) -> None:
    kept_states = importlib.import_module("node.engine.kept_states")
    llama = load_llama(model_path, threads=1, context=2048)
    try:
        for _, messages in turns():
            complete(llama, messages)
        cache = llama.cache
        states = list(cache._states.values())
        assert cache.count == len(states) >= 2
        assert all(state.scores.shape[0] == 0 for state in states)
        assert cache.cache_size == sum(kept_states.state_bytes(s) for s in states)
        # Half the room: never past the cap, and the state just saved is kept.
        cache.capacity_bytes = cache.cache_size // 2
        for _, messages in list(turns())[:2]:
            complete(llama, messages)
        assert cache.cache_size <= cache.capacity_bytes and 1 <= cache.count < len(states)
    finally:
        llama.close()


def fake_state(tokens: int, state_bytes: int) -> Any:
    llama_cpp = importlib.import_module("llama_cpp")
    np = importlib.import_module("numpy")
    return llama_cpp.LlamaState(
        input_ids=np.zeros(tokens, dtype=np.intc),
        scores=np.zeros((0, 8), dtype=np.single),
        n_tokens=tokens,
        llama_state=bytes(state_bytes),
        llama_state_size=state_bytes,
        seed=0,
    )


@needs_llama_cpp
def test_least_recently_used_state_goes_first_and_a_longer_prompt_replaces_its_prefix() -> None:
    kept_states = importlib.import_module("node.engine.kept_states")
    cache = kept_states.KeptStates(capacity_bytes=3000)
    mina, kai, hana = (1, 1, 1), (2, 2, 2), (3, 3, 3)
    for key in (mina, kai):
        cache[key] = fake_state(3, 1000)
    assert cache[(*mina, 9)] is not None  # Mina's prefix is looked up: now the newest
    cache[hana] = fake_state(3, 1000)  # over the cap: Kai, least recently used, goes
    assert list(cache._states) == [mina, hana]
    assert (*kai, 9) not in cache and (*mina, 9) in cache
    cache[(*mina, 4, 5)] = fake_state(5, 1000)  # Mina's next turn replaces her last one
    assert list(cache._states) == [hana, (*mina, 4, 5)]
    assert cache.cache_size == 2 * kept_states.state_bytes(fake_state(3, 1000)) + 8
    with pytest.raises(KeyError):
        cache[(7, 7)]
    cache[(8,)] = fake_state(1, 5000)  # larger than the whole cache: not kept
    assert (8,) not in cache
