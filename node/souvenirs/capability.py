"""Lending as a capability scoped to one visit (pure: time is passed in as ``now_ms``).

A visit opens a grant for exactly its partner and that visit's id; the grant is revoked
when the visit ends (farewell, or the partner vanished: the visit's task leaves its
``with`` block either way). A call is let through only when all of these hold, checked in
this order, the first that fails naming the refusal:

- ``no_visit``: no open visit has this id (never opened, or closed already);
- ``not_partner``: the visit is open, but with someone else;
- ``replayed``: this request id was used in this visit already;
- ``not_lent``: the tool is not among what we lend (the plugin layer decides that);
- ``quota_visit``: :attr:`Quotas.per_visit` calls in this visit already;
- ``quota_hour``: :attr:`Quotas.per_hour` calls by this partner in the last hour.

A ``tools/list`` needs only the first three: a partner in an open visit may see what is
lent, which its name card says anyway.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

HOUR_MS: Final = 3_600_000
MAX_REQUEST_IDS: Final = 1024
"""Requests (lists and calls) one visit may make: far more than its calls quota."""


@dataclass(frozen=True, slots=True)
class Quotas:
    per_visit: int = 6
    """Calls one partner may make in one visit: a visit is a handful of lines."""
    per_hour: int = 20
    """Calls one partner may make in an hour, across visits."""


@dataclass
class _Grant:
    partner: str
    request_ids: set[int] = field(default_factory=set)
    calls: int = 0


class Lending:
    """Which partner may call our lent tools now, and how many more times."""

    def __init__(self, quotas: Quotas | None = None) -> None:
        self.quotas = quotas or Quotas()
        self._grants: dict[str, _Grant] = {}
        self._calls_by_partner: dict[str, deque[int]] = {}

    def open(self, visit: str, partner: str) -> None:
        """A visit with ``partner`` began: it may call what we lend until :meth:`close`."""
        self._grants[visit] = _Grant(partner)

    def close(self, visit: str) -> None:
        """The visit ended: every later call in it is refused with ``no_visit``."""
        grant = self._grants.pop(visit, None)
        if grant is not None and not self._calls_by_partner.get(grant.partner, True):
            del self._calls_by_partner[grant.partner]

    def is_open(self, visit: str, partner: str) -> bool:
        grant = self._grants.get(visit)
        return grant is not None and grant.partner == partner

    def check_list(self, visit: str, partner: str, request_id: int) -> str | None:
        """None if ``partner`` may list our lent tools in ``visit``, else the refusal."""
        grant = self._grants.get(visit)
        if grant is None:
            return "no_visit"
        if grant.partner != partner:
            return "not_partner"
        if request_id in grant.request_ids:
            return "replayed"
        if len(grant.request_ids) >= MAX_REQUEST_IDS:
            return "quota_visit"
        grant.request_ids.add(request_id)
        return None

    def check_call(
        self, visit: str, partner: str, request_id: int, *, lent: bool, now_ms: int
    ) -> str | None:
        """None if the call may run (and it is counted), else the refusal's reason."""
        refusal = self.check_list(visit, partner, request_id)
        if refusal is not None:
            return refusal
        grant = self._grants[visit]
        if not lent:
            return "not_lent"
        if grant.calls >= self.quotas.per_visit:
            return "quota_visit"
        recent = self._calls_by_partner.setdefault(partner, deque())
        while recent and recent[0] <= now_ms - HOUR_MS:
            recent.popleft()
        if len(recent) >= self.quotas.per_hour:
            return "quota_hour"
        grant.calls += 1
        recent.append(now_ms)
        return None

    def open_visits(self) -> int:
        return len(self._grants)
