"""What a viewer receives: the JSON frames of the firehose protocol (issue 5 design).

A :class:`FirehoseEvent` is built only from a :class:`keys.Verified` envelope, so nothing
unverified reaches a viewer. It is encoded to JSON once, when it is made: the hub hands
the same string to every viewer, so fan-out costs no encoding.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from keys import Verified

CLOSE_POLICY = 1008
"""WebSocket close code for a viewer closed by policy (slow, read-only, limits)."""
CLOSE_GOING_AWAY = 1001
"""WebSocket close code for a server shutdown."""

REASON_CODES = {
    "slow_consumer": CLOSE_POLICY,
    "read_only": CLOSE_POLICY,
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
    """The ``{"type": "event", ...}`` JSON text frame."""

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


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
