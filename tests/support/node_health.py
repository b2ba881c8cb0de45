"""Did a node survive? Exit codes and Python tracebacks on stderr, read from the outside."""

from __future__ import annotations

from collections.abc import Sequence

from tests.support.procs import JsonLinesProcess

TRACEBACK = "Traceback (most recent call last)"


def crashes(procs: Sequence[JsonLinesProcess]) -> list[str]:
    """One line per process that has exited or printed a traceback (empty: all healthy).

    A traceback logged and survived still counts: it is an error nobody handled on purpose.
    """
    found = []
    for proc in procs:
        code = proc.proc.poll()
        if code is not None:
            found.append(f"{proc.name}: exited with {code}; {proc.err.tail()}")
        lines = proc.err.snapshot()
        at = [i for i, line in enumerate(lines) if TRACEBACK in line]
        if at:
            shown = lines[at[0] : at[0] + 30]
            found.append(
                f"{proc.name}: {len(at)} traceback(s) on stderr, first:\n" + "\n".join(shown)
            )
    return found


__all__ = ["TRACEBACK", "crashes"]
