"""One plugin process as an MCP transport, and its stderr as scrubbed log lines.

We spawn the process ourselves (not ``mcp.client.stdio``) to hold its handle: the
supervisor waits on its exit, kills its whole tree at the end, and reads its stderr
through a pipe into our log. The transport is FIELD-NOTES' "two memory streams and two
pump tasks": newline-delimited JSON-RPC on stdin/stdout, as stdio MCP servers speak.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import IO

import anyio
import trio
from mcp import types
from mcp.client import Transport
from mcp.shared.message import SessionMessage

from node.privacy.log_scrub import scrub_log_text

logger = logging.getLogger("node.souvenirs")

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""A longer stdout line is not a message we accept: the plugin is killed."""
MAX_LOG_LINE = 300
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class PluginProcess:
    """A running plugin: its pipes as trio streams, its pid, and waiting for its exit.

    Why not ``trio.lowlevel.open_process``: it forks on a worker thread, and bwrap's
    ``--die-with-parent`` is ``PR_SET_PDEATHSIG``, which fires when the *thread* that
    forked it ends; trio ends an idle worker thread after 10 s, and with it every plugin
    it started (measured: SIGKILL every 10-11 s, restart, SIGKILL...). So the plugin is
    forked on the trio thread itself, which lives as long as the node, and its exit is
    awaited on a pidfd, as trio does.
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._pidfd = os.pidfd_open(popen.pid)
        self.stdin = _stream(popen.stdin)
        self.stdout = _stream(popen.stdout)
        self.stderr = _stream(popen.stderr)

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    async def wait(self) -> int:
        while (code := self._popen.poll()) is None:
            await trio.lowlevel.wait_readable(self._pidfd)
        return code

    def kill(self) -> None:
        with suppress(ProcessLookupError):
            self._popen.kill()

    async def aclose(self) -> None:
        """Close our ends of its pipes and its pidfd."""
        with trio.CancelScope(shield=True):
            for stream in (self.stdin, self.stdout, self.stderr):
                with suppress(OSError):
                    await stream.aclose()
        if self._pidfd >= 0:
            trio.lowlevel.notify_closing(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1


def _stream(pipe: IO[bytes] | None) -> trio.lowlevel.FdStream:
    assert pipe is not None
    stream = trio.lowlevel.FdStream(os.dup(pipe.fileno()))
    pipe.close()
    return stream


def spawn(argv: tuple[str, ...], env: dict[str, str]) -> PluginProcess:
    """Start the plugin in its own session (so its group can be killed as one), forked
    on the calling thread, which must be the trio thread (a fork of a few ms; see
    :class:`PluginProcess` for why not a worker thread)."""
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    return PluginProcess(popen)


def kill_tree(process: PluginProcess) -> None:
    """SIGKILL the plugin's process group. In the sandbox that is bwrap, whose death
    takes its pid namespace (every process the plugin made) with it."""
    if process.returncode is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


async def stop(process: PluginProcess) -> None:
    """Kill the plugin and reap it. Its children go first: in the sandbox the child is
    the pid namespace's init, whose death ends every process in it and lets bwrap exit
    and be reaped by us (killing bwrap first leaves that init to the host's pid 1)."""
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            for child in _children(process.pid):
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(child, signal.SIGKILL)
            with trio.move_on_after(1.0):
                await process.wait()
        kill_tree(process)
        with trio.move_on_after(5.0):
            await process.wait()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as handle:
            return [int(word) for word in handle.read().split()]
    except (OSError, ValueError):
        return []


def exit_reason(returncode: int | None) -> str:
    """A short reason for ``plugin_exited``: an exit code or a signal's name."""
    if returncode is None:
        return "running"
    signum = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else 0
    if signum:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        if name == "SIGXCPU":
            return "cpu limit (SIGXCPU)"
        return f"killed ({name})"
    return f"exit {returncode}"


def clean_log_line(raw: bytes) -> str:
    """A plugin's stderr line as it may appear in our log: decoded, no control or
    bidi characters, capped, and PII-redacted like every log line."""
    text = _CONTROL.sub("?", raw.decode("utf-8", "replace")).strip()
    if len(text) > MAX_LOG_LINE:
        text = text[:MAX_LOG_LINE] + "…"
    return scrub_log_text(text)


async def pump_stderr(stream: trio.abc.ReceiveStream | None, plugin: str) -> None:
    """Log each stderr line of the plugin until the pipe closes."""
    if stream is None:
        return
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        lines = buffer.split(b"\n")
        buffer = lines.pop()
        if len(buffer) > 4 * MAX_LOG_LINE:
            lines.append(buffer)
            buffer = b""
        for line in lines:
            if text := clean_log_line(line):
                logger.info("plugin %s: %s", plugin, text)
    if text := clean_log_line(buffer):
        logger.info("plugin %s: %s", plugin, text)


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValueError as exc:
        return exc
    return SessionMessage(message)


@asynccontextmanager
async def _streams(process: PluginProcess, plugin: str) -> AsyncIterator[tuple[object, object]]:
    read_in, read_out = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_in, write_out = anyio.create_memory_object_stream[SessionMessage](16)

    async def reader() -> None:
        assert process.stdout is not None
        async with read_in:
            buffer = bytearray()
            async for chunk in process.stdout:
                buffer += chunk
                while (end := buffer.find(b"\n")) >= 0:
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    if line.strip():
                        await read_in.send(_parse(line))
                if len(buffer) > MAX_MESSAGE_BYTES:
                    logger.warning("plugin %s: message over %d bytes", plugin, MAX_MESSAGE_BYTES)
                    kill_tree(process)
                    return

    async def writer() -> None:
        assert process.stdin is not None
        async with write_out:
            async for message in write_out:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                try:
                    await process.stdin.send_all(data.encode() + b"\n")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(writer)
        try:
            yield read_out, write_in
        finally:
            nursery.cancel_scope.cancel()


def process_transport(process: PluginProcess, plugin: str) -> Transport:
    """The plugin's stdin/stdout as an MCP client transport (``mcp.Client(transport)``)."""
    transport: Transport = _streams(process, plugin)  # type: ignore[assignment]
    return transport


__all__ = [
    "PluginProcess",
    "clean_log_line",
    "exit_reason",
    "kill_tree",
    "process_transport",
    "pump_stderr",
    "spawn",
    "stop",
]
