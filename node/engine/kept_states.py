"""Context states kept per speaker, so speakers taking turns on one llama.cpp context
do not read their whole prompt again on every call.

Why: one embedded context serves every speaker in turn (the party's characters, both
sides of a visit). Each call's prompt starts with its own speaker's system prompt, so it
shares no prefix with the call before it, and llama.cpp would read all of it again. A
speaker's next prompt is its previous one plus the new lines, so restoring its kept state
leaves only the new lines to read.

llama-cpp-python's own ``LlamaRAMCache`` cannot be used as it is: ``Llama.save_state``
copies the whole logits array (n_batch x n_vocab floats, ~311 MB on Qwen's 152k
vocabulary) into every state, and the cache counts only the llama.cpp part. Measured: the
party grew to 4.5 GB. Here a saved state keeps no logits (a restored
state is always decoded again before sampling: ``Llama.generate`` replays at least one
token, ``_requires_eval``), and the cache counts every byte it holds.

This module imports ``llama_cpp``: import it only where the embedded extra is present.
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final

import llama_cpp
from llama_cpp.llama_cache import BaseLlamaCache

KEPT_STATES_BYTES: Final = 96 << 20
"""About six speakers' states: a 500-token state is ~15 MB on the 1.5B model (28 layers x
2 x 256 KV values x 2 bytes per token, plus one logits row)."""


class TurnTakingLlama(llama_cpp.Llama):
    """A ``Llama`` whose saved states carry no logits (upstream copies the whole array)."""

    def save_state(self) -> llama_cpp.LlamaState:
        ctx = self._ctx.ctx
        size = llama_cpp.llama_state_get_size(ctx)
        buffer = (ctypes.c_uint8 * int(size))()
        written = int(llama_cpp.llama_state_get_data(ctx, buffer, size))
        if written > int(size):
            raise RuntimeError("llama.cpp wrote more state than it said it would")
        return llama_cpp.LlamaState(
            # The whole array (n_ctx ints): load_state puts it back as the live one.
            input_ids=self.input_ids.copy(),
            # No logits: a restored state is decoded again before anything is sampled.
            scores=self.scores[:0].copy(),
            n_tokens=self.n_tokens,
            llama_state=bytes(memoryview(buffer)[:written]),
            llama_state_size=written,
            seed=self._seed,
        )

    def load_state(self, state: llama_cpp.LlamaState) -> None:
        # Upstream also writes the saved logits over n_tokens rows of the logits array
        # (touching up to 311 MB of it) and scans the rest; neither is read before the
        # next decode, which _requires_eval forces (Llama.generate replays >= 1 token).
        size = int(state.llama_state_size)
        data = (ctypes.c_uint8 * size).from_buffer_copy(state.llama_state)
        if int(llama_cpp.llama_state_set_data(self._ctx.ctx, data, size)) != size:
            raise RuntimeError("llama.cpp did not take the whole kept state")
        self.input_ids = state.input_ids.copy()
        self.n_tokens = state.n_tokens
        self._requires_eval = True
        self._seed = state.seed


def state_bytes(state: llama_cpp.LlamaState) -> int:
    """Everything a kept state holds in memory."""
    return int(state.llama_state_size) + int(state.input_ids.nbytes) + int(state.scores.nbytes)


class KeptStates(BaseLlamaCache):
    """Kept states by token prefix, least recently used out past ``capacity_bytes``."""

    def __init__(self, capacity_bytes: int = KEPT_STATES_BYTES) -> None:
        super().__init__(capacity_bytes)
        self._states: OrderedDict[tuple[int, ...], llama_cpp.LlamaState] = OrderedDict()
        self._bytes = 0

    @property
    def cache_size(self) -> int:
        return self._bytes

    def __bool__(self) -> bool:
        # llama-cpp-python asks ``if self.cache:``; an empty cache must still be used.
        return True

    @property
    def count(self) -> int:
        return len(self._states)

    def _find_longest_prefix_key(self, key: tuple[int, ...]) -> tuple[int, ...] | None:
        best_length = 0
        best: tuple[int, ...] | None = None
        for kept in self._states:
            length = llama_cpp.Llama.longest_token_prefix(kept, key)
            if length > best_length:
                best_length, best = length, kept
        return best

    def __getitem__(self, key: Sequence[int]) -> llama_cpp.LlamaState:
        found = self._find_longest_prefix_key(tuple(key))
        if found is None:
            raise KeyError("no kept state shares a prefix with this prompt")
        self._states.move_to_end(found)
        return self._states[found]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, Sequence):
            return False
        return self._find_longest_prefix_key(tuple(key)) is not None

    def __setitem__(self, key: Sequence[int], value: llama_cpp.LlamaState) -> None:
        kept = tuple(key)
        self._forget(kept)
        # A state that outgrew the prefix it extends replaces it: one state per speaker.
        for older in [k for k in self._states if kept[: len(k)] == k]:
            self._forget(older)
        if state_bytes(value) > self.capacity_bytes:
            return
        self._states[kept] = value
        self._bytes += state_bytes(value)
        while self._bytes > self.capacity_bytes:
            self._forget(next(iter(self._states)))

    def _forget(self, key: tuple[int, ...]) -> None:
        state = self._states.pop(key, None)
        if state is not None:
            self._bytes -= state_bytes(state)
