"""The receipt that closes a visit: the host signs, the guest checks and countersigns,
and the countersigned receipt verifies on its own."""

from __future__ import annotations

import pytest

from keys import PROTO_VISIT, Verified, verify
from node.clock import now_ms
from node.storage.memory_rows import Role
from node.visits.conversation import Conversation
from node.visits.messages import VISIT_BODIES, Receipt
from node.visits.receipts import (
    BadReceipt,
    check_guest_receipt,
    check_host_receipt,
    receipt,
    verify_receipt,
)
from tests.support.conversations import GUEST, HOST, say, sealed, talking

NOW = now_ms()


def finished(role: Role, texts: tuple[str, ...] = ("welcome", "nice tea")) -> Conversation:
    conv = talking(role)
    say(conv, texts)
    return conv


def verified(raw: bytes) -> Verified:
    return verify(raw, channel=PROTO_VISIT, now_ms=NOW, bodies=VISIT_BODIES)


def test_receipt_is_countersigned_and_verifies_on_its_own() -> None:
    host_side, guest_side = finished("host"), finished("guest")
    host_raw = sealed(HOST, receipt(host_side, 9_000), NOW)
    check_host_receipt(guest_side, verified(host_raw))
    guest_raw = sealed(GUEST, receipt(guest_side, 9_100, host_receipt=host_raw), NOW)
    checked_by_host = check_guest_receipt(host_side, verified(guest_raw), host_raw)
    assert checked_by_host.transcript == host_side.transcript_hash()
    checked = verify_receipt(guest_raw)
    assert (checked.host, checked.guest, checked.turns) == (HOST.peer_id, GUEST.peer_id, 3)
    assert checked.transcript == host_side.transcript_hash()
    assert checked.duration_ms == 8_000


def test_receipts_that_do_not_match_are_refused() -> None:
    host_side = finished("host")
    host_raw = sealed(HOST, receipt(host_side, 9_000), NOW)
    with pytest.raises(BadReceipt, match="transcript differs"):
        check_host_receipt(finished("guest", ("a different welcome",)), verified(host_raw))
    forged = sealed(GUEST, receipt(host_side, 9_000), NOW)
    with pytest.raises(BadReceipt, match="wrong side"):
        check_host_receipt(finished("guest"), verified(forged))
    other = sealed(HOST, receipt(host_side, 9_999), NOW)
    countersigned_other = sealed(GUEST, receipt(host_side, 9_100, host_receipt=other), NOW)
    with pytest.raises(BadReceipt, match="another receipt"):
        check_guest_receipt(host_side, verified(countersigned_other), host_raw)
    another_visit = Receipt("ab" * 16, host_side.transcript_hash(), 3, 8_000)
    with pytest.raises(BadReceipt, match="another visit"):
        check_host_receipt(finished("guest"), verified(sealed(HOST, another_visit, NOW)))
    # One signer twice is not "signed by both".
    with pytest.raises(BadReceipt):
        verify_receipt(sealed(HOST, receipt(host_side, 9_100, host_receipt=host_raw), NOW))
    with pytest.raises(BadReceipt):
        verify_receipt(b"\x00not an envelope")
