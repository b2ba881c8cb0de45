"""Memory as terminal text, for ``roomverse memory visits|relations|conversation ID``.

Pure: rows in, a string out. Names, first lines and messages were written by other
people (and their LLMs), so every such text goes through :func:`node.cli.terminal.printable`
before it reaches a terminal. Times are local ISO timestamps; ``tz`` exists for tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from node.cli.terminal import printable
from node.storage.memory import Conversation, MemoryUsageError, RelationStats, VisitRow

NAME_WIDTH = 20
FIRST_LINE_WIDTH = 48


def render_reply(what: str, reply: Mapping[str, Any], *, tz: tzinfo | None = None) -> str:
    """Render the control socket's answer to ``{"cmd": "memory", "what": what}``: the
    rows come back as their ``to_json()`` form. A ``self_name`` in a conversation reply
    names our own lines (else "me")."""
    if what == "visits":
        return visits_table([VisitRow.from_json(v) for v in reply["visits"]], tz=tz)
    if what == "relations":
        return relations_table([RelationStats.from_json(r) for r in reply["relations"]], tz=tz)
    if what == "conversation":
        conversation = Conversation.from_json(reply["conversation"])
        return conversation_text(conversation, self_name=reply.get("self_name", "me"), tz=tz)
    raise MemoryUsageError(f"memory shows visits, relations or conversation, not {what!r}")


def visits_table(rows: Sequence[VisitRow], *, tz: tzinfo | None = None) -> str:
    """One line per visit, as :meth:`Memory.visits` returns them (latest first)."""
    header = (
        f"{'STARTED':<25} {'PARTNER':<{NAME_WIDTH}} {'ROLE':<5} {'OUTCOME':<18} "
        f"{'TURNS':>5} {'LENGTH':>7}  VISIT ID / FIRST LINE"
    )
    indent = " " * header.index("VISIT ID")
    lines = [header]
    for row in rows:
        name = _cell(row.partner_name, NAME_WIDTH - 2) + (" *" if row.private else "")
        lines.append(
            f"{_when(row.started_ms, tz):<25} {name:<{NAME_WIDTH}} {row.role:<5} "
            f"{_cell(row.outcome, 18):<18} {row.turns:>5} "
            f"{_length(row.started_ms, row.ended_ms):>7}  {row.visit_id}"
        )
        if row.first_line:
            lines.append(f"{indent}“{_cell(row.first_line, FIRST_LINE_WIDTH)}”")
    if not rows:
        lines.append("(no visits yet)")
    return "\n".join(lines)


def relations_table(rows: Sequence[RelationStats], *, tz: tzinfo | None = None) -> str:
    """One line per partner, as :meth:`Memory.relations` returns them (closest first)."""
    lines = [
        f"{'PARTNER':<{NAME_WIDTH}} {'AFFINITY':>8} {'VISITS':>6} {'DONE':>5}  "
        f"{'LAST VISIT':<25}  PEER ID"
    ]
    lines.extend(
        f"{_cell(row.partner_name, NAME_WIDTH - 1):<{NAME_WIDTH}} {row.affinity:>8} "
        f"{row.visit_count:>6} {row.completed_count:>5}  "
        f"{_when(row.last_visit_ms, tz):<25}  {row.partner_id}"
        for row in rows
    )
    if not rows:
        lines.append("(no relations yet)")
    return "\n".join(lines)


def conversation_text(
    conversation: Conversation, *, self_name: str = "me", tz: tzinfo | None = None
) -> str:
    """A visit's header, then every turn in order; multi-line turns stay indented under
    their speaker so one speaker's text can never pass for the other's line."""
    visit = conversation.visit
    partner = printable(visit.partner_name)
    me = printable(self_name)
    where = f"from {printable(visit.remote_addr)}" if visit.remote_addr else ""
    lines = [
        f"visit {visit.visit_id} · {visit.role} · with {partner} ({visit.partner_id})"
        + (" · private" if visit.private else ""),
        f"{_when(visit.started_ms, tz)} → {_when(visit.ended_ms, tz)} · "
        f"{printable(visit.outcome)} · {visit.turns} turns {where}".rstrip(),
    ]
    if conversation.summary:
        lines.append(f"summary: {printable(conversation.summary)}")
    lines.append("")
    for message in conversation.messages:
        speaker = partner if message.speaker == visit.partner_id else me
        head = f"[{message.idx:>2}] {_when(message.ts_ms, tz)}  {speaker}: "
        text_lines = message.text.splitlines() or [""]
        lines.append(head + printable(text_lines[0]))
        lines.extend(" " * len(head) + printable(more) for more in text_lines[1:])
    if not conversation.messages:
        lines.append("(nothing was said)")
    return "\n".join(lines)


def _when(ms: int | None, tz: tzinfo | None) -> str:
    if ms is None:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(tz)
    return moment.isoformat(sep=" ", timespec="seconds")


def _length(started_ms: int, ended_ms: int | None) -> str:
    if ended_ms is None:
        return "-"
    seconds = max(0, ended_ms - started_ms) // 1000
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _cell(text: str, width: int) -> str:
    clean = printable(text)
    return clean if len(clean) <= width else clean[: width - 1] + "…"
