"""Lending over ``/roomverse/mcp/1.0.0`` between hosts in memory, with real stores and the
real ``mcp-server-time`` plugin (sandboxed): a call in an open visit runs and leaves a
footprint on both sides; every call outside the capability is refused with its reason,
never runs, and leaves the lender serving the next one.
"""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from keys import PROTO_MCP, Identity, seal
from keys.errors import RemoteError
from node.clock import now_ms
from node.config.settings import SouvenirSettings
from node.events import EventLog
from node.souvenirs import open_plugins
from node.souvenirs.approvals import Approvals
from node.souvenirs.capability import Quotas
from node.souvenirs.service import PartnerCard, SouvenirService
from node.souvenirs.wire import (
    CALL,
    MAX_ARGUMENT_BYTES,
    MCP_BODIES,
    REFUSED,
    TOOL_FAILED,
    Refusal,
    ToolAnswer,
    ToolRequest,
    encode_request,
)
from node.storage.footprints import Footprints
from node.storage.store import Store
from node.testing.memory_host import MemoryHost, MemoryNetwork
from node.wire.frames import FrameReader, frame
from registry_crdt import schema_digest
from tests.support.plugin_servers import needs_sandbox

pytestmark = needs_sandbox

VISIT = "ab" * 16
TIME = SouvenirSettings(
    name="time",
    command=("mcp-server-time", "--local-timezone", "Asia/Tokyo"),
    tools=(("get_current_time", "lend"),),
)


@dataclass
class Side:
    name: str
    identity: Identity
    host: MemoryHost
    service: SouvenirService
    footprints: Footprints
    rejected: list[str]

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id_str


def sealer(identity: Identity) -> Any:
    numbers = itertools.count(1)

    async def seal_next(kind: str, channel: str, body: Mapping[str, Any]) -> bytes:
        return seal(
            identity,
            kind=kind,
            channel=channel,
            seq=next(numbers),
            ts_ms=now_ms(),
            body=body,
            bodies=MCP_BODIES,
        )

    return seal_next


@asynccontextmanager
async def side(
    stack: AsyncExitStack,
    network: MemoryNetwork,
    tmp_path: Path,
    name: str,
    cards: dict[str, PartnerCard],
    quotas: Quotas | None = None,
) -> AsyncIterator[Side]:
    identity = Identity.generate()
    store = Store(tmp_path / f"{name}.db")
    stack.callback(store.close)
    footprints = Footprints(store.db, lambda text: text)
    rejected: list[str] = []

    async def publish(kind: str, body: Mapping[str, Any]) -> None:
        return None

    async with network.open_host(identity) as host:
        service = SouvenirService(
            me=identity.peer_id_str,
            host=host,
            seal=sealer(identity),
            publish=publish,
            footprints=footprints,
            approvals=Approvals(events=None, timeout_s=5),
            events=EventLog("json", io.StringIO()),
            reject=lambda peer, channel, error: rejected.append(error.reason),
            partner_card=cards.get,
            quotas=quotas,
        )
        host.set_stream_handler(PROTO_MCP, service.serve)
        yield Side(name, identity, host, service, footprints, rejected)


@asynccontextmanager
async def trio_of_sides(
    tmp_path: Path, quotas: Quotas | None = None
) -> AsyncIterator[tuple[Side, Side, Side]]:
    """Kai lends the time plugin; Mina and Rex are connected to Kai."""
    network = MemoryNetwork()
    cards: dict[str, PartnerCard] = {}
    async with AsyncExitStack() as stack:
        kai = await stack.enter_async_context(side(stack, network, tmp_path, "kai", cards, quotas))
        mina = await stack.enter_async_context(side(stack, network, tmp_path, "mina", cards))
        rex = await stack.enter_async_context(side(stack, network, tmp_path, "rex", cards))
        plugins = await stack.enter_async_context(
            open_plugins([TIME], tmp_path / "kai-data", events=None)
        )
        kai.service.lender = plugins
        lent = plugins.lent()
        cards[kai.peer_id] = PartnerCard(
            "Kai", {t.name: schema_digest(t.input_schema) for t in lent}
        )
        cards[mina.peer_id] = PartnerCard("Mina", {})
        cards[rex.peer_id] = PartnerCard("Rex", {})
        for other in (mina, rex):
            await other.host.dial(f"{kai.host.listen_addrs()[0]}/p2p/{kai.peer_id}")
        yield kai, mina, rex


REQUEST_IDS = itertools.count(100)


async def call(caller: Side, lender: Side, tool: str, arguments: dict[str, Any]) -> Any:
    request = ToolRequest(next(REQUEST_IDS), CALL, tool, arguments)
    return await caller.service.exchange(lender.peer_id, VISIT, request)


async def test_a_call_in_the_open_visit_runs_and_both_sides_keep_a_footprint(
    tmp_path: Path,
) -> None:
    async with trio_of_sides(tmp_path) as (kai, mina, _):
        async with (
            kai.service.visit(VISIT, mina.peer_id, "Mina", private=False),
            mina.service.visit(VISIT, kai.peer_id, "Kai", private=False) as borrowed,
        ):
            listing = await borrowed.listing()
            assert [tool.name for tool in listing] == ["get_current_time"]
            answer = await borrowed.call("get_current_time", {"timezone": "Asia/Tokyo"})
        assert isinstance(answer, ToolAnswer) and not answer.is_error
        assert json.loads(answer.text)["timezone"] == "Asia/Tokyo"
        for who in (kai, mina):
            [footprint] = await who.footprints.for_visit(VISIT)
            assert (footprint.caller_id, footprint.lender_id) == (mina.peer_id, kai.peer_id)
            assert footprint.outcome == "ok" and footprint.result_bytes == len(answer.text)


async def test_calls_outside_the_capability_are_refused_with_their_reason(
    tmp_path: Path,
) -> None:
    async with trio_of_sides(tmp_path, Quotas(per_visit=1, per_hour=10)) as (kai, mina, rex):
        now_args = {"timezone": "Asia/Tokyo"}
        # No visit open: nothing runs.
        assert await call(mina, kai, "get_current_time", now_args) == Refusal(
            REFUSED, "no_visit", "no open visit has this id"
        )
        async with kai.service.visit(VISIT, mina.peer_id, "Mina", private=False):
            # A third peer naming Mina's visit.
            refused = await call(rex, kai, "get_current_time", now_args)
            assert isinstance(refused, Refusal) and refused.reason == "not_partner"
            # A tool that is not lent (the server has it; the owner did not list it).
            refused = await call(mina, kai, "convert_time", {})
            assert isinstance(refused, Refusal) and refused.reason == "not_lent"
            # Arguments over the cap never reach the capability.
            big = {"timezone": "x" * MAX_ARGUMENT_BYTES}
            refused = await call(mina, kai, "get_current_time", big)
            assert isinstance(refused, Refusal) and refused.reason == "bad_request"
            # A result over the lender's cap.
            kai.service.max_result_bytes = 10
            refused = await call(mina, kai, "get_current_time", now_args)
            assert refused == Refusal(TOOL_FAILED, "too_large", "the tool could not answer")
            kai.service.max_result_bytes = 32 * 1024
            # The quota of this visit was spent by the call that ran (too large or not).
            refused = await call(mina, kai, "get_current_time", now_args)
            assert isinstance(refused, Refusal) and refused.reason == "quota_visit"
        # After farewell.
        refused = await call(mina, kai, "get_current_time", now_args)
        assert isinstance(refused, Refusal) and refused.reason == "no_visit"
        outcomes = [f.outcome for f in reversed(await kai.footprints.recent())]
        assert outcomes == [
            "refused:no_visit",
            "refused:not_partner",
            "refused:not_lent",
            "refused:bad_request",
            "failed:too_large",
            "refused:quota_visit",
            "refused:no_visit",
        ]


async def forged_exchange(sender: Side, lender: Side, signer: Identity, tamper: bool) -> bytes:
    """Send ``signer``'s envelope over ``sender``'s stream; what comes back (b"" if the
    lender closed the stream without answering)."""
    body = {"visit": VISIT, "rpc": encode_request(ToolRequest(1, CALL, "get_current_time"))}
    raw = await sealer(signer)("mcp", PROTO_MCP, body)
    if tamper:  # the same length, another tool: the signature no longer matches
        raw = raw.replace(b"get_current_time", b"get_current_tiny")
    stream = await sender.host.open_stream(lender.peer_id, PROTO_MCP, timeout=5)
    await stream.send_all(frame(raw))
    with trio.fail_after(10):
        try:
            answer = await FrameReader(stream, 1 << 16).read_frame()
        except RemoteError:
            answer = None
    await stream.aclose()
    return answer or b""


async def test_a_forged_envelope_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    async with (
        trio_of_sides(tmp_path) as (kai, mina, rex),
        kai.service.visit(VISIT, mina.peer_id, "Mina", private=False),
    ):
        # Rex sends an envelope Mina signed (a copy, or a key it stole) on its own stream.
        assert await forged_exchange(rex, kai, mina.identity, tamper=False) == b""
        # Mina's own envelope, altered after signing.
        assert await forged_exchange(mina, kai, mina.identity, tamper=True) == b""
        assert kai.rejected == ["sender_mismatch", "bad_signature"]
        assert await kai.footprints.recent() == []
        # The lender still serves the partner.
        answer = await call(mina, kai, "get_current_time", {"timezone": "UTC"})
        assert isinstance(answer, ToolAnswer) and "UTC" in answer.text
