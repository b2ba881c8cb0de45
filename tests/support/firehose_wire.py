"""How the firehose tests read ``/ws``: a text frame carries one or more JSON objects,
one per line (DESIGN §9); tests want them one at a time, in order.

Parsing is written here, from the protocol text, rather than borrowed from the server,
so a framing bug on the server cannot hide behind the same bug in the tests.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from tests.support.websocket import open_websocket

WAIT_S = 10.0


def parse_frame(text: str | bytes) -> list[dict[str, Any]]:
    """Every JSON object of one frame; empty lines are allowed and skipped."""
    assert isinstance(text, str), "the firehose sends text frames only"
    objects = [json.loads(line) for line in text.split("\n") if line.strip()]
    assert objects and all(isinstance(o, dict) for o in objects), text[:200]
    return objects


class LineClient:
    """A viewer's socket, read object by object; counts frames to show the batching."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._pending: deque[dict[str, Any]] = deque()
        self.frames = 0
        self.objects = 0
        self.max_lines = 0
        """The most objects seen in one frame (above 1: the server batched)."""

    async def next(self, timeout_s: float = WAIT_S) -> dict[str, Any]:
        """The next object (fails the test after ``timeout_s``)."""
        with trio.fail_after(timeout_s):
            while not self._pending:
                self._pending.extend(await self._receive())
        return self._pending.popleft()

    async def read_frame(self) -> list[dict[str, Any]]:
        """The objects of the next whole frame (for readers that do not use :meth:`next`)."""
        assert not self._pending, "objects taken with next() are still waiting"
        return await self._receive()

    async def closed_with(self, timeout_s: float = WAIT_S) -> tuple[int, str | None]:
        """Read until the server closes; the close code and reason. What came before
        stays readable with :meth:`rest`."""
        with trio.fail_after(timeout_s):
            try:
                while True:
                    self._pending.extend(await self._receive())
            except ConnectionClosed as exc:
                return close_of(exc)

    async def _receive(self) -> list[dict[str, Any]]:
        objects = parse_frame(await self.ws.get_message())
        self.frames += 1
        self.objects += len(objects)
        self.max_lines = max(self.max_lines, len(objects))
        return objects

    def rest(self) -> list[dict[str, Any]]:
        """The objects received but not yet taken with :meth:`next`."""
        out = list(self._pending)
        self._pending.clear()
        return out


def close_of(exc: ConnectionClosed) -> tuple[int, str | None]:
    """The close code and reason (1006, None: closed without a close frame)."""
    if exc.reason is None:
        return 1006, None
    return exc.reason.code, exc.reason.reason


@asynccontextmanager
async def open_lines(url: str, **kwargs: Any) -> AsyncIterator[LineClient]:
    """:func:`~tests.support.websocket.open_websocket` (same keyword arguments), read as
    JSON lines."""
    async with open_websocket(url, **kwargs) as ws:
        yield LineClient(ws)
