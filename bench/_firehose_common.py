"""What the processes of ``bench/firehose.py`` share: commands from the parent on stdin."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import trio


async def follow_stdin(on_line: Callable[[str], None]) -> None:
    """Call ``on_line`` with each line the parent writes; return when it closes stdin
    (or goes away). A non-blocking read, so cancelling it is immediate."""
    async with trio.lowlevel.FdStream(os.dup(sys.stdin.fileno())) as stdin:
        buffer = b""
        while chunk := await stdin.receive_some(4096):
            *lines, buffer = (buffer + chunk).split(b"\n")
            for line in lines:
                on_line(line.decode("utf-8", "replace").strip())
