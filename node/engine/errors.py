"""Errors of the engine side: calling LLM servers, the token budget, stored API keys.

They sit on the local branch of the project's tree (``keys.errors``): an engine that fails
is the owner's setup (a server down, a wrong URL or key, a spent budget), never the fault
of the peer whose words were being answered, so nothing here penalises a peer::

    LocalError
    ├── EngineError                  ``reason`` is a short stable code
    │   ├── EngineCallFailed         one engine, one call: timeout, http_500, connection, ...
    │   ├── EngineResting            the budget tier refuses this purpose (carries the tier)
    │   └── EnginesUnavailable       every candidate failed or is switched off by its breaker
    └── KeyFileError
        └── EngineKeyStoreError      the encrypted API key file cannot be used
            ├── EngineKeyStoreLocked     it was written under another character's seed
            └── EngineKeyStoreCorrupt    it is damaged or was tampered with

No message here ever contains an API key, a prompt or a reply: they are written to logs
and shown in ``roomverse status``.
"""

from __future__ import annotations

from collections.abc import Mapping

from keys.errors import KeyFileError, LocalError
from node.engine.budget import BudgetTier


class EngineError(LocalError):
    """An LLM engine could not produce a reply; ``reason`` says why in one code."""

    reason: str = "engine_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class EngineCallFailed(EngineError):
    """One call to one engine failed.

    ``reason`` is one of ``timeout``, ``connection``, ``http_<status>`` (``http_500``,
    ``http_401``, ...), ``bad_response`` (not a chat completion) or ``empty_reply``.
    """

    def __init__(self, engine: str, reason: str) -> None:
        super().__init__(f"engine {engine!r} failed: {reason}", reason=reason)
        self.engine = engine


class EngineResting(EngineError):
    """The day's token budget does not allow this call (the character is resting).

    The caller answers politely that it is resting (a reply), or skips the work (an
    autonomous visit, a memory summary) until the tier allows it again.
    """

    reason = "resting"

    def __init__(self, tier: BudgetTier, purpose: str) -> None:
        super().__init__(f"token budget tier {tier.value!r} does not allow {purpose!r} calls")
        self.tier = tier
        self.purpose = purpose


class EnginesUnavailable(EngineError):
    """No engine answered: each one tried failed, and the others' breakers are open.

    ``failures`` maps each engine name to the reason it gave no reply (``breaker_open``
    for an engine that was not tried).
    """

    reason = "unavailable"

    def __init__(self, failures: Mapping[str, str]) -> None:
        summary = ", ".join(f"{name}: {why}" for name, why in failures.items()) or "none"
        super().__init__(f"no engine answered ({summary})")
        self.failures = dict(failures)


class EngineKeyStoreError(KeyFileError):
    """The encrypted file of engine API keys cannot be read or written."""


class EngineKeyStoreLocked(EngineKeyStoreError):
    """The key file was written under another identity seed (another character's key)."""


class EngineKeyStoreCorrupt(EngineKeyStoreError):
    """The key file is damaged or was altered: it fails authentication or parsing."""
