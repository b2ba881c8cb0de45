"""What every JSON route of the dashboard shares: its error, the error's body, and reading
a request's input (a JSON object body, a whole-number query parameter, a visit id) with a
4xx for anything else."""

from __future__ import annotations

import json
from typing import Any

from quart import Response, jsonify, request
from werkzeug.datastructures import MultiDict

from keys.errors import LocalError
from node.storage.memory import VISIT_ID


class ApiError(LocalError):
    """A request the dashboard refuses; ``status`` is the HTTP status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_response(status: int, message: str) -> Response:
    """``{"error": message}`` with ``status``: how the dashboard says no."""
    response = jsonify({"error": message})
    response.status_code = status
    return response


async def json_object(allowed: set[str]) -> dict[str, Any]:
    """The request's body: a JSON object with no field outside ``allowed``."""
    if request.mimetype != "application/json":
        raise ApiError(415, "send a JSON object with Content-Type: application/json")
    raw = await request.get_data(cache=False, as_text=False)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (expected {', '.join(sorted(allowed))})")
    return body


def int_arg(args: MultiDict[str, str], name: str, default: int, low: int, high: int) -> int:
    """The query parameter ``name`` as a whole number in ``low..high`` (``default`` if
    absent)."""
    text = args.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and low <= int(text) <= high):
        raise ApiError(400, f'"{name}" must be a whole number {low}..{high}')
    return int(text)


def check_visit_id(visit_id: str) -> None:
    """Refuse (400) a path's visit id that is not one."""
    if VISIT_ID.fullmatch(visit_id) is None:
        raise ApiError(400, "a visit id is 32 lowercase hex characters")
