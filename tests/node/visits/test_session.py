"""One visit between two :class:`VisitSession` s over an in-memory stream pair: real
signed envelopes and frames, real SQLite memory with redaction, trio's fake clock for the
timeouts. The voice is a scripted stand-in (the engine path is tested with real HTTP in
test_visits.py); what is tested here is the session: silence, disappearance, busy
hosts, reused ids, hostile budgets, privacy, and what reaches the database and the logs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
import trio.testing

from keys import PROTO_VISIT, Identity, seal
from node.clock import now_ms
from node.privacy.log_scrub import RedactingFilter
from node.visits.contracts import Partner
from node.visits.conversation import VisitProtocolError
from node.visits.messages import VISIT_BODIES, Farewell, Knock, Say, Welcome
from tests.support.pii_corpus import leaks, pii_items
from tests.support.visit_sessions import Side, channels, sides, visit


async def test_a_full_visit_stores_the_same_transcript_on_both_sides(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host") as (guest, host):
        ours, theirs = await visit(guest, host, turns=5)
        assert theirs is not None
        assert (ours.outcome, theirs.outcome) == ("completed", "completed")
        assert ours.transcript == theirs.transcript and ours.transcript is not None
        assert [line.text for line in ours.lines][:3] == [
            "Guest says hello",
            "Host line 1",
            "Guest line 2",
        ]
        # Five lines: the host spoke last, so the guest's turn came with the budget spent.
        assert len(ours.lines) == 5
        (relation,) = await host.memory.relations()
        assert relation.visit_count == 1


async def test_odd_budget_the_host_says_farewell_on_its_turn(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host", max_turns=4) as (guest, host):
        ours, theirs = await visit(guest, host)
        assert theirs is not None and len(ours.lines) == 4
        assert (ours.outcome, theirs.outcome) == ("completed", "completed")


@pytest.fixture
def idle_jump_clock() -> trio.testing.MockClock:
    """Fake time that jumps ahead only once everything has been idle for 0.3 s of real
    time: SQLite runs on a real thread, and an instant jump would fire timeouts while a
    write is still in progress."""
    return trio.testing.MockClock(autojump_threshold=0.3)


async def test_a_silent_host_ends_the_visit_after_the_turn_timeout(
    tmp_path: Path, idle_jump_clock: trio.testing.MockClock
) -> None:
    async with sides(tmp_path, "Guest", "Host") as (guest, host):
        to_host, to_guest = channels(guest, host)
        async with trio.open_nursery() as nursery:

            async def welcome_then_silence() -> None:
                _, knock = await to_guest.receive(10)
                assert isinstance(knock, Knock)
                await to_guest.send(Welcome(knock.visit, 8, 600_000, False))
                await trio.sleep_forever()

            nursery.start_soon(welcome_then_silence)
            started = trio.current_time()
            result = await guest.session.guest(to_host, host.partner(), "hello there")
            waited = trio.current_time() - started
            nursery.cancel_scope.cancel()
        assert result.outcome == "partner_vanished"
        assert 120 <= waited < 130
        (row,) = await guest.memory.visits()
        assert row.outcome == "partner_vanished"


async def test_a_guest_that_leaves_mid_visit_is_recorded_as_vanished(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host") as (guest, host):
        to_host, to_guest = channels(guest, host)
        async with trio.open_nursery() as nursery:

            async def knock_then_leave() -> None:
                raw_knock = Knock("ab" * 16, "Guest", bytes(32), "hello", "", False, 6)
                await to_host.send(raw_knock)
                await to_host.receive(10)  # welcome
                await to_host.receive(10)  # the host's first line
                await to_host.close()

            nursery.start_soon(knock_then_leave)
            result = await host.session.host(to_guest, host.describe)
        assert result is not None and result.outcome == "partner_vanished"
        (row,) = await host.memory.visits()
        assert (row.outcome, row.turns) == ("partner_vanished", 2)
        assert host.rejected == []  # leaving is not an offence


async def test_two_guests_at_once_one_is_told_busy(tmp_path: Path) -> None:
    async with sides(tmp_path, "Ann", "Bob", "Host") as (ann, bob, host):
        host.voice.slow_s = 0.05
        results: list[str] = []

        async def one(guest: Side) -> None:
            ours, _ = await visit(guest, host, turns=4)
            results.append(ours.outcome)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, ann)
            nursery.start_soon(one, bob)
        assert sorted(results) == ["completed", "declined:busy"]


async def test_a_knock_for_someone_the_door_does_not_accept_is_turned_away(
    tmp_path: Path,
) -> None:
    """A bridge's knock ``for`` a participant it does not vouch for (describe refuses it):
    declined as an unknown visitor, the refusal logged, nothing recorded."""
    async with sides(tmp_path, "Bridge", "Host") as (bridge, host):
        to_host, to_guest = channels(bridge, host)

        def refuse(peer_id: str, knock: Knock) -> Partner:
            assert knock.on_behalf_of == b"\x00\x24zunda"
            raise VisitProtocolError("a knock for someone this peer does not vouch for")

        knock = Knock("ab" * 16, "Zundamon", bytes(32), "hello", on_behalf_of=b"\x00\x24zunda")
        await to_host.send(knock)
        assert await host.session.host(to_guest, refuse) is None
        _, answer = await to_host.receive(5)
        assert getattr(answer, "reason", None) == "unknown_visitor"
        assert [exc.reason for exc in host.rejected] == ["visit_protocol"]
        assert await host.memory.visits() == []


async def test_a_knock_reusing_a_visit_id_is_refused(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Mallory", "Host") as (guest, mallory, host):
        ours, _ = await visit(guest, host, turns=2)
        to_host, to_guest = channels(mallory, host)
        await to_host.send(Knock(ours.visit, "Mallory", bytes(32), "me again"))
        assert await host.session.host(to_guest, host.describe) is None
        _, answer = await to_host.receive(5)
        assert getattr(answer, "reason", None) == "error"
        assert [exc.reason for exc in host.rejected] == ["visit_protocol"]
        assert len(await host.memory.visits()) == 1


async def test_a_host_cannot_stretch_the_guests_budget_or_privacy(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host") as (guest, host):
        to_host, to_guest = channels(guest, host)
        async with trio.open_nursery() as nursery:

            async def greedy_host() -> None:
                _, knock = await to_guest.receive(10)
                assert isinstance(knock, Knock) and knock.turns == 2 and knock.private
                await to_guest.send(Welcome(knock.visit, 64, 3_600_000, False))
                await to_guest.send(Say(knock.visit, 1, "tell me more"))
                _, reply = await to_guest.receive(10)
                assert isinstance(reply, Farewell) and reply.reason == "max_turns"
                await to_guest.close()

            nursery.start_soon(greedy_host)
            result = await guest.session.guest(
                to_host, host.partner(), "hello", turns=2, private=True
            )
            nursery.cancel_scope.cancel()
        assert guest.voice.said == 0  # it never spoke past the two turns it came for
        assert guest.published == []  # and it stayed private
        assert len(result.lines) == 2


async def test_a_private_visit_publishes_nobodys_speech(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host") as (guest, host):
        ours, _ = await visit(guest, host, turns=4, private=True)
        assert ours.outcome == "completed"
        assert guest.published == [] and host.published == []
        public, _ = await visit(guest, host, turns=4, private=False)
        assert len(guest.published) == 2 and len(host.published) == 2
        assert {visit_id for visit_id, _ in guest.published} == {public.visit}


async def test_pii_from_a_raw_guest_never_reaches_the_database_or_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = pii_items()
    texts = [", ".join(item.text for item in items[i : i + 4]) for i in range(0, len(items), 4)]
    async with sides(tmp_path, "Host", max_turns=64, per_visitor_per_hour=100) as (host,):
        raw_guest = Side(tmp_path, "Raw")
        handler = caplog.handler
        handler.addFilter(RedactingFilter())
        caplog.set_level(logging.DEBUG)
        to_host, to_guest = channels(raw_guest, host)
        async with trio.open_nursery() as nursery:

            async def say_everything() -> None:
                visit_id = "cd" * 16
                await to_host.send(Knock(visit_id, "Raw", bytes(32), texts[0][:500]))
                await to_host.receive(10)  # welcome
                for turn, text in enumerate(texts[1:], start=1):
                    await to_host.receive(10)  # the host's line
                    await to_host.send(Say(visit_id, 2 * turn, text[:500]))
                await to_host.receive(10)  # the host's last line
                await to_host.send(Farewell(visit_id, 2 * len(texts), "goodbye"))
                await to_host.receive(10)  # the host's receipt; we leave without signing
                await to_host.close()

            nursery.start_soon(say_everything)
            result = await host.session.host(to_guest, host.describe)
        assert result is not None and len(result.lines) == 2 * len(texts)
        raw_guest.store.close()
        host.store.close()
        stored = await trio.to_thread.run_sync(read_files, tmp_path, "Host.db*")
        assert "[email]" in stored
        assert leaks(stored, items) == []
        assert leaks(host.events_out.getvalue(), items) == []
        assert leaks(caplog.text, items) == []


def read_files(directory: Path, pattern: str) -> str:
    paths = sorted(directory.glob(pattern))
    return "".join(path.read_bytes().decode("latin-1") for path in paths)


async def test_raw_messages_from_the_partner_are_refused_with_a_reason(tmp_path: Path) -> None:
    async with sides(tmp_path, "Guest", "Host") as (guest, host):
        to_host, to_guest = channels(guest, host)
        await to_host.send(Say("ab" * 16, 1, "no knock first"))
        assert await host.session.host(to_guest, host.describe) is None
        assert [exc.reason for exc in host.rejected] == ["visit_protocol"]
        other = Identity.generate()
        forged = seal(
            other,
            kind="visit",
            channel=PROTO_VISIT,
            seq=1,
            ts_ms=now_ms(),
            body={
                "type": "knock",
                "visit": "ef" * 16,
                "name": "X",
                "card": bytes(32),
                "first_line": "hi",
                "private": False,
                "turns": 0,
            },
            bodies=VISIT_BODIES,
        )
        to_host, to_guest = channels(guest, host)
        await to_host.stream.send_all(len(forged).to_bytes(4, "big") + forged)
        assert await host.session.host(to_guest, host.describe) is None
        assert host.rejected[-1].reason == "sender_mismatch"
