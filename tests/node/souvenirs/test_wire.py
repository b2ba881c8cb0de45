"""The souvenir exchange's messages: MCP JSON-RPC inside signed ``mcp`` envelopes."""

from __future__ import annotations

import json

import pytest

from keys import PROTO_MCP, Identity, SchemaError, seal, verify
from node.souvenirs.wire import (
    CALL,
    LIST,
    MAX_ARGUMENT_BYTES,
    MAX_RESULT_BYTES,
    MCP_BODIES,
    REFUSED,
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
    validate_mcp_body,
)

VISIT = "ab" * 16


def test_a_call_round_trips_as_mcp_json_rpc() -> None:
    request = ToolRequest(7, CALL, "get_current_time", {"timezone": "Asia/Tokyo", "n": 1.5})
    rpc = encode_request(request)
    assert json.loads(rpc) == {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "get_current_time", "arguments": {"timezone": "Asia/Tokyo", "n": 1.5}},
    }
    assert decode_request(rpc) == request
    answer = decode_answer(encode_answer(7, ToolAnswer('{"time": "12:00"}', False)), request)
    assert answer == ToolAnswer('{"time": "12:00"}', False)


def test_a_listing_round_trips_with_schemas() -> None:
    request = ToolRequest(3, LIST)
    tools = (ToolListing("t", "tells the time", {"type": "object", "properties": {}}, True),)
    assert decode_request(encode_request(request)) == request
    assert decode_answer(encode_listing(3, tools), request) == tools


def test_a_refusal_carries_its_reason() -> None:
    request = ToolRequest(4, CALL, "t")
    rpc = encode_refusal(4, Refusal(REFUSED, "not_lent", "that tool is not lent"))
    assert decode_answer(rpc, request) == Refusal(REFUSED, "not_lent", "that tool is not lent")


@pytest.mark.parametrize(
    "rpc",
    [
        "not json",
        "[]",
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/call"}',  # no params
        '{"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {}}',
        '{"jsonrpc": "2.0", "id": -1, "method": "tools/list"}',
        '{"jsonrpc": "2.0", "id": "x", "method": "tools/list"}',
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 5}}',
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "t", "arguments": {"a": "x" * MAX_ARGUMENT_BYTES}},
            }
        ),
        "[" * 100_000,
    ],
)
def test_anything_but_a_list_or_call_request_is_refused(rpc: str) -> None:
    with pytest.raises(McpProtocolError):
        decode_request(rpc)


def test_an_answer_to_another_request_or_oversized_is_refused() -> None:
    request = ToolRequest(1, CALL, "t")
    with pytest.raises(McpProtocolError):
        decode_answer(encode_answer(2, ToolAnswer("x", False)), request)
    with pytest.raises(McpProtocolError):
        decode_answer(encode_answer(1, ToolAnswer("x" * (MAX_RESULT_BYTES + 1), False)), request)
    with pytest.raises(McpProtocolError):
        decode_answer(encode_listing(1, ()), request)  # a listing is not a call's result


@pytest.mark.parametrize(
    "body",
    [
        {"visit": VISIT},
        {"visit": VISIT, "rpc": "{}", "extra": 1},
        {"visit": "AB" * 16, "rpc": "{}"},
        {"visit": VISIT, "rpc": b"{}"},
        {"visit": VISIT, "rpc": "x" * 60_000},
    ],
)
def test_the_envelope_body_is_checked(body: dict[str, object]) -> None:
    with pytest.raises(SchemaError):
        validate_mcp_body(body)


def test_an_mcp_envelope_is_sealed_and_verified_on_the_mcp_protocol_only() -> None:
    me = Identity.generate()
    body = {"visit": VISIT, "rpc": encode_request(ToolRequest(1, LIST))}
    raw = seal(me, kind="mcp", channel=PROTO_MCP, seq=1, ts_ms=1000, body=body, bodies=MCP_BODIES)
    envelope = verify(raw, channel=PROTO_MCP, now_ms=1000, bodies=MCP_BODIES)
    assert envelope.body == body and envelope.sender == me.peer_id
