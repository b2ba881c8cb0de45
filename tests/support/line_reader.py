"""A child process's output read line by line, on a thread, waited on with a deadline.

The one reader behind every process the tests follow: ``roomverse`` and the firehose
(JSON event lines, :class:`tests.support.procs.JsonLinesProcess`), the js-libp2p peer
(:class:`tests.support.jspeer.JsPeer`), and the probes and sinks in network namespaces
(plain lines). Every line is kept, in order; a waiter is woken by each new line.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from typing import IO, Any, Generic, TypeVar

from tests.support.waiting import POLL_S, wait_until

T = TypeVar("T")
R = TypeVar("R")

Event = dict[str, Any]

UNPARSED = "_unparsed"
"""The ``event`` of a line that is not a JSON object; the text is under ``line``."""


def json_event(line: str) -> Event:
    """One JSON object per line; anything else is kept as an ``_unparsed`` event (a
    traceback, a URL printed as plain text), so no line is lost and every event has an
    ``event`` field."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return {"event": UNPARSED, "line": line}
    return event if isinstance(event, dict) else {"event": UNPARSED, "line": line}


def plain_line(line: str) -> str:
    return line


class LineReader(Generic[T]):
    """Reads ``stream`` (text or bytes) until it ends, keeping ``parse(line)`` of every
    line, without its line break, in :attr:`items`. The reader owns ``stream``: it closes
    it when it ends (so a stopped process leaves no pipe open)."""

    def __init__(
        self,
        stream: IO[str] | IO[bytes],
        parse: Callable[[str], T],
        *,
        label: str,
    ) -> None:
        self.label = label
        self.items: list[T] = []
        """Every line read so far, parsed; it only grows."""
        self.ended = False
        """The stream ended (the process closed it or exited)."""
        self._cond = threading.Condition()
        self._thread = threading.Thread(
            target=self._pump, args=(stream, parse), name=f"lines of {label}", daemon=True
        )
        self._thread.start()

    def _pump(self, stream: IO[str] | IO[bytes], parse: Callable[[str], T]) -> None:
        try:
            for raw in stream:
                line = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
                item = parse(line.rstrip("\r\n"))
                with self._cond:
                    self.items.append(item)
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass  # the stream was closed under the reader: the process is being stopped
        finally:
            with contextlib.suppress(OSError):
                stream.close()
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def wait_until(
        self,
        check: Callable[[list[T]], R | None],
        timeout: float,
        what: str,
        *,
        detail: Callable[[], str] | None = None,
    ) -> R:
        """Wait until ``check(every item so far)`` is truthy and return its result; fails
        once ``timeout`` passes, or as soon as the stream has ended without it holding.
        ``detail`` replaces the default failure detail (the last lines)."""
        with self._cond:
            return wait_until(
                lambda: check(self.items),
                timeout,
                f"{what} from {self.label}",
                poll=POLL_S,
                ended=lambda: "output ended" if self.ended else None,
                detail=detail or self.tail,
                pause=self._cond.wait,
            )

    def snapshot(self) -> list[T]:
        """A copy of :attr:`items`, for reading while lines keep coming."""
        with self._cond:
            return list(self.items)

    def tail(self, n: int = 10) -> str:
        return f"last lines of {self.label}: {self.snapshot()[-n:]!r}"

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the reading thread (after the process's end), which closes the stream."""
        self._thread.join(timeout)


__all__ = ["UNPARSED", "Event", "LineReader", "json_event", "plain_line"]
