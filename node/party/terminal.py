"""What a person sees of the party on the terminal: the model arriving, each character
joining, the viewer's address, and every visit as a short play script.

It listens to the party's events and to each character's (the full event streams go to
log files in text mode, or to stdout with ``--log-format json``, where this is silent).
"""

from __future__ import annotations

import sys
import textwrap
from typing import Any, TextIO

from node.privacy.log_scrub import scrub_log_text

MB = 1_000_000
PROGRESS_STEPS = 10
"""Model progress is printed at every tenth of the way, not on every chunk."""
WIDTH = 100


class PartyTerminal:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._progress_shown = -1
        self._partner_of_visit: dict[str, str] = {}
        self._members: set[str] = set()
        """The party's characters (from ``party_starting``): a visitor who is not one of
        them (through a bridge, from the LAN) has its lines shown by the host's events."""
        self._outsiders: dict[str, str] = {}
        """Visit → the outside guest's name, for visits an outsider pays a party character."""
        self._outside_hosts: set[str] = set()
        """Visits a party character pays someone outside the party: the host's lines are
        shown from the guest's events."""

    def write(self, text: str) -> None:
        try:
            self._stream.write(scrub_log_text(text) + "\n")
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # the terminal went away; the party goes on

    def party_event(self, event: str, fields: dict[str, Any]) -> None:
        """The party's own events."""
        if event == "party_starting":
            self._members = set(fields["characters"])
            names = ", ".join(fields["characters"])
            self.write(f"RoomVerse party: {names}")
            self.write(f"  memories live in {fields['data_dir']}")
            if fields.get("engine"):
                self.write(f"  engine: {fields['engine']}")
        elif event == "model_progress":
            self._model_progress(fields["model"], fields["done"], fields["total"])
        elif event == "engine_ready":
            self.write(
                f"engine ready: {fields['model']} loaded in {fields['load_s']:.0f} s,"
                " one model shared by every character"
            )
        elif event == "engine_failed":
            self.write(f"the engine cannot run: {fields['error']}")
        elif event == "party_joined":
            rss = f", party RSS {fields['rss_mb']:.0f} MB" if fields.get("rss_mb") else ""
            known = fields.get("friends", 0)
            memory = f", remembers {known} friend{'s' * (known != 1)}" if known else ""
            self.write(f"{fields['name']} joined ({_short_peer(fields['peer_id'])}{memory}{rss})")
        elif event == "firehose_ready":
            self.write("")
            self.write(f"watch the party: {fields['url']}")
            self.write("(Ctrl-C stops it; the characters keep their memories for next time)")
            self.write("")
        elif event == "party_waiting":
            self.write(f"still waiting for: {', '.join(fields['waiting'])}")
        elif event == "stopping":
            self.write("stopping: everyone says goodbye...")
        elif event == "party_stopped":
            self.write(f"party over. Memories kept in {fields['data_dir']}")

    def character_event(self, name: str, event: str, fields: dict[str, Any]) -> None:
        """One character's events: its visits, as seen by the visitor (each line once, by
        the one who said it)."""
        if event == "visit_started" and fields.get("role") == "guest":
            partner = fields.get("partner_name", "?")
            if self._members and partner not in self._members:
                self._outside_hosts.add(fields["visit"])
            self._visit_begins(name, fields["visit"], partner)
        elif event == "visit_line" and fields.get("mine"):
            if fields.get("turn") == 0:  # the guest's opening comes before visit_started
                self._visit_begins(name, fields["visit"], fields.get("partner_name", "?"))
            self._line(name, str(fields.get("text", "")))
        elif event == "visit_line" and fields["visit"] in self._outside_hosts:
            self._line(str(fields.get("partner_name", "?")), str(fields.get("text", "")))
        elif event == "visit_line" and self._from_outside(fields):
            guest = str(fields.get("partner_name", "?"))
            if fields.get("turn") == 0:
                self._outsiders[fields["visit"]] = guest
                self._visit_begins(guest, fields["visit"], name)
            self._line(guest, str(fields.get("text", "")))
        elif event == "visit_ended" and fields["visit"] in self._outsiders:
            guest = self._outsiders.pop(fields["visit"])
            self._partner_of_visit.pop(fields["visit"], None)
            how = fields.get("outcome", "")
            self.write(f"  ({guest} leaves {name}: {how}, {fields.get('turns', 0)} lines)")
        elif event == "visit_ended" and fields.get("role") == "guest":
            self._outside_hosts.discard(fields["visit"])
            if fields["visit"] not in self._partner_of_visit:
                return  # turned away at the door: the host said so (visit_declined)
            partner = self._partner_of_visit.pop(fields["visit"])
            how = fields.get("outcome", "")
            self.write(f"  ({name} leaves {partner}: {how}, {fields.get('turns', 0)} lines)")
        elif event == "souvenir_call" and fields.get("side") == "borrowed":
            lender = str(fields.get("partner_name", "?"))
            tool = str(fields.get("tool", "?"))
            outcome = str(fields.get("outcome", ""))
            if outcome in ("ok", "tool_error"):
                self.write(f"  ⟡ {name} uses {lender}'s {tool} souvenir")
            else:
                self.write(f"  ⟡ {name} asks for {lender}'s {tool} souvenir: {outcome}")
        elif event == "plugin_refused":
            self.write(f"{name} lends no {fields.get('plugin', '?')}: {fields.get('reason', '')}")
        elif event == "visit_declined":
            guest = fields.get("partner_name", "?")
            self.write(f"{name} is not receiving {guest} ({fields.get('reason', '')})")
        elif event == "autonomy_failed":
            self.write(f"{name} could not go out: {fields.get('error', '')}")
        elif event == "engine_failed":
            self.write(f"{name} has no engine: {fields.get('error', '')}")

    def _from_outside(self, fields: dict[str, Any]) -> bool:
        """A line by a guest who is not one of the party's characters (the host's event:
        the guest's own events are not ours to hear)."""
        if fields.get("mine") or not self._members:
            return False
        if fields["visit"] in self._outsiders:
            return True
        return fields.get("turn") == 0 and fields.get("partner_name") not in self._members

    def _visit_begins(self, name: str, visit: str, partner: str) -> None:
        if visit in self._partner_of_visit:
            return
        self._partner_of_visit[visit] = partner
        self.write("")
        self.write(f"{name} drops in on {partner}")

    def _line(self, name: str, text: str) -> None:
        lead = f"  {name}: "
        wrapped = textwrap.wrap(text, WIDTH, initial_indent=lead, subsequent_indent=" " * len(lead))
        for row in wrapped or [lead]:
            self.write(row)

    def _model_progress(self, model: str, done: int, total: int) -> None:
        share = done / total if total else 1.0
        tenth = done * PROGRESS_STEPS // total if total else PROGRESS_STEPS
        if tenth <= self._progress_shown:
            return
        self._progress_shown = tenth
        self.write(f"model {model}: {done / MB:,.0f} / {total / MB:,.0f} MB ({share:.0%})")


def _short_peer(peer_id: str) -> str:
    return f"{peer_id[:8]}…{peer_id[-6:]}" if len(peer_id) > 16 else peer_id


__all__ = ["PartyTerminal"]
