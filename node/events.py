"""What a node tells the outside world about itself.

With ``--log-format json`` every event is one JSON object per line on stdout with an
``event`` field, so scripts and tests can follow a node. With ``text`` the same events are
short human lines. Diagnostics from libraries go to stderr through :mod:`logging`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

from node.privacy.log_scrub import scrub_log_text

LogFormat = Literal["text", "json"]
Listener = Callable[[str, dict[str, Any]], None]

logger = logging.getLogger(__name__)


class EventLog:
    def __init__(
        self,
        fmt: LogFormat = "text",
        stream: TextIO | None = None,
        *,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.fmt = fmt
        self._stream = stream or sys.stdout
        self._context = dict(context or {})
        """Fields written on every line (the party names the character), not passed to
        listeners."""
        self.counts: dict[str, int] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event, fields)`` on every event (synchronously, so keep it
        short); returns the function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def emit(self, event: str, **fields: Any) -> None:
        self.counts[event] = self.counts.get(event, 0) + 1
        for listener in list(self._listeners):
            try:
                listener(event, fields)
            except Exception:
                logger.exception("event listener failed on %s", event)
        if self.fmt == "json":
            record = {"event": event, "ts": round(time.time(), 3), **self._context, **fields}
            line = json.dumps(record, ensure_ascii=False, default=_jsonable)
        else:
            details = " ".join(f"{k}={_short(v)}" for k, v in {**self._context, **fields}.items())
            line = f"{time.strftime('%H:%M:%S')} {event} {details}".rstrip()
        # Speech and names come from other people: PII is redacted from every log line.
        line = scrub_log_text(line)
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            # The reader went away (closed pipe); the node keeps running regardless.
            pass


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _short(value: Any) -> str:
    if isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, default=_jsonable)
    elif isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."
