"""What a viewer receives: the JSON objects of the firehose protocol (issue 5 design),
and how they are packed into WebSocket text frames.

A :class:`FirehoseEvent` is built only from a :class:`keys.Verified` envelope, so nothing
unverified reaches a viewer. It is encoded to JSON once, when it is made: the hub hands
the same string to every viewer, so fan-out costs no encoding.

A text frame carries one or more objects as JSON lines (DESIGN §9): :func:`take_frame`
joins what is already queued for a viewer, within bounds. Sending a frame costs a fixed
amount of server CPU whatever its size, so a viewer that has fallen behind by a few
events catches up in one frame instead of one frame per event; idle viewers still get
each event alone, at once.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keys import Verified

CLOSE_POLICY = 1008
"""WebSocket close code for a viewer closed by policy (slow, read-only, limits)."""
CLOSE_GOING_AWAY = 1001
"""WebSocket close code for a server shutdown."""
CLOSE_TOO_BIG = 1009
"""WebSocket close code for a viewer that sent a message above the frame-size cap."""

REASON_CODES = {
    "slow_consumer": CLOSE_POLICY,
    "read_only": CLOSE_POLICY,
    "too_big": CLOSE_TOO_BIG,
    "server_shutdown": CLOSE_GOING_AWAY,
}


@dataclass(frozen=True, slots=True)
class FirehoseEvent:
    """One verified public envelope as viewers see it, with its cursor."""

    cursor: int
    kind: str
    sender: str
    """The sender's PeerID (``12D3KooW...``): what the ``character`` filter matches."""
    frame: str
    """The ``{"type": "event", ...}`` JSON object, one line (JSON escapes every newline)."""

    @classmethod
    def from_verified(cls, cursor: int, envelope: Verified, name: str | None) -> FirehoseEvent:
        sender = envelope.sender_str
        obj = {
            "type": "event",
            "cursor": cursor,
            "kind": envelope.kind,
            "from": sender,
            "name": name,
            "seq": envelope.seq,
            "ts": envelope.ts_ms,
            "body": jsonable_body(envelope.body),
            "sig": envelope.sig.hex(),
            "raw": base64.b64encode(envelope.raw).decode("ascii"),
            "channel": envelope.channel,
        }
        return cls(cursor, envelope.kind, sender, _dumps(obj))


def jsonable_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """A body as JSON: a bytes field ``data`` becomes ``data_b64`` (base64 text)."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if isinstance(value, bytes):
            out[f"{key}_b64"] = base64.b64encode(value).decode("ascii")
        else:
            out[str(key)] = _jsonable(value)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return jsonable_body(value)
    if isinstance(value, (list, tuple)):
        return [
            base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else _jsonable(v)
            for v in value
        ]
    return value


def hello_frame(oldest: int, latest: int, characters: Sequence[str], kinds: Sequence[str]) -> str:
    return _dumps(
        {
            "type": "hello",
            "oldest": oldest,
            "latest": latest,
            "filters": {"character": list(characters), "kind": list(kinds)},
        }
    )


def too_old_frame(cursor: int, oldest: int) -> str:
    return _dumps({"type": "cursor_too_old", "cursor": cursor, "oldest": oldest})


def closing_frame(reason: str) -> str:
    return _dumps({"type": "closing", "reason": reason})


def take_frame(queue: deque[str], max_objects: int, max_bytes: int) -> str:
    """Pop the oldest object of ``queue`` and those after it while the frame holds at
    most ``max_objects`` and ``max_bytes`` (UTF-8); one object too big for the bound
    still goes, alone. The queue must not be empty."""
    first = queue.popleft()
    if not queue or max_objects < 2:
        return first
    lines = [first]
    size = utf8_len(first)
    while queue and len(lines) < max_objects:
        size += 1 + utf8_len(queue[0])
        if size > max_bytes:
            break
        lines.append(queue.popleft())
    return "\n".join(lines)


def utf8_len(text: str) -> int:
    # str.isascii() is O(1) in CPython; event frames are mostly ASCII.
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
