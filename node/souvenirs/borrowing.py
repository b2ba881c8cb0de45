"""Borrowing in one visit: the partner's lent tools, listed once, and calling them.

Each call leaves a footprint on our side too and, in a public visit, a public
``souvenir`` action (who used whose tool; never arguments or results). The exchange
itself, footprints and counters are the :class:`~node.souvenirs.service.SouvenirService`'s.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import trio

from keys.errors import RemoteError, RoomverseError
from node.clock import monotonic
from node.souvenirs.wire import (
    CALL,
    LIST,
    MAX_REQUEST_ID,
    REFUSED,
    TOOL_FAILED,
    Refusal,
    ToolAnswer,
    ToolListing,
    ToolRequest,
)
from node.storage.footprints import DENIED, FAILED_PREFIX, OK, REFUSED_PREFIX, TOOL_ERROR
from registry_crdt import schema_digest

if TYPE_CHECKING:
    from node.souvenirs.service import SouvenirService

logger = logging.getLogger(__name__)

MAX_LISTED: Final = 16
"""Tools of one partner offered to our engine (the name card's cap)."""


class VisitSouvenirs:
    """One visit's souvenirs on our side: the partner's lent tools, and calling them."""

    def __init__(
        self,
        service: SouvenirService,
        visit: str,
        partner_id: str,
        partner_name: str,
        private: bool,
    ) -> None:
        self._service = service
        self.visit = visit
        self.partner_id = partner_id
        self.partner_name = partner_name
        self.private = private
        self.calls = 0
        """Calls our engine made in this visit (refused ones too)."""
        self._listed: tuple[ToolListing, ...] | None = None

    async def listing(self) -> tuple[ToolListing, ...]:
        """What the partner lends us in this visit (asked once; () when its card lends
        nothing, when asking fails, or for tools whose schema is not the card's)."""
        if self._listed is not None:
            return self._listed
        self._listed = ()
        card = self._service.partner_card(self.partner_id)
        if card is None or not card.digests:
            return ()
        request = ToolRequest(_request_id(), LIST)
        try:
            answer = await self._service.exchange(self.partner_id, self.visit, request)
        except (RemoteError, trio.TooSlowError) as exc:
            logger.info(
                "visit %s: %s's souvenirs could not be listed: %s", self.visit, self.partner_id, exc
            )
            return ()
        if not isinstance(answer, tuple):
            return ()
        self._service.counters.listed_from_partners += 1
        self._listed = tuple(
            tool
            for tool in answer[:MAX_LISTED]
            if card.digests.get(tool.name) == schema_digest(tool.input_schema)
        )
        return self._listed

    async def call(self, tool: str, arguments: Mapping[str, Any]) -> ToolAnswer:
        """Call the partner's ``tool``. Never raises for the partner's faults: a refusal
        or failure comes back as an error answer saying why (our engine reads it)."""
        service = self._service
        started = monotonic()
        self.calls += 1
        request = ToolRequest(_request_id(), CALL, tool, dict(arguments))
        try:
            answer = await service.exchange(self.partner_id, self.visit, request)
        except (RemoteError, trio.TooSlowError) as exc:
            reason = getattr(exc, "reason", "timeout")
            answer = Refusal(TOOL_FAILED, reason, str(exc))
        if isinstance(answer, ToolAnswer):
            outcome = TOOL_ERROR if answer.is_error else OK
            size = len(answer.text.encode())
            service.counters.borrowed_ok += 1
        elif isinstance(answer, Refusal):
            outcome = (
                DENIED
                if answer.reason == DENIED
                else f"{REFUSED_PREFIX if answer.code == REFUSED else FAILED_PREFIX}{answer.reason}"
            )
            size = 0
            if answer.code == REFUSED:
                service.counters.borrowed_refused += 1
            else:
                service.counters.borrowed_failed += 1
            answer = ToolAnswer(f"The tool was not run: {answer.reason}.", True)
        else:
            outcome, size = f"{FAILED_PREFIX}bad_answer", 0
            service.counters.borrowed_failed += 1
            answer = ToolAnswer("The tool was not run: bad_answer.", True)
        await service.footprint(
            self.visit,
            self.partner_id,
            self.partner_id,
            service.me,
            tool,
            arguments,
            outcome,
            size,
            started,
        )
        if outcome in (OK, TOOL_ERROR) and not self.private:
            await self._announce(tool)
        return answer

    async def _announce(self, tool: str) -> None:
        body = {"type": "souvenir", "visit": self.visit, "lender": self.partner_id, "tool": tool}
        try:
            await self._service.publish("action", body)
        except RoomverseError as exc:  # a publish failure must not cost the visit its line
            logger.warning("visit %s: the souvenir action was not published: %s", self.visit, exc)


def _request_id() -> int:
    return secrets.randbelow(MAX_REQUEST_ID)
