"""The catch-up exchange's frames: what a request and an answer may hold."""

from __future__ import annotations

import msgpack
import pytest

from keys import TOPIC_ACTIONS, TOPIC_CONTEXTS, TOPIC_DIRECTORY
from node.catch_up.wire import (
    MAX_HELD,
    MAX_HELD_SENDERS,
    MAX_REQUEST_BYTES,
    CatchUpProtocolError,
    decode_answer,
    decode_request,
    encode_answer,
    encode_request,
)

ANN = b"\x00\x24" + b"a" * 36
BEN = b"\x00\x24" + b"b" * 36


def pack(value: object) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def test_a_request_says_which_envelopes_we_hold_by_sender() -> None:
    held = decode_request(encode_request([(ANN, 7), (BEN, 3), (ANN, 5)]))
    assert (ANN, 7) in held and (ANN, 5) in held and (BEN, 3) in held
    assert (ANN, 6) not in held and (BEN, 7) not in held
    assert len(held) == 3


def test_a_request_lists_at_most_the_newest_cap_and_stays_decodable() -> None:
    many = [(ANN, seq) for seq in range(MAX_HELD + 50, 0, -1)]  # newest first
    held = decode_request(encode_request(many))
    assert len(held) == MAX_HELD
    assert (ANN, MAX_HELD + 50) in held and (ANN, 1) not in held
    senders = [(bytes([1, 36]) + n.to_bytes(36, "big"), 1) for n in range(MAX_HELD_SENDERS + 9)]
    assert len(decode_request(encode_request(senders)).seqs) == MAX_HELD_SENDERS


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xc1", "malformed"),
        (pack([1, 2]), "map of exactly"),
        (pack({"v": 1}), "map of exactly"),
        (pack({"v": 2, "held": []}), "unknown catch-up version"),
        (pack({"v": 1, "held": {}}), "list of at most"),
        (pack({"v": 1, "held": [[ANN]]}), "each held item"),
        (pack({"v": 1, "held": [["text", [1]]]}), "1-64 bytes"),
        (pack({"v": 1, "held": [[b"", [1]]]}), "1-64 bytes"),
        (pack({"v": 1, "held": [[ANN, [1]], [ANN, [2]]]}), "listed twice"),
        (pack({"v": 1, "held": [[ANN, [-1]]]}), "integers"),
        (pack({"v": 1, "held": [[ANN, [True]]]}), "integers"),
        (pack({"v": 1, "held": [[ANN, ["1"]]]}), "integers"),
        (pack({"v": 1, "held": [[ANN, list(range(MAX_HELD + 1))]]}), "more than"),
        (pack({"v": 1, "held": [[ANN, [1]]] * (MAX_HELD_SENDERS + 1)}), "at most"),
        (b"\x00" * (MAX_REQUEST_BYTES + 1), "cap"),
    ],
)
def test_a_bad_request_is_a_typed_error(data: bytes, why: str) -> None:
    with pytest.raises(CatchUpProtocolError, match=why):
        decode_request(data)


def test_an_answer_carries_an_envelope_and_its_public_channel() -> None:
    for channel in (TOPIC_ACTIONS, TOPIC_CONTEXTS):
        assert decode_answer(encode_answer(channel, b"raw")) == (channel, b"raw")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xc1", "malformed"),
        (pack({"channel": TOPIC_ACTIONS}), r"\[channel, envelope\]"),
        (pack([TOPIC_DIRECTORY, b"raw"]), "does not carry"),
        (pack(["/roomverse/visit/1.0.0", b"raw"]), "does not carry"),
        (pack([TOPIC_ACTIONS, "raw"]), "bytes"),
    ],
)
def test_a_bad_answer_frame_is_a_typed_error(data: bytes, why: str) -> None:
    with pytest.raises(CatchUpProtocolError, match=why):
        decode_answer(data)
