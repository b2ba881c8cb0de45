"""Running a node whose wall clock is off, with libfaketime (Debian's ``faketime``).

The library is preloaded into the node's own process (``LD_PRELOAD`` and ``FAKETIME``
set by ``env``, which execs): the ``faketime`` command instead forks and waits, so a
SIGTERM sent to it never reaches the node, which would outlive its test. A relative
offset (``FAKETIME=+600s``) shifts every clock the process reads by the same amount, so
its timers run at the normal rate; only what it believes the time is differs.
"""

from __future__ import annotations

import glob

LIBFAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


def libfaketime() -> str | None:
    for pattern in LIBFAKETIME_GLOBS:
        if found := sorted(glob.glob(pattern)):
            return found[0]
    return None


def faketime_skip_reason() -> str | None:
    if libfaketime() is None:
        return "needs libfaketime (apt-get install faketime)"
    return None


def faketime_prefix(offset_s: int) -> list[str]:
    """The command prefix that runs a program with its wall clock ``offset_s`` seconds
    off (none for 0)."""
    if not offset_s:
        return []
    library = libfaketime()
    if library is None:
        raise RuntimeError(faketime_skip_reason())
    return ["env", f"LD_PRELOAD={library}", f"FAKETIME={offset_s:+d}s"]


__all__ = ["faketime_prefix", "faketime_skip_reason", "libfaketime"]
