"""Souvenirs on a running character: lending our tools, and borrowing the partner's.

Lending (:meth:`SouvenirService.serve`, the ``/roomverse/mcp/1.0.0`` handler): one
request a stream, verified as a signed ``mcp`` envelope from the stream's own peer, then
checked against the visit's capability (:mod:`node.souvenirs.capability`); a tool lent
with ``ask`` waits for the owner (:mod:`node.souvenirs.approvals`); the plugin runs it
under a timeout and a result cap, and the answer goes back signed. Every call, refused
or not, leaves a footprint (:mod:`node.storage.footprints`) and an event; a peer's
malformed or forged request is refused with a reason and logged, and nothing else
happens.

Borrowing (:class:`~node.souvenirs.borrowing.VisitSouvenirs`, one per visit): what the
partner lends, listed once from the partner (and kept only where its schema is the one
its name card announced), and the calls our engine makes, each a footprint on our side
too and, in a public visit, a public ``souvenir`` action (who used whose tool; never
arguments or results).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

import trio

from keys import PROTO_MCP, EnvelopeError, Verified, peer_id_from_str, verify
from keys.errors import RemoteError
from keys.kinds import KIND_MCP
from node._libp2p.interface import Host, Stream
from node.clock import monotonic, now_ms
from node.events import EventLog
from node.souvenirs.approvals import Approvals
from node.souvenirs.borrowing import VisitSouvenirs
from node.souvenirs.capability import Lending, Quotas
from node.souvenirs.lend_policy import LentTool, ToolOutcome
from node.souvenirs.plugin_errors import PluginError
from node.souvenirs.wire import (
    INVALID_REQUEST,
    LIST,
    MAX_FRAME,
    MAX_RESULT_BYTES,
    MCP_BODIES,
    REFUSED,
    TOOL_FAILED,
    McpProtocolError,
    Refusal,
    ToolAnswer,
    ToolListing,
    ToolRequest,
    decode_answer,
    decode_request,
    encode_answer,
    encode_listing,
    encode_refusal,
    encode_request,
)
from node.storage.footprints import (
    DENIED,
    FAILED_PREFIX,
    OK,
    REFUSED_PREFIX,
    TOOL_ERROR,
    Footprint,
    Footprints,
    arguments_digest,
)
from node.wire.frames import FrameReader, StreamFailed, frame
from node.wire.inbound import InboundLimit

logger = logging.getLogger(__name__)

CALL_TIMEOUT_S: Final = 20.0
"""One tool call on the lender's plugin, from start to answer."""
STREAM_OPEN_TIMEOUT_S: Final = 5.0
EXCHANGE_SLACK_S: Final = 5.0
"""Beyond the call itself: the frames, their signatures, the network."""
MAX_INBOUND: Final = 4
"""Calls served at once, all peers together (one per peer)."""


class Lender(Protocol):
    """The plugins' side that serves lent tools (:class:`node.souvenirs.plugins.Plugins`)."""

    def lent(self) -> tuple[LentTool, ...]: ...
    def find(self, name: str) -> LentTool | None: ...
    async def call(
        self, name: str, arguments: dict[str, Any], *, timeout_s: float, max_result_bytes: int
    ) -> ToolOutcome: ...
    def describe(self) -> list[dict[str, Any]]: ...


Seal = Callable[[str, str, Mapping[str, Any]], Awaitable[bytes]]
Publish = Callable[[str, Mapping[str, Any]], Awaitable[Any]]
Reject = Callable[[bytes, str, RemoteError], None]


@dataclass
class SouvenirCounters:
    listed_to_partners: int = 0
    """``tools/list`` answered: a partner's engine may be offered what we lend."""
    listed_from_partners: int = 0
    """Partners' lent tools listed for our engine."""
    lent_ok: int = 0
    lent_refused: int = 0
    lent_failed: int = 0
    borrowed_ok: int = 0
    borrowed_refused: int = 0
    borrowed_failed: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PartnerCard:
    """What the partner's name card says it lends: souvenir name → schema digest."""

    name: str
    digests: Mapping[str, str]


class SouvenirService:
    def __init__(
        self,
        *,
        me: str,
        host: Host,
        seal: Seal,
        publish: Publish,
        footprints: Footprints,
        approvals: Approvals,
        events: EventLog,
        reject: Reject,
        partner_card: Callable[[str], PartnerCard | None],
        quotas: Quotas | None = None,
        call_timeout_s: float = CALL_TIMEOUT_S,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.me = me
        self.host = host
        self._seal = seal
        self.publish = publish
        self.footprints = footprints
        self.approvals = approvals
        self.events = events
        self._reject = reject
        self.partner_card = partner_card
        self.lending = Lending(quotas)
        self.call_timeout_s = call_timeout_s
        self.max_result_bytes = MAX_RESULT_BYTES
        """A result longer than this (bytes of text) is refused as ``too_large``."""
        self._clock_ms = clock_ms
        self.lender: Lender | None = None
        """Our plugins, once they are up (None: we lend nothing)."""
        self._inbound = InboundLimit(MAX_INBOUND)
        self.counters = SouvenirCounters()

    # -- lending --------------------------------------------------------------------

    def listings(self) -> tuple[ToolListing, ...]:
        """What we lend now, as ``tools/list`` answers it."""
        if self.lender is None:
            return ()
        return tuple(
            ToolListing(t.name, t.description, t.input_schema, t.read_only)
            for t in self.lender.lent()
        )

    async def serve(self, stream: Stream) -> None:
        """The ``/roomverse/mcp/1.0.0`` handler: one request, one answer."""
        peer = stream.peer_id
        with self._inbound.admit(peer) as admitted:
            if not admitted:
                await stream.reset()
                return
            try:
                with trio.fail_after(self._exchange_timeout_s() + self.approvals.timeout_s):
                    envelope = await self._receive(stream, peer, "before asking")
                    visit: str = envelope.body["visit"]
                    rpc = await self._answer(peer, visit, envelope.body["rpc"])
                    answer = await self._seal(KIND_MCP, PROTO_MCP, {"visit": visit, "rpc": rpc})
                    await stream.send_all(frame(answer))
            except (RemoteError, trio.TooSlowError) as exc:
                self._refused_stream(peer, exc)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await stream.aclose()

    async def _answer(self, peer: str, visit: str, rpc: str) -> str:
        """The JSON-RPC answer to one verified request from ``peer``."""
        try:
            request = decode_request(rpc)
        except McpProtocolError as exc:
            await self._lent(visit, peer, "", {}, f"{REFUSED_PREFIX}bad_request", 0, monotonic())
            self._reject(peer_id_from_str(peer), PROTO_MCP, exc)
            return encode_refusal(None, Refusal(INVALID_REQUEST, "bad_request", str(exc)))
        if request.method == LIST:
            refusal = self.lending.check_list(visit, peer, request.id)
            if refusal is not None:
                return encode_refusal(request.id, Refusal(REFUSED, refusal, _REFUSALS[refusal]))
            self.counters.listed_to_partners += 1
            return encode_listing(request.id, self.listings())
        return await self._call(peer, visit, request)

    async def _call(self, peer: str, visit: str, request: ToolRequest) -> str:
        started = monotonic()
        tool = self.lender.find(request.tool) if self.lender is not None else None
        refusal = self.lending.check_call(
            visit, peer, request.id, lent=tool is not None, now_ms=self._clock_ms()
        )
        if refusal is None and tool is not None and tool.ask:
            approved = await self.approvals.ask(
                visit=visit,
                caller_id=peer,
                caller_name=self._name_of(peer),
                tool=tool.name,
                arguments=request.arguments,
            )
            if not approved:
                refusal = DENIED
            elif not self.lending.is_open(visit, peer):
                refusal = "no_visit"  # the visit ended while the owner was deciding
        if refusal is not None or tool is None or self.lender is None:
            reason = refusal or "not_lent"
            outcome = DENIED if reason == DENIED else f"{REFUSED_PREFIX}{reason}"
            await self._lent(visit, peer, request.tool, request.arguments, outcome, 0, started)
            return encode_refusal(request.id, Refusal(REFUSED, reason, _REFUSALS[reason]))
        try:
            result = await self.lender.call(
                tool.name,
                dict(request.arguments),
                timeout_s=self.call_timeout_s,
                max_result_bytes=self.max_result_bytes,
            )
        except PluginError as exc:
            outcome = f"{FAILED_PREFIX}{exc.reason}"
            await self._lent(visit, peer, tool.name, request.arguments, outcome, 0, started)
            return encode_refusal(
                request.id, Refusal(TOOL_FAILED, exc.reason, "the tool could not answer")
            )
        outcome = TOOL_ERROR if result.is_error else OK
        await self._lent(visit, peer, tool.name, request.arguments, outcome, result.size, started)
        return encode_answer(request.id, ToolAnswer(result.text, result.is_error))

    async def _lent(
        self,
        visit: str,
        peer: str,
        tool: str,
        arguments: Mapping[str, Any],
        outcome: str,
        size: int,
        started: float,
    ) -> None:
        if outcome in (OK, TOOL_ERROR):
            self.counters.lent_ok += 1
        elif outcome.startswith(FAILED_PREFIX):
            self.counters.lent_failed += 1
        else:
            self.counters.lent_refused += 1
        await self.footprint(visit, peer, self.me, peer, tool, arguments, outcome, size, started)

    def _refused_stream(self, peer: str, exc: Exception) -> None:
        self.counters.lent_refused += 1
        if isinstance(exc, EnvelopeError):
            self._reject(peer_id_from_str(peer), PROTO_MCP, exc)
        else:
            logger.info("souvenir request from %s failed: %s", peer, exc)

    # -- borrowing ------------------------------------------------------------------

    @asynccontextmanager
    async def visit(
        self, visit: str, partner_id: str, partner_name: str, private: bool
    ) -> AsyncIterator[VisitSouvenirs]:
        """Lend to ``partner_id`` for the block (one visit), and borrow from it."""
        self.lending.open(visit, partner_id)
        try:
            yield VisitSouvenirs(self, visit, partner_id, partner_name, private)
        finally:
            self.lending.close(visit)

    async def exchange(self, partner_id: str, visit: str, request: ToolRequest) -> Any:
        """Send one request to ``partner_id``; its answer (:data:`wire.Answer`).

        Raises :class:`RemoteError` (:class:`StreamFailed`, an envelope error,
        :class:`McpProtocolError`) or :class:`trio.TooSlowError`."""
        stream = await self.host.open_stream(partner_id, PROTO_MCP, timeout=STREAM_OPEN_TIMEOUT_S)
        try:
            with trio.fail_after(self._exchange_timeout_s() + self.approvals.timeout_s):
                raw = await self._seal(
                    KIND_MCP, PROTO_MCP, {"visit": visit, "rpc": encode_request(request)}
                )
                await stream.send_all(frame(raw))
                envelope = await self._receive(stream, partner_id, "without answering")
                if envelope.body["visit"] != visit:
                    raise McpProtocolError("the answer names another visit")
                return decode_answer(envelope.body["rpc"], request)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await stream.aclose()

    async def _receive(self, stream: Stream, peer: str, closed: str) -> Verified:
        """The one ``mcp`` envelope ``peer`` sends on ``stream``, verified (signed by the
        stream's own peer, in the timestamp window, an ``mcp`` body)."""
        raw = await FrameReader(stream, MAX_FRAME).read_frame()
        if raw is None:
            raise StreamFailed(f"{peer} closed the stream {closed}")
        return verify(
            raw,
            channel=PROTO_MCP,
            now_ms=self._clock_ms(),
            transport_peer=peer_id_from_str(peer),
            bodies=MCP_BODIES,
        )

    async def footprint(
        self,
        visit: str,
        partner: str,
        lender: str,
        caller: str,
        tool: str,
        arguments: Mapping[str, Any],
        outcome: str,
        size: int,
        started: float,
    ) -> None:
        duration_ms = max(0, round((monotonic() - started) * 1000))
        footprint = Footprint(
            visit_id=visit,
            caller_id=caller,
            lender_id=lender,
            partner_name=self._name_of(partner),
            tool=tool,
            arguments_digest=arguments_digest(arguments),
            result_bytes=size,
            duration_ms=duration_ms,
            outcome=outcome,
            ts_ms=self._clock_ms(),
        )
        await self.footprints.record(footprint)
        self.events.emit(
            "souvenir_call",
            visit=visit,
            side="lent" if lender == self.me else "borrowed",
            partner_name=footprint.partner_name,
            caller=caller,
            lender=lender,
            tool=tool,
            outcome=outcome,
            duration_ms=duration_ms,
            result_bytes=size,
        )

    def _name_of(self, peer: str) -> str:
        card = self.partner_card(peer)
        return card.name if card is not None else peer[-8:]

    def _exchange_timeout_s(self) -> float:
        return self.call_timeout_s + EXCHANGE_SLACK_S

    def describe(self) -> dict[str, Any]:
        return {
            "plugins": [] if self.lender is None else self.lender.describe(),
            "lent": [t.name for t in self.listings()],
            "open_visits": self.lending.open_visits(),
            "pending_approvals": len(self.approvals.pending()),
            "counters": self.counters.to_json(),
        }


_REFUSALS: Final = {
    "no_visit": "no open visit has this id",
    "not_partner": "this visit is with someone else",
    "replayed": "this request id was used already",
    "not_lent": "that tool is not lent",
    "quota_visit": "the calls quota of this visit is spent",
    "quota_hour": "the hourly calls quota is spent",
    DENIED: "the owner did not approve this call",
}
