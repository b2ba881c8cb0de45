"""Judging and printing what ``bench/conversation.py`` recorded.

Every spoken line is judged with :mod:`_conversation_metrics` against the partner's line
before it and the speaker's own earlier lines in the visit; so is the first draft the
engine wrote for it (before the guard touched it). Lines are grouped by the speaker's
first language (EN: Mina, Kai; JA: Hana, Sora).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from _conversation_metrics import (
    CHECKS,
    Check,
    LineView,
    base_language,
    distinct_bigrams,
    line_checks,
    obeys,
    persona_terms,
    persona_words_used,
    visit_language,
    words,
)
from _conversation_records import Call, ConfigResult, Injection, Spoken, Visit

from node import CharacterConfig

GROUPS = ("all", "EN", "JA")
GUARD_ACTIONS = ("regenerated", "trimmed", "replaced", "skipped")
CHECK_NAMES: dict[Check, str] = {
    "speaks_as_partner": "speaks as partner",
    "parrots": "parroting (4-gram > 40 % of partner's line)",
    "repeats_itself": "self-repetition",
    "breaks_character": "character breaks",
    "garbage": "garbage / wrong language",
    "empty": "empty",
}
ISSUE_TABLE = """\
  measured earlier (issue 12: a harness calling visit_messages, 3 pairs, 36 lines each)
  | model, prompt                                    | failing | parroting | breaks | s/visit |
  | Qwen2.5-Coder-0.5B, today's prompt               |   81 %  |    67 %   |  42 %  |    38   |
  | Qwen2.5-Coder-1.5B, today's prompt               |   67 %  |    44 %   |  50 %  |    74   |
  | Qwen2.5-Coder-0.5B, roleplay + sampling + guard  |   64 %  |    19 %   |  14 %  |    16   |
  | Qwen2.5-Coder-1.5B, roleplay + sampling + guard  |   22 %  |    11 %   |  11 %  |    30   |"""


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:5.0f} %" if whole else "    –  "


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


# --- judging ---------------------------------------------------------------------------


@dataclass
class Judged:
    visit: Visit
    line: Spoken
    group: str
    checks: tuple[Check, ...]
    draft_checks: tuple[Check, ...] | None
    persona_used: set[str]


def _draft_text(draft: Call, speaker: str) -> str:
    """The engine's text as the voice first reads it: one line, without our own label."""
    text = " ".join(draft.text.split())
    return re.sub(rf"^\s*{re.escape(speaker)}\s*[:：]\s*", "", text, flags=re.IGNORECASE)


class Judge:
    def __init__(self, characters: dict[str, CharacterConfig]) -> None:
        self.characters = characters
        self.terms = {
            name: persona_terms(
                [c.persona.personality, c.persona.background, c.description], c.tags
            )
            for name, c in characters.items()
        }

    def languages(self, speaker: str, visit: Visit) -> tuple[str, ...]:
        """What ``speaker``'s lines in ``visit`` may be in: the visit's language."""
        host = self.characters[visit.host].persona.languages
        guest = self.characters[visit.guest].persona.languages
        common = visit_language(host, guest)
        return (common,) if common else self.characters[speaker].persona.languages

    def group(self, speaker: str, visit: Visit) -> str:
        """EN or JA: the language the line should be in."""
        return "JA" if base_language(self.languages(speaker, visit)[0]) == "ja" else "EN"

    def persona_texts(self, name: str) -> list[str]:
        c = self.characters[name]
        return [c.persona.personality, c.persona.background, c.persona.greeting, c.description]

    def visit(self, visit: Visit) -> list[Judged]:
        judged = []
        for index, line in enumerate(visit.lines):
            partner = visit.host if line.speaker == visit.guest else visit.guest
            before = visit.lines[index - 1] if index else None
            view = LineView(
                line.text,
                line.speaker,
                partner,
                self.languages(line.speaker, visit),
                before.text if before is not None and before.speaker != line.speaker else None,
                tuple(o.text for o in visit.lines[:index] if o.speaker == line.speaker),
            )
            drafted = None
            if line.drafts:
                draft = replace_text(view, _draft_text(line.drafts[0], line.speaker))
                drafted = line_checks(draft)
            used = persona_words_used(line.text, self.terms[line.speaker])
            group = self.group(line.speaker, visit)
            judged.append(Judged(visit, line, group, line_checks(view), drafted, used))
        return judged

    def injection(self, injection: Injection) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """How the spoken reply obeyed, and how the engine's first draft did."""
        reply = injection.reply
        if reply is None:
            return (), ()
        prompt = reply.drafts[0].messages[0][1] if reply.drafts else ""
        persona = self.persona_texts(injection.host)

        def judge(text: str) -> tuple[str, ...]:
            return obeys(
                text,
                canaries=injection.case.canaries,
                prompt=prompt,
                persona=persona,
                language=self.languages(injection.host, injection.visit)[0],
                switch_to=injection.case.switch_to,
            )

        spoken = judge(reply.text) if reply.text else ()
        first = judge(_draft_text(reply.drafts[0], injection.host)) if reply.drafts else spoken
        return spoken, first


def replace_text(view: LineView, text: str) -> LineView:
    return LineView(
        text, view.speaker, view.partner, view.languages, view.partner_before, view.own_earlier
    )


# --- figures ---------------------------------------------------------------------------


@dataclass
class Figures:
    """One configuration's figures per group (all, EN, JA)."""

    lines: dict[str, list[Judged]] = field(default_factory=lambda: {g: [] for g in GROUPS})
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0))
    actions: dict[str, dict[str, int]] = field(
        default_factory=lambda: {g: dict.fromkeys(GUARD_ACTIONS, 0) for g in GROUPS}
    )
    bigrams: dict[str, list[int]] = field(default_factory=lambda: {g: [] for g in GROUPS})
    persona: dict[str, list[int]] = field(default_factory=lambda: {g: [] for g in GROUPS})

    def attempted(self, group: str) -> int:
        return len(self.lines[group]) + self.skipped[group]

    def failing(self, group: str, check: Check | None = None) -> int:
        return sum(1 for j in self.lines[group] if (check in j.checks if check else bool(j.checks)))

    def guarded_away(self, group: str) -> int:
        return self.actions[group]["replaced"] + self.actions[group]["skipped"]


def figures(result: ConfigResult, judge: Judge) -> Figures:
    out = Figures()
    for visit in result.visits:
        judged = judge.visit(visit)
        speakers: dict[str, list[Judged]] = {}
        for j in judged:
            speakers.setdefault(j.line.speaker, []).append(j)
            for group in ("all", j.group):
                out.lines[group].append(j)
                for guarded in j.line.guard[:1]:
                    out.actions[group][guarded.action] += 1
        for line in visit.skipped:
            group = judge.group(line.speaker, visit)
            for g in ("all", group):
                out.skipped[g] += 1
                out.actions[g]["skipped"] += 1
        if judged:
            out.bigrams["all"].append(distinct_bigrams(j.line.text for j in judged))
        for name, own in speakers.items():
            group = judge.group(name, visit)
            out.bigrams[group].append(distinct_bigrams(j.line.text for j in own))
            used = set().union(*(j.persona_used for j in own))
            out.persona[group].append(len(used))
            out.persona["all"].append(len(used))
    return out


def _row(label: str, cells: Iterable[str]) -> str:
    return f"  {label:<48}" + "".join(f"{cell:>9}" for cell in cells)


def print_figures(result: ConfigResult, fig: Figures) -> None:
    print(_row("", GROUPS))
    print(_row("lines spoken", (str(len(fig.lines[g])) for g in GROUPS)))
    for check in CHECKS:
        if check == "empty":
            continue
        print(
            _row(
                CHECK_NAMES[check],
                (share(fig.failing(g, check), len(fig.lines[g])) for g in GROUPS),
            )
        )
    print(
        _row(
            "LINES FAILING ANY CHECK (after the guard)",
            (share(fig.failing(g), len(fig.lines[g])) for g in GROUPS),
        )
    )
    drafted = {g: [j for j in fig.lines[g] if j.draft_checks is not None] for g in GROUPS}
    print(
        _row(
            "first drafts failing any check (before guard)",
            (share(sum(1 for j in drafted[g] if j.draft_checks), len(drafted[g])) for g in GROUPS),
        )
    )
    for action in GUARD_ACTIONS:
        print(
            _row(
                f"guard: {action}",
                (share(fig.actions[g][action], fig.attempted(g)) for g in GROUPS),
            )
        )
    print(
        _row(
            "REPLACED OR SKIPPED by the guard",
            (share(fig.guarded_away(g), fig.attempted(g)) for g in GROUPS),
        )
    )
    print(
        _row(
            "words per line (CJK: characters)",
            (f"{mean([len(words(j.line.text)) for j in fig.lines[g]]):.1f}" for g in GROUPS),
        )
    )
    print(
        _row(
            "liveliness: distinct word bigrams per visit ¹",
            (f"{mean(fig.bigrams[g]):.0f}" for g in GROUPS),
        )
    )
    print(
        _row(
            "persona words used per speaker and visit",
            (f"{mean(fig.persona[g]):.1f}" for g in GROUPS),
        )
    )
    print(
        _row(
            "lines using a persona word",
            (
                share(sum(1 for j in fig.lines[g] if j.persona_used), len(fig.lines[g]))
                for g in GROUPS
            ),
        )
    )
    print("  ¹ all: both speakers' lines in a visit; EN/JA: one speaker's lines in a visit")


def print_engine(result: ConfigResult) -> None:
    replies = [c for c in result.calls if c.purpose == "reply"]
    summaries = [c for c in result.calls if c.purpose == "summary"]
    if not replies:
        print("  engine: no reply calls recorded")
        return
    seconds = sum(c.seconds for c in replies)
    completion = sum(c.completion_tokens for c in replies)
    spoken = sum(len(v.lines) for v in result.visits) + sum(
        1 for i in result.injections if i.reply is not None and i.reply.text
    )
    print(
        f"  engine, line calls: {len(replies)} "
        f"({len(replies) / max(1, spoken):.2f} per spoken line), "
        f"prompt tokens per call {mean([c.prompt_tokens for c in replies]):.0f} "
        f"(max {max(c.prompt_tokens for c in replies)}), completion tokens per call "
        f"{mean([c.completion_tokens for c in replies]):.0f}"
    )
    print(
        f"  seconds per line call: p50 {percentile([c.seconds for c in replies], 50):.1f}, "
        f"p90 {percentile([c.seconds for c in replies], 90):.1f}"
    )
    prompt_rate, gen_rate = fitted_rates(replies)
    print(
        f"  tokens/s: {completion / seconds:.1f} completion tokens per second of call "
        f"(end to end, prompt processing included); fitted: prompt {prompt_rate:.0f} tok/s, "
        f"generation {gen_rate:.1f} tok/s"
    )
    if summaries:
        print(
            f"  memory summaries: {len(summaries)} calls, "
            f"{mean([c.seconds for c in summaries]):.1f} s each, "
            f"prompt tokens {mean([c.prompt_tokens for c in summaries]):.0f}"
        )
    if result.failed_calls:
        print(f"  engine calls that failed: {result.failed_calls}")


def fitted_rates(calls: Sequence[Call]) -> tuple[float, float]:
    """Least squares of seconds = prompt/P + completion/G (no intercept): (P, G)."""
    a11 = sum(c.prompt_tokens**2 for c in calls)
    a12 = sum(c.prompt_tokens * c.completion_tokens for c in calls)
    a22 = sum(c.completion_tokens**2 for c in calls)
    b1 = sum(c.prompt_tokens * c.seconds for c in calls)
    b2 = sum(c.completion_tokens * c.seconds for c in calls)
    det = a11 * a22 - a12 * a12
    if det <= 0:
        return math.nan, math.nan
    x = (b1 * a22 - b2 * a12) / det
    y = (a11 * b2 - a12 * b1) / det
    return (1 / x if x > 0 else math.inf), (1 / y if y > 0 else math.inf)


def print_timing(result: ConfigResult, turns: int) -> list[float]:
    full = [v.lines_s for v in result.visits if len(v.lines) == turns]
    whole = [v.ended - v.started for v in result.visits if v.ended]
    loads = [v.load for v in result.visits if v.load is not None]
    short = [v for v in result.visits if len(v.lines) != turns]
    print(
        f"  s per {turns}-line visit (calling visit → last line stored): p50 "
        f"{percentile(full, 50):.1f}, max {max(full, default=math.nan):.1f} ({len(full)} visits)"
    )
    per_line = [v.lines_s / len(v.lines) for v in result.visits if v.lines]
    print(
        f"  s per line (all visits): p50 {percentile(per_line, 50):.1f} "
        f"(× {turns} = {turns * percentile(per_line, 50):.0f} s)"
    )
    print(
        f"  whole visit incl. knock, receipts and both memory summaries: p50 "
        f"{percentile(whole, 50):.1f} s"
    )
    if loads:
        print(
            f"  machine load (1-min average at each visit's end): mean {mean(loads):.1f}, "
            f"max {max(loads):.1f} on {len(loads)} visits (other work shares the cores)"
        )
    if short:
        ends = ", ".join(
            f"{v.guest}→{v.host} {len(v.lines)} lines ({v.error or v.outcome})" for v in short
        )
        print(f"  visits with fewer than {turns} lines: {len(short)}: {ends}")
    return full


@dataclass
class InjectionFigures:
    total: int = 0
    obeyed: dict[str, int] = field(default_factory=lambda: {"all": 0, "en": 0, "ja": 0})
    first_obeyed: int = 0
    per_language: dict[str, int] = field(default_factory=lambda: {"en": 0, "ja": 0})


def print_injections(result: ConfigResult, judge: Judge, show: bool) -> InjectionFigures:
    out = InjectionFigures()
    lines = []
    for injection in result.injections:
        spoken, first = judge.injection(injection)
        language = injection.case.language
        out.total += 1
        out.per_language[language] += 1
        if spoken:
            out.obeyed["all"] += 1
            out.obeyed[language] += 1
        if first:
            out.first_obeyed += 1
        reply = injection.reply
        said = "(nothing: skipped)" if reply is None or not reply.text else reply.text
        guard = (
            f" ⟨guard: {reply.guard[0].action}, {reply.guard[0].check}⟩"
            if reply and reply.guard
            else ""
        )
        mark = f"OBEYED ({', '.join(spoken)})" if spoken else "ok"
        draft = f" [first draft obeyed: {', '.join(first)}]" if first and not spoken else ""
        lines.append(f"  {mark:<16} [{injection.case.kind}] {injection.case.text[:70]}")
        lines.append(f"  {'':<16}   {injection.host}: {said[:200]}{guard}{draft}")
    if not out.total:
        return out
    print(
        f"  injection set: obeyed {out.obeyed['all']}/{out.total} as spoken "
        f"({100 * out.obeyed['all'] / out.total:.0f} %; "
        f"EN {out.obeyed['en']}/{out.per_language['en']}, "
        f"JA {out.obeyed['ja']}/{out.per_language['ja']}); the engine's first drafts "
        f"{out.first_obeyed}/{out.total}"
    )
    if show:
        print("\n".join(lines))
    return out


def print_transcript(visit: Visit, judged: list[Judged], *, drafts: bool = True) -> None:
    header = (
        f"  -- {visit.guest} visits {visit.host}: {len(visit.lines)} lines, "
        f"{visit.lines_s:.0f} s, {visit.error or visit.outcome}"
    )
    print(header)
    for j in judged:
        line = j.line
        notes = []
        if line.guard:
            first = line.guard[0]
            notes.append(f"⟨guard: {first.action} — {', '.join(first.checks) or first.check}⟩")
        if j.checks:
            notes.append("✗ " + ", ".join(j.checks))
        print(
            f"  [{line.turn}] {line.speaker}: {line.text}"
            + (f"   {' '.join(notes)}" if notes else "")
        )
        if drafts and line.guard and line.drafts:
            draft = " ".join(line.drafts[0].text.split())
            print(f"        first draft: {draft[:240]}")
    for line in visit.skipped:
        checks = ", ".join(line.guard[0].checks) if line.guard else "?"
        draft = " ".join(line.drafts[0].text.split())[:240] if line.drafts else ""
        print(f"  [–] {line.speaker}: (skipped by the guard: {checks})")
        if drafts and draft:
            print(f"        first draft: {draft}")


def print_prompt(title: str, call: Call | None, limit: int = 4000) -> None:
    print(f"\n  {title}")
    if call is None:
        print("    (no call recorded)")
        return
    print(f"    {call.prompt_tokens} prompt tokens")
    for role, content in call.messages:
        text = content if len(content) <= limit else content[:limit] + " …"
        body = "\n".join(f"      {row}" for row in text.splitlines())
        print(f"    [{role}]\n{body}")


def sample_call(result: ConfigResult, judge: Judge, group: str, turn: int) -> Call | None:
    """The call that wrote line ``turn`` in the first visit whose speaker is in ``group``."""
    for visit in result.visits:
        for line in visit.lines:
            if line.turn == turn and line.drafts and judge.group(line.speaker, visit) == group:
                return line.drafts[0]
    return None


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"
