"""The directory as terminal text, for ``roomverse directory``.

Pure: the control socket's reply (rows as :mod:`node.directory.listing` makes them) and
``now_ms`` in, a string out. Names and addresses were written by other people, so they go
through :func:`node.cli.terminal.printable` before they reach a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from node.cli.terminal import printable


def render_reply(reply: Mapping[str, Any], *, now_ms: int) -> str:
    """The table of ``reply["entries"]``, then one line on the replica as a whole."""
    return "\n".join((directory_table(reply["entries"], now_ms=now_ms), summary_line(reply)))


def directory_table(rows: Sequence[Mapping[str, Any]], *, now_ms: int) -> str:
    """One line per peer (``*`` marks our own), then its addresses, one a line; a legacy
    HTTP participant says which bridge vouches for it."""
    lines = [f"{'NAME':<20} {'STATUS':<8} {'LAST SEEN':>10}  PEER ID / ADDRESSES"]
    for row in rows:
        # When we heard of it, on our clock; the writer's own clock only if we do not know.
        seen = row.get("learned_ms") or row["last_seen_ms"]
        ago = max(0.0, (now_ms - seen) / 1000)
        name = printable(row["name"])[:19] + (" *" if row["self"] else "")
        lines.append(f"{name:<20} {row['status']:<8} {ago_text(ago):>10}  {row['peer_id']}")
        lines.extend(f"{'':<41}{printable(addr)}" for addr in row["addrs"])
        if row.get("vouched_by"):
            lines.append(f"{'':<41}legacy HTTP participant, vouched for by {row['vouched_by']}")
    return "\n".join(lines)


def summary_line(reply: Mapping[str, Any]) -> str:
    return (
        f"{len(reply['entries'])} listed · {reply['present']} present of {reply['held']} known"
        f" · {reply['sync']['ok']} syncs ok · digest {reply['digest']}"
    )


def ago_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.0f}h ago"
