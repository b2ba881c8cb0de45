"""What a person reads of a visit at the party: who drops in on whom, each line once (by
whoever said it), and who leaves whom, however the two characters' events interleave."""

from __future__ import annotations

import io

from node.party.terminal import PartyTerminal

VISIT = "ab" * 16


def test_a_visit_reads_as_a_short_play_script() -> None:
    out = io.StringIO()
    terminal = PartyTerminal(out)
    mina, kai = terminal.character_event, terminal.character_event
    line = {"visit": VISIT, "partner_name": "Kai"}
    mina("Mina", "visit_line", {**line, "turn": 0, "mine": True, "text": "Evening, Kai!"})
    kai(
        "Kai", "visit_line", {**line, "partner_name": "Mina", "turn": 0, "mine": False, "text": "x"}
    )
    kai("Kai", "visit_started", {"visit": VISIT, "role": "host", "partner_name": "Mina"})
    mina("Mina", "visit_started", {"visit": VISIT, "role": "guest", "partner_name": "Kai"})
    kai("Kai", "visit_line", {**line, "turn": 1, "mine": True, "text": "Watch the stairs."})
    mina("Mina", "visit_line", {**line, "turn": 1, "mine": False, "text": "Watch the stairs."})
    kai("Kai", "visit_ended", {"visit": VISIT, "role": "host", "outcome": "ended_by_partner"})
    mina(
        "Mina", "visit_ended", {"visit": VISIT, "role": "guest", "outcome": "completed", "turns": 2}
    )
    assert out.getvalue().splitlines() == [
        "",
        "Mina drops in on Kai",
        "  Mina: Evening, Kai!",
        "  Kai: Watch the stairs.",
        "  (Mina leaves Kai: completed, 2 lines)",
    ]


def test_a_guest_turned_away_reads_as_the_hosts_refusal_only() -> None:
    out = io.StringIO()
    terminal = PartyTerminal(out)
    terminal.character_event("Kai", "visit_declined", {"partner_name": "Mina", "reason": "busy"})
    terminal.character_event("Mina", "visit_ended", {"visit": VISIT, "role": "guest"})
    assert out.getvalue().splitlines() == ["Kai is not receiving Mina (busy)"]


def test_model_progress_is_shown_in_tenths() -> None:
    out = io.StringIO()
    terminal = PartyTerminal(out)
    for done in range(0, 1_000_001, 20_000):
        terminal.party_event("model_progress", {"model": "m", "done": done, "total": 1_000_000})
    shares = [line.rsplit("(", 1)[1] for line in out.getvalue().splitlines()]
    assert shares == [f"{tenth}0%)" if tenth else "0%)" for tenth in range(10)] + ["100%)"]


def test_visits_with_someone_outside_the_party_show_both_sides() -> None:
    """Through a bridge (or from the LAN), a visitor who is not one of the party's
    characters: its lines come only in the host's events, and the other way round."""
    out = io.StringIO()
    terminal = PartyTerminal(out)
    terminal.party_event("party_starting", {"characters": ["Mina", "Kai"], "data_dir": "/d"})
    out.truncate(0)
    out.seek(0)
    mina = terminal.character_event
    line = {"visit": VISIT, "partner_name": "Zundamon"}
    mina("Mina", "visit_line", {**line, "turn": 0, "mine": False, "text": "Hello, Mina!"})
    mina("Mina", "visit_started", {"visit": VISIT, "role": "host", "partner_name": "Zundamon"})
    mina("Mina", "visit_line", {**line, "turn": 1, "mine": True, "text": "Welcome in!"})
    mina("Mina", "visit_line", {**line, "turn": 2, "mine": False, "text": "Goodbye!"})
    mina(
        "Mina", "visit_ended", {"visit": VISIT, "role": "host", "outcome": "completed", "turns": 3}
    )
    other = "cd" * 16
    line = {"visit": other, "partner_name": "Zundamon"}
    mina("Mina", "visit_line", {**line, "turn": 0, "mine": True, "text": "Hi, Zundamon!"})
    mina("Mina", "visit_started", {"visit": other, "role": "guest", "partner_name": "Zundamon"})
    mina("Mina", "visit_line", {**line, "turn": 1, "mine": False, "text": "Hi, it's me!"})
    mina(
        "Mina", "visit_ended", {"visit": other, "role": "guest", "outcome": "completed", "turns": 2}
    )
    assert out.getvalue().splitlines() == [
        "",
        "Zundamon drops in on Mina",
        "  Zundamon: Hello, Mina!",
        "  Mina: Welcome in!",
        "  Zundamon: Goodbye!",
        "  (Zundamon leaves Mina: completed, 3 lines)",
        "",
        "Mina drops in on Zundamon",
        "  Mina: Hi, Zundamon!",
        "  Zundamon: Hi, it's me!",
        "  (Mina leaves Zundamon: completed, 2 lines)",
    ]


def test_a_souvenir_reads_once_from_the_borrowers_side() -> None:
    out = io.StringIO()
    terminal = PartyTerminal(out)
    call = {"visit": VISIT, "tool": "get_current_time", "outcome": "ok"}
    terminal.character_event(
        "Mina", "souvenir_call", {**call, "side": "borrowed", "partner_name": "Kai"}
    )
    terminal.character_event(
        "Kai", "souvenir_call", {**call, "side": "lent", "partner_name": "Mina"}
    )
    terminal.character_event(
        "Mina",
        "souvenir_call",
        {**call, "side": "borrowed", "partner_name": "Kai", "outcome": "refused:quota_visit"},
    )
    assert out.getvalue().splitlines() == [
        "  ⟡ Mina uses Kai's get_current_time souvenir",
        "  ⟡ Mina asks for Kai's get_current_time souvenir: refused:quota_visit",
    ]
