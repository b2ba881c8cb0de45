"""The owner's approval of a call to a tool lent with ``ask``.

A tool whose server does not mark it read-only (or that the owner marked ``ask``) runs
only after the owner approves that very call in the dashboard, where the arguments are
shown. The call waits here; no answer within ``timeout_s`` is a denial, and so is a full
waiting room (:data:`MAX_PENDING`): a partner cannot queue up work for the owner.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from node.clock import now_ms
from node.events import EventLog

MAX_PENDING: Final = 16
DEFAULT_TIMEOUT_S: Final = 120.0


@dataclass
class PendingCall:
    """A call waiting for the owner: what the dashboard shows."""

    id: str
    visit: str
    caller_id: str
    caller_name: str
    tool: str
    arguments: Mapping[str, Any]
    asked_ms: int
    expires_ms: int
    decided: trio.Event = field(default_factory=trio.Event, repr=False)
    approved: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "visit": self.visit,
            "caller": self.caller_id,
            "caller_name": self.caller_name,
            "tool": self.tool,
            "arguments": dict(self.arguments),
            "asked_ms": self.asked_ms,
            "expires_ms": self.expires_ms,
        }


class Approvals:
    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        events: EventLog | None = None,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.timeout_s = timeout_s
        self._events = events
        self._clock_ms = clock_ms
        self._pending: dict[str, PendingCall] = {}

    def pending(self) -> list[PendingCall]:
        return list(self._pending.values())

    async def ask(
        self,
        *,
        visit: str,
        caller_id: str,
        caller_name: str,
        tool: str,
        arguments: Mapping[str, Any],
    ) -> bool:
        """Wait for the owner's answer on this call: True to run it, False otherwise."""
        if len(self._pending) >= MAX_PENDING:
            self._emit("souvenir_approval", tool=tool, caller=caller_id, decision="full")
            return False
        asked = self._clock_ms()
        call = PendingCall(
            id=secrets.token_hex(8),
            visit=visit,
            caller_id=caller_id,
            caller_name=caller_name,
            tool=tool,
            arguments=arguments,
            asked_ms=asked,
            expires_ms=asked + int(self.timeout_s * 1000),
        )
        self._pending[call.id] = call
        self._emit("souvenir_approval_asked", id=call.id, tool=tool, caller=caller_id, visit=visit)
        try:
            with trio.move_on_after(self.timeout_s):
                await call.decided.wait()
        finally:
            self._pending.pop(call.id, None)
        decision = "approved" if call.approved else "denied" if call.decided.is_set() else "expired"
        self._emit("souvenir_approval", id=call.id, tool=tool, caller=caller_id, decision=decision)
        return call.approved

    def decide(self, call_id: str, approve: bool) -> bool:
        """The owner's answer; False when no such call is waiting (answered, expired)."""
        call = self._pending.get(call_id)
        if call is None or call.decided.is_set():
            return False
        call.approved = approve
        call.decided.set()
        return True

    def _emit(self, name: str, **fields: Any) -> None:
        if self._events is not None:
            self._events.emit(name, **fields)
