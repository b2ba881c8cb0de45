"""``roomverse directory`` as terminal text (:mod:`node.cli.directory_view`): pure."""

from __future__ import annotations

from typing import Any

from node.cli.directory_view import ago_text, directory_table, render_reply

NOW = 1_800_000_000_000


def listed(
    name: str, seen_s_ago: float, *, own: bool = False, addrs: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "peer_id": "12D3KooWExample",
        "name": name,
        "status": "online",
        "last_seen_ms": NOW - int(seen_s_ago * 1000),
        "addrs": list(addrs),
        "self": own,
    }


def test_ago_switches_unit_at_ninety_seconds_and_ninety_minutes() -> None:
    assert [ago_text(s) for s in (0, 89.4, 90, 5399, 5400, 86400)] == [
        "0s ago",
        "89s ago",
        "2m ago",
        "90m ago",
        "2h ago",
        "24h ago",
    ]


def test_the_table_marks_our_own_row_and_lists_addresses_under_each_peer() -> None:
    table = directory_table(
        [
            listed("Mina", 5, own=True, addrs=("/ip4/10.0.0.1/tcp/4001",)),
            listed("A name longer than nineteen characters", 120),
        ],
        now_ms=NOW,
    )
    assert table.splitlines() == [
        "NAME                 STATUS    LAST SEEN  PEER ID / ADDRESSES",
        "Mina *               online       5s ago  12D3KooWExample",
        "                                         /ip4/10.0.0.1/tcp/4001",
        "A name longer than   online       2m ago  12D3KooWExample",
    ]


def test_a_legacy_participant_is_marked_with_its_bridge() -> None:
    zundamon = {**listed("Zundamon", 3, addrs=("https://zunda.example",)), "vouched_by": "12D3B"}
    assert directory_table([zundamon], now_ms=NOW).splitlines()[1:] == [
        "Zundamon             online       3s ago  12D3KooWExample",
        "                                         https://zunda.example",
        "                                         legacy HTTP participant, vouched for by 12D3B",
    ]


def test_other_peoples_text_cannot_drive_the_terminal() -> None:
    table = directory_table([listed("evil\x1b[2J", 0, addrs=("/x\x07",))], now_ms=NOW)
    assert "\x1b" not in table and "\x07" not in table
    assert "evil\N{REPLACEMENT CHARACTER}[2J" in table


def test_a_clock_behind_the_entry_shows_zero_seconds() -> None:
    assert "0s ago" in directory_table([listed("Ahead", -30)], now_ms=NOW)


def test_the_reply_ends_with_one_line_on_the_replica() -> None:
    reply: dict[str, Any] = {
        "entries": [listed("Mina", 1)],
        "present": 1,
        "held": 3,
        "sync": {"ok": 4},
        "digest": "d" * 32,
    }
    text = render_reply(reply, now_ms=NOW)
    assert (
        text.splitlines()[-1] == f"1 listed · 1 present of 3 known · 4 syncs ok · digest {'d' * 32}"
    )
    assert text.startswith(directory_table(reply["entries"], now_ms=NOW) + "\n")
