"""Every refusal the bridge makes, as an RFC 9457 ``application/problem+json`` body.

A :class:`Problem` raised anywhere in a request becomes that response (status, a stable
``type``, a short ``title``, a ``detail`` a person can act on); nothing else a client
sends can make the bridge answer with a stack trace.
"""

from __future__ import annotations

from typing import Any, Final

PROBLEM_JSON: Final = "application/problem+json"
TYPE_BASE: Final = "urn:roomverse:bridge:problem:"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {slug}: {detail}")
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


def invalid(detail: str) -> Problem:
    """A request body that does not fit its schema (422)."""
    return Problem(422, "invalid-request", "Invalid request", detail)
