"""What ``roomverse end-visit`` prints for each visit it ended: over (with why), or still
waiting for the partner's line; the partner's name cannot drive the terminal."""

from __future__ import annotations

from node.cli.requests import ending_summary

VISIT = "ab" * 16


def test_an_ended_visit_says_how_and_why() -> None:
    line = ending_summary(
        {
            "visit": VISIT,
            "partner_name": "Kai",
            "ended": True,
            "outcome": "completed",
            "reason": "owner",
            "turns": 3,
        }
    )
    assert line == f"-- visit {VISIT} with Kai: ended (completed, owner), 3 lines"


def test_a_visit_still_ending_waits_for_the_partners_line() -> None:
    line = ending_summary({"visit": VISIT, "partner_name": "Kai\x1b[2J", "ended": False})
    assert line.endswith("ending: the farewell goes out after Kai\ufffd[2J's line")
    assert "\x1b" not in line
