"""PII redaction: the synthetic corpus is redacted as written and when hex/base64-encoded
in a log line; ordinary chat and our own log vocabulary stay as they were."""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.privacy.log_scrub import ENCODED_PLACEHOLDER, RedactingFilter, scrub_log_text
from node.privacy.pii_checks import iban_ok, luhn_ok
from node.privacy.redact import (
    KINDS,
    contains_pii,
    find_pii,
    redact,
)
from tests.support.pii_corpus import KINDS as CORPUS_KINDS
from tests.support.pii_corpus import PiiItem, leaks, pii_items

ITEMS = pii_items()
CONTEXTS = [
    "{}",
    "My details: {} - thanks!",
    "reach me at {}.",
    "({})",
    "連絡先は{}です",
    "line one\n{}\nline three",
]
PEER = "12D3KooWGzhBvy3oxzaELsL6o27uzUFNrCRq3M1nt9sPRKLvNbkN"

NORMAL_CHAT = [
    "Let's meet at 10:30 on 2024-05-12, okay?",
    "I ran 5 km in 25 minutes and 3 seconds this morning!",
    "On 05.12.2024 at 10:30 we had 3 cats and 2 dogs over.",
    "The year 1999 was great; I was 12 years old.",
    "Room 101 is on floor 3, and the café opens at 8:00pm.",
    "Pi is 3.14159265358979, give or take.",
    "My favourite number is 42, and 1,000,000 is a big one.",
    "The score was 3-2 after 90 minutes, then 4-2.",
    "Spring 2024 was lovely, see you on 12/25/2024!",
    "I baked 24 croissants and 12 baguettes for 7 guests.",
    "Version 2.4.1 of my recipe book has 350 pages.",
    "We walked down the road to the old mill and back.",
    "Chapter 11 was the best, around page 230.",
    "明日の10時に会いましょう。ケーキを3個買いました。",
    "It costs $19.99 or €25 for 2 people.",
    "Call me maybe! My cat is 9 years old.",
]

NORMAL_LOG = [
    f"listening on /ip4/127.0.0.1/tcp/4001/p2p/{PEER}",
    f"dialled /ip4/203.0.113.9/tcp/4001/p2p/{PEER} in 12 ms",
    f"peer {PEER} joined roomverse/1/actions",
    "transcript sha256 cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    "visit 550e8400-e29b-41d4-a716-446655440000 ended after 6 turns",
    "envelope seq=000000000001 ts=1763700000000 kind=visit",
    "bound http on 127.0.0.1:8080 and 192.168.1.5:4001 and [::1]:9000",
    "payload " + b"hello there, how was the bakery today?".hex(),
    "Traceback (most recent call last):\n"
    '  File "/usr/lib/python3.11/site-packages/trio/_core/_run.py", line 2',
    "internationalization Authentication RoomverseError LocalError",
]


def _sentences(item: PiiItem) -> Iterator[str]:
    for context in CONTEXTS:
        yield context.format(item.text)


def _payloads(item: PiiItem) -> Iterator[str]:
    """The item as py-libp2p and friends would put it in a DEBUG line: hex and base64 of a
    msgpack-like payload around it, and of the item alone."""
    framed = b"\x82\xa4body\xda\x00\x10" + item.text.encode() + b"\x00\xff"
    alone = item.text.encode()
    yield framed.hex()
    yield alone.hex()
    yield base64.b64encode(framed).decode()
    yield base64.urlsafe_b64encode(framed).decode()
    yield base64.b64encode(alone).decode()
    yield " ".join(f"{byte:02x}" for byte in framed)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger tree whose one handler carries the filter, as the node installs it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("rv_test_redact")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    try:
        yield root, stream
    finally:
        root.removeHandler(handler)


# --- the corpus ------------------------------------------------------------------------


def test_corpus_is_big_deterministic_and_covers_every_kind() -> None:
    assert len(ITEMS) >= 50
    assert len({item.text for item in ITEMS}) == len(ITEMS)
    assert {item.kind for item in ITEMS} == set(CORPUS_KINDS)
    assert set(CORPUS_KINDS) <= set(KINDS)
    assert pii_items() == ITEMS
    assert pii_items(seed=5) != ITEMS


def test_corpus_numbers_are_valid_where_the_redactor_validates() -> None:
    for item in ITEMS:
        compact = "".join(ch for ch in item.text if ch.isalnum())
        if item.kind == "card":
            assert luhn_ok(compact), item
        if item.kind == "iban":
            assert iban_ok(compact), item


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: f"{item.kind}:{item.text}")
def test_each_item_is_redacted_with_its_kind_in_every_context(item: PiiItem) -> None:
    for sentence in _sentences(item):
        redacted = redact(sentence)
        assert leaks(redacted, [item]) == [], (sentence, redacted)
        assert f"[{item.kind}]" in redacted, (sentence, redacted)
        assert item.kind in contains_pii(sentence)
        assert contains_pii(redacted) == []


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: f"{item.kind}:{item.text}")
def test_each_item_is_caught_encoded_in_a_debug_log_line(
    item: PiiItem, captured: tuple[logging.Logger, io.StringIO]
) -> None:
    root, stream = captured
    child = root.getChild("libp2p.pubsub")
    for payload in _payloads(item):
        child.debug("rpc from %s: %s", PEER, payload)
        child.debug("raw: " + item.text)
    text = stream.getvalue()
    assert leaks(text, [item]) == [], text
    assert text.count(ENCODED_PLACEHOLDER) == 6
    assert text.count(PEER) == 6


def test_all_items_in_one_line_leave_nothing(captured: tuple[logging.Logger, io.StringIO]) -> None:
    root, stream = captured
    joined = " | ".join(item.text for item in ITEMS)
    root.info("everything: %s", joined)
    root.debug("everything hex: %s", joined.encode().hex())
    assert leaks(stream.getvalue(), ITEMS) == []


# --- what must stay --------------------------------------------------------------------


@pytest.mark.parametrize("sentence", NORMAL_CHAT)
def test_normal_chat_is_left_alone(sentence: str) -> None:
    assert contains_pii(sentence) == []
    assert redact(sentence) == sentence


@pytest.mark.parametrize("line", NORMAL_LOG)
def test_our_own_log_vocabulary_stays_readable(line: str) -> None:
    assert scrub_log_text(line) == line


def test_public_identifiers_are_exempt_only_when_they_hold_the_whole_finding() -> None:
    assert redact(f"/ip4/198.51.100.7/tcp/4001/p2p/{PEER}") == (
        f"/ip4/198.51.100.7/tcp/4001/p2p/{PEER}"
    )
    assert redact("my ip is 198.51.100.7 ok") == "my ip is [ip] ok"
    assert redact("/dns4/mina@example.com/tcp/1") == "/dns4/[email]/tcp/1"


def test_private_and_loopback_addresses_stay_public_ones_go() -> None:
    text = "127.0.0.1 10.1.2.3 172.16.5.4 192.168.0.9 169.254.1.1 ::1 fe80::1 8.8.8.8 2001:db8::1"
    assert (
        redact(text)
        == "127.0.0.1 10.1.2.3 172.16.5.4 192.168.0.9 169.254.1.1 ::1 fe80::1 [ip] [ip]"
    )


def test_hex_secrets_are_secrets_in_chat_but_digests_stay_in_logs() -> None:
    digest = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert redact(f"my token {digest}") == "my token [secret]"
    assert scrub_log_text(f"model sha256 {digest}") == f"model sha256 {digest}"


def test_key_value_and_url_credentials_keep_their_names() -> None:
    assert redact("password: hunter22, api_key=abcd1234") == "password: [secret], api_key=[secret]"
    assert redact("https://bob:s3cret@example.com/x") == "https://[secret]@example.com/x"
    assert redact("Authorization: Bearer abc.def-ghi_123") == "Authorization: Bearer [secret]"


def test_invisible_and_fullwidth_tricks_are_seen_through_and_replaced_in_place() -> None:
    assert redact("mail mina\u200b@example.com now") == "mail [email] now"
    assert redact("電話は０９０－１２３４－５６７８です") == "電話は[phone]です"
    assert redact("ｍｉｎａ＠ｅｘａｍｐｌｅ．ｃｏｍ！") == "[email]！"


def test_card_and_iban_need_their_checksums() -> None:
    assert redact("4111 1111 1111 1111") == "[card]"
    assert redact("4111 1111 1111 1112") == "4111 1111 1111 1112"
    assert redact("ts 1763700000000 and 1763700000009") == "ts 1763700000000 and 1763700000009"
    assert redact("DE89 3704 0044 0532 0130 00") == "[iban]"
    # A wrong check digit is no IBAN (its tail may still read as a 0044 phone number).
    assert "iban" not in contains_pii("DE88 3704 0044 0532 0130 00")
    assert redact("GB82 WEST 1234 5698 7654 33") == "GB82 WEST 1234 5698 7654 33"


# --- the filter ------------------------------------------------------------------------


def test_filter_redacts_tracebacks_and_survives_bad_format_args(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    root, stream = captured
    try:
        raise ValueError("card 4111 1111 1111 1111 refused for mina@example.com")
    except ValueError:
        root.exception("failed for %s", "+44 20 7946 0958")
    root.debug("%d items for %s", "not a number", "mina@example.com")
    text = stream.getvalue()
    assert "4111 1111 1111 1111" not in text and "mina@example.com" not in text
    assert "+44 20 7946 0958" not in text
    assert "[card]" in text and "[phone]" in text and "ValueError" in text
    assert "not a number" in text


def test_filter_is_idempotent_across_two_handlers() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s", ("a@example.com",), None)
    first, second = RedactingFilter(), RedactingFilter()
    assert first.filter(record) and second.filter(record)
    assert record.getMessage() == "to [email]"


ADVERSARIAL = {
    "digit groups": "0 12 ",
    "base64-ish": "Ab1+",
    "dotted digits": "1.2.",
    "hyphenated capitals": "A-",
    "french particles": "de",
    "obfuscated e-mail": "a(at)b(dot)",
    "colons": "a:",
    "plus groups": "+1 ",
}


@pytest.mark.parametrize("unit", ADVERSARIAL.values(), ids=list(ADVERSARIAL))
def test_adversarial_input_scans_in_linear_time(unit: str) -> None:
    """40k characters shaped to make a careless pattern backtrack: linear scanning takes
    tens of milliseconds, a quadratic one tens of seconds. Measured in this thread's CPU
    time, which other work on a loaded runner does not inflate as it does wall time."""
    text = "12 rue " + unit * (40_000 // len(unit))
    started = time.thread_time()
    scrub_log_text(text)
    assert time.thread_time() - started < 5.0


# --- laws ------------------------------------------------------------------------------

_fragments = st.one_of(
    st.sampled_from([item.text for item in ITEMS]),
    st.sampled_from(NORMAL_CHAT),
    st.text(alphabet="0123456789 .-+()@:/abcXYZ\n", max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_fragments, max_size=6).map(" ".join))
def test_redact_is_idempotent_and_leaves_nothing_to_find(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
    assert find_pii(once) == []


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_scrub_never_raises_and_is_idempotent_on_any_text(text: str) -> None:
    once = scrub_log_text(text)
    assert scrub_log_text(once) == once
