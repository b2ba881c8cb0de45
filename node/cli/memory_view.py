"""Memory as terminal text, for ``roomverse memory visits|relations|conversation ID``.

Pure: rows in, a string out. Names, first lines and messages were written by other
people (and their LLMs), so every such text goes through :func:`node.cli.terminal.printable`
before it reaches a terminal. Times are local ISO timestamps; ``tz`` exists for tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from node.cli.terminal import printable
from node.storage.footprints import Footprint
from node.storage.memory import Conversation, MemoryUsageError, RelationStats, VisitRow

NAME_WIDTH = 20
FIRST_LINE_WIDTH = 48


def render_reply(what: str, reply: Mapping[str, Any], *, tz: tzinfo | None = None) -> str:
    """Render the control socket's answer to ``{"cmd": "memory", "what": what}``: the
    rows come back as their ``to_json()`` form. A ``self_name`` in a conversation reply
    names our own lines (else "me")."""
    me = Me(reply.get("self_name", "me"), reply.get("self_id", ""))
    if what == "visits":
        trails = {
            visit: [Footprint.from_json(f) for f in calls]
            for visit, calls in reply.get("souvenirs", {}).items()
        }
        return visits_table(
            [VisitRow.from_json(v) for v in reply["visits"]], tz=tz, souvenirs=trails, me=me
        )
    if what == "relations":
        return relations_table([RelationStats.from_json(r) for r in reply["relations"]], tz=tz)
    if what == "conversation":
        conversation = Conversation.from_json(reply["conversation"])
        text = conversation_text(conversation, self_name=me.name, tz=tz)
        calls = [Footprint.from_json(f) for f in reply.get("souvenirs", [])]
        if calls:
            text += "\n\nsouvenirs:\n" + "\n".join(
                f"  {souvenir_line(call, me)} · {_when(call.ts_ms, tz)}" for call in calls
            )
        return text
    raise MemoryUsageError(f"memory shows visits, relations or conversation, not {what!r}")


@dataclass(frozen=True, slots=True)
class Me:
    """Our own character, to tell our side of a footprint from the partner's."""

    name: str
    peer_id: str


def souvenir_line(call: Footprint, me: Me) -> str:
    """One souvenir footprint in words: "Kai lent Mina the get_current_time souvenir"."""
    partner = printable(call.partner_name)
    ours = call.lender_id == me.peer_id
    lender, borrower = (printable(me.name), partner) if ours else (partner, printable(me.name))
    tool = printable(call.tool) or "?"
    if call.lent:
        return f"{lender} lent {borrower} the {tool} souvenir"
    return f"{borrower} asked for {lender}'s {tool} souvenir: {printable(call.outcome)}"


def visits_table(
    rows: Sequence[VisitRow],
    *,
    tz: tzinfo | None = None,
    souvenirs: Mapping[str, Sequence[Footprint]] | None = None,
    me: Me | None = None,
) -> str:
    """One line per visit, as :meth:`Memory.visits` returns them (latest first), with
    the souvenirs lent in it under it."""
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
        for call in (souvenirs or {}).get(row.visit_id, ()):
            lines.append(f"{indent}⟡ {souvenir_line(call, me or Me('me', ''))}")
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
