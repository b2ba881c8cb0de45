"""The party's firehose, as its own process (``python -m firehose``).

Why a process: the firehose is a package above ``node`` (it uses node's public API), so
the party runs it the way a user would, by its command line, and reads its JSON events
for the viewer's URL. It joins the party's characters by their addresses (bootstrap), so
it needs no mDNS; its log goes to ``firehose.log`` in the party's directory.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from keys.errors import LocalError

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 8.0
MAX_LINE = 1 << 16


class FirehoseFailed(LocalError):
    """The firehose process exited or never said it was ready."""


def firehose_command(
    *, http: str, data_dir: Path, listen: str, bootstrap: Sequence[str], mdns: bool
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "firehose",
        "--http",
        http,
        "--data-dir",
        str(data_dir),
        "--listen",
        listen,
        "--log-format",
        "json",
    ]
    for addr in bootstrap:
        command += ["--bootstrap", addr]
    if not mdns:
        command.append("--no-mdns")
    return command


async def run_firehose_process(
    command: list[str],
    log_path: Path,
    *,
    task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the firehose until cancelled; reports the viewer's URL once it serves.

    Cancelled, it is asked to stop (SIGINT, so it says ``left``), then killed if it
    lingers."""
    with log_path.open("ab") as log:
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
        )
        try:
            assert process.stdout is not None
            events = _JsonLines(process.stdout)
            with trio.move_on_after(READY_TIMEOUT_S) as waiting:
                while (event := await events.next()) is not None:
                    if event.get("event") == "firehose_ready":
                        break
            if waiting.cancelled_caught:
                raise FirehoseFailed(f"the firehose did not start in {READY_TIMEOUT_S:.0f} s")
            if event is None:
                code = await process.wait()
                raise FirehoseFailed(f"the firehose exited (code {code}); see {log_path}")
            task_status.started(str(event["url"]))
            while await events.next() is not None:
                pass  # keep its pipe drained until it stops
            code = await process.wait()
            raise FirehoseFailed(f"the firehose stopped (code {code}); see {log_path}")
        finally:
            with trio.CancelScope(shield=True):
                await _stop(process)


class _JsonLines:
    """JSON objects from a byte stream, one per line (other lines are skipped)."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._ready: list[dict[str, Any]] = []
        self._buffer = b""

    async def next(self) -> dict[str, Any] | None:
        """The next object, or None once the stream ends."""
        while not self._ready:
            chunk = await self._stream.receive_some(MAX_LINE)
            if not chunk:
                return None
            *complete, self._buffer = (self._buffer + chunk).split(b"\n")
            for line in complete:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    self._ready.append(event)
        return self._ready.pop(0)


async def _stop(process: trio.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGINT)
    with trio.move_on_after(STOP_TIMEOUT_S):
        await process.wait()
        return
    logger.warning("the firehose did not stop in %.0f s; killing it", STOP_TIMEOUT_S)
    process.kill()
    await process.wait()


__all__ = ["FirehoseFailed", "firehose_command", "run_firehose_process"]
