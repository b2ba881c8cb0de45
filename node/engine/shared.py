"""An engine several characters in one process share (the party's one embedded model).

The party opens the engine while its characters already join the network; each
character's agent waits on the :class:`SharedEngineSlot` until the model is ready, then
calls it at its own base URL (:meth:`SharedEngine.url_for`), so the engine's
:class:`~node.engine.fair_queue.FairQueue` knows whom it serves.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from keys.errors import LocalError
from node.engine.fair_queue import FairQueue
from node.engine.openai_server import caller_base_url


@dataclass(frozen=True, slots=True)
class SharedEngine:
    base_url: str
    """The plain ``http://127.0.0.1:PORT/v1``."""
    model: str
    queue: FairQueue

    def url_for(self, caller: str) -> str:
        return caller_base_url(self.base_url, caller)


class SharedEngineUnavailable(LocalError):
    """The shared engine failed to start; the message says why."""


class SharedEngineSlot:
    """Filled once by the party when the engine is up (or failed); characters wait on it."""

    def __init__(self) -> None:
        self._settled = trio.Event()
        self._engine: SharedEngine | None = None
        self._problem = "the shared engine is starting"

    @property
    def engine(self) -> SharedEngine | None:
        return self._engine

    @property
    def problem(self) -> str | None:
        return None if self._engine is not None else self._problem

    def fill(self, engine: SharedEngine) -> None:
        self._engine = engine
        self._settled.set()

    def fail(self, problem: str) -> None:
        self._problem = problem
        self._settled.set()

    def progress(self, problem: str) -> None:
        """What the engine is doing before it is ready (shown in status)."""
        if not self._settled.is_set():
            self._problem = problem

    async def wait(self) -> SharedEngine:
        await self._settled.wait()
        if self._engine is None:
            raise SharedEngineUnavailable(self._problem)
        return self._engine


__all__ = ["SharedEngine", "SharedEngineSlot", "SharedEngineUnavailable"]
