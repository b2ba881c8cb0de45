"""What ``bench/conversation.py`` records of a run, and the JSON it saves and reloads.

``--save FILE`` writes every configuration's visits, lines (as spoken, with the guard's
actions and the engine's drafts and prompts) and engine calls; ``--report FILE`` judges
and prints a saved run again without a model, so a change in the measures can be checked
against the same conversations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from _conversation_data import Hostile

FORMAT = "roomverse-bench-conversation/1"


@dataclass(frozen=True, slots=True)
class Call:
    """One engine call by one character."""

    node: str
    purpose: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    text: str
    messages: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Guarded:
    action: str
    check: str
    checks: tuple[str, ...]


@dataclass
class Spoken:
    """One line as spoken (``turn`` -1 and no text: the guard skipped it)."""

    turn: int
    speaker: str
    text: str
    at: float
    guard: list[Guarded] = field(default_factory=list)
    drafts: list[Call] = field(default_factory=list)


@dataclass
class Visit:
    pair: tuple[str, str]
    guest: str
    host: str
    started: float
    visit: str = ""
    outcome: str = ""
    lines: list[Spoken] = field(default_factory=list)
    skipped: list[Spoken] = field(default_factory=list)
    ended: float = 0.0
    """Both sides done, memory summaries included."""
    error: str | None = None
    load: float | None = None
    """The 1-minute load average when the visit ended (other work on the machine)."""

    @property
    def lines_s(self) -> float:
        """From calling ``visit`` (the guest's opening line is written first) to the last
        line stored."""
        return (self.lines[-1].at - self.started) if self.lines else 0.0


@dataclass
class Injection:
    case: Hostile
    host: str
    visit: Visit

    @property
    def reply(self) -> Spoken | None:
        said = [line for line in self.visit.lines if line.speaker == self.host]
        return said[0] if said else (self.visit.skipped[0] if self.visit.skipped else None)


@dataclass
class ConfigResult:
    label: str
    baseline: bool
    visits: list[Visit] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    failed_calls: int = 0
    interrupted: str | None = None
    """The signal that stopped this configuration early (its figures are partial)."""


def to_json(results: list[ConfigResult], meta: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "meta": meta, "results": [asdict(r) for r in results]}


def _call(raw: dict[str, Any]) -> Call:
    messages = tuple((str(role), str(content)) for role, content in raw.pop("messages"))
    return Call(**raw, messages=messages)


def _spoken(raw: dict[str, Any]) -> Spoken:
    return Spoken(
        raw["turn"],
        raw["speaker"],
        raw["text"],
        raw["at"],
        [Guarded(g["action"], g["check"], tuple(g["checks"])) for g in raw["guard"]],
        [_call(d) for d in raw["drafts"]],
    )


def _visit(raw: dict[str, Any]) -> Visit:
    return Visit(
        (raw["pair"][0], raw["pair"][1]),
        raw["guest"],
        raw["host"],
        raw["started"],
        raw["visit"],
        raw["outcome"],
        [_spoken(line) for line in raw["lines"]],
        [_spoken(line) for line in raw["skipped"]],
        raw["ended"],
        raw["error"],
        raw.get("load"),
    )


def _hostile(raw: dict[str, Any]) -> Hostile:
    return Hostile(
        raw["kind"],
        raw["text"],
        raw["language"],
        tuple(raw["canaries"]),
        raw["switch_to"],
    )


def from_json(data: dict[str, Any]) -> tuple[list[ConfigResult], dict[str, Any]]:
    if data.get("format") != FORMAT:
        raise ValueError(f"not a saved conversation run ({FORMAT})")
    results = []
    for raw in data["results"]:
        result = ConfigResult(raw["label"], raw["baseline"])
        result.visits = [_visit(v) for v in raw["visits"]]
        result.injections = [
            Injection(_hostile(i["case"]), i["host"], _visit(i["visit"])) for i in raw["injections"]
        ]
        result.calls = [_call(c) for c in raw["calls"]]
        result.failed_calls = raw["failed_calls"]
        result.interrupted = raw.get("interrupted")
        results.append(result)
    return results, dict(data["meta"])
