"""Talking to a legacy participant's HTTP server: every answer is size- and time-capped,
must be a JSON object, and stays untrusted text (the caller validates its fields)."""

from __future__ import annotations

import json
from typing import Any, Final

import httpx
import trio

from bridge.problems import Problem

MAX_ANSWER_BYTES: Final = 64 * 1024
ANSWER_TIMEOUT_S: Final = 15.0


class ParticipantFailed(Problem):
    """The participant's server errored, timed out, or answered something unusable."""

    def __init__(self, detail: str) -> None:
        super().__init__(502, "participant-failed", "The participant did not answer usably", detail)


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    body: dict[str, Any] | None = None,
    max_bytes: int = MAX_ANSWER_BYTES,
    timeout_s: float = ANSWER_TIMEOUT_S,
) -> dict[str, Any]:
    """``method url`` (with a JSON ``body``), and the JSON object it answers with.

    Raises :class:`ParticipantFailed` for a connection that fails (or is refused by the
    URL guard), a status other than 2xx, more than ``max_bytes``, more than ``timeout_s``
    in all, or an answer that is not a JSON object.
    """
    try:
        with trio.fail_after(timeout_s):
            async with client.stream(method, url, json=body) as response:
                if not 200 <= response.status_code < 300:
                    raise ParticipantFailed(f"{method} {url} answered HTTP {response.status_code}")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        raise ParticipantFailed(
                            f"{method} {url} answered more than {max_bytes} bytes"
                        )
    except trio.TooSlowError as exc:
        raise ParticipantFailed(f"{method} {url} did not answer within {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise ParticipantFailed(f"{method} {url} failed: {exc}") from exc
    try:
        decoded = json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParticipantFailed(f"{method} {url} answered something that is not JSON") from exc
    if not isinstance(decoded, dict):
        raise ParticipantFailed(f"{method} {url} answered JSON that is not an object")
    return decoded
