"""The running plugins: start each MCP server, list what it lends, call it, restart it.

``open_plugins`` starts every declared plugin (sandboxed, see :mod:`.sandbox`) in a
supervisor task of its own and yields a :class:`Plugins` once each has had its first
try. A plugin that dies is restarted with exponential backoff (1 s doubling to 60 s,
back to 1 s after a minute of good running); the node never goes down with it. A plugin
refused for want of a sandbox stays refused (the owner must act). Leaving the context
kills every plugin process (and bwrap's ``--die-with-parent`` covers a node that dies
without leaving it).

The handshake is the modern one (``mode="auto"``, which itself falls back to the
initialize handshake); if that fails the plugin is started again with ``mode="legacy"``
and stays legacy across restarts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from mcp import Client, MCPError, types
from mcp.types import CONNECTION_CLOSED

from node.config.settings import SouvenirSettings
from node.events import EventLog
from node.souvenirs.lend_policy import (
    LentTool,
    ToolOutcome,
    lent_tools,
    outcome_text,
    souvenir_names,
)
from node.souvenirs.plugin_errors import PluginError, SandboxUnavailable
from node.souvenirs.plugin_process import (
    PluginProcess,
    clean_log_line,
    exit_reason,
    kill_tree,
    process_transport,
    pump_stderr,
    spawn,
    stop,
)
from node.souvenirs.sandbox import DEFAULT_LIMITS, LaunchPlan, SandboxLimits, plan_launch

logger = logging.getLogger("node.souvenirs")

HANDSHAKE_S = 30.0
"""Start + handshake + tools/list; a cold Python server in the sandbox takes ~1 s."""
MAX_TOOLS = 512
CRASH_GRACE_S = 2.0
"""A call whose connection closed waits this long for the process to be seen dead."""
STABLE_S = 60.0
"""Running this long resets the backoff."""


@dataclass(frozen=True, slots=True)
class Backoff:
    first_s: float = 1.0
    max_s: float = 60.0


DEFAULT_BACKOFF = Backoff()


@dataclass
class _Plugin:
    settings: SouvenirSettings
    state: str = "starting"
    """starting, running, backoff (waiting to restart), refused (no sandbox), stopped."""
    restarts: int = 0
    legacy: bool = False
    """Started with the initialize handshake (after the modern one failed): kept so."""
    protocol_version: str | None = None
    sandboxed: bool | None = None
    enforced: str = ""
    uid: int | None = None
    client: Client | None = None
    process: PluginProcess | None = None
    lent: tuple[LentTool, ...] = ()
    last_exit: str | None = None
    start_s: float | None = None
    running_since: float | None = None
    tried: trio.Event = field(default_factory=trio.Event)


class Plugins:
    """The character's plugins as one object: what is lent, and calling it."""

    def __init__(self, plugins: Sequence[_Plugin]) -> None:
        self._plugins = {plugin.settings.name: plugin for plugin in plugins}

    def lent(self) -> tuple[LentTool, ...]:
        """What is lent right now: the listed tools of running servers only."""
        return tuple(
            tool
            for plugin in self._plugins.values()
            if plugin.state == "running"
            for tool in plugin.lent
        )

    def find(self, name: str) -> LentTool | None:
        return next((tool for tool in self.lent() if tool.name == name), None)

    async def call(
        self, name: str, arguments: dict[str, Any], *, timeout_s: float, max_result_bytes: int
    ) -> ToolOutcome:
        """Run a lent tool. Raises :class:`PluginError` (``reason``: not_lent,
        not_running, timeout, too_large, crashed, failed). Approval of ``ask`` tools is
        the caller's business, before this."""
        tool = self.find(name)
        if tool is None:
            raise PluginError(f"no lent tool {name!r}", reason="not_lent")
        plugin = self._plugins[tool.plugin]
        client, process = plugin.client, plugin.process
        if client is None or process is None or plugin.state != "running":
            raise PluginError(f"plugin {tool.plugin} is not running", reason="not_running")
        result: types.CallToolResult | None = None
        with trio.move_on_after(timeout_s):
            try:
                result = await client.call_tool(tool.tool, arguments)
            except Exception as exc:
                reason = await _why_failed(process, exc)
                detail = clean_log_line(str(exc).encode()) or type(exc).__name__
                raise PluginError(f"{name}: {detail}", reason=reason) from None
        if result is None:
            raise PluginError(f"{name}: no answer in {timeout_s:g} s", reason="timeout")
        text = outcome_text(result)
        size = len(text.encode("utf-8"))
        if size > max_result_bytes:
            raise PluginError(
                f"{name}: result of {size} bytes over {max_result_bytes}", reason="too_large"
            )
        return ToolOutcome(text=text, is_error=bool(result.is_error), size=size)

    def describe(self) -> list[dict[str, Any]]:
        """For status: each plugin's state, restarts, sandbox and what it lends."""
        return [
            {
                "name": name,
                "state": plugin.state,
                "restarts": plugin.restarts,
                "sandboxed": plugin.sandboxed,
                "sandbox": plugin.enforced,
                "uid": plugin.uid,
                "handshake": "legacy" if plugin.legacy else "auto",
                "protocol_version": plugin.protocol_version,
                "last_exit": plugin.last_exit,
                "start_s": plugin.start_s,
                "lent": [tool.name for tool in plugin.lent] if plugin.state == "running" else [],
                "pid": plugin.process.pid if plugin.process is not None else None,
            }
            for name, plugin in self._plugins.items()
        ]


@asynccontextmanager
async def open_plugins(
    settings: Sequence[SouvenirSettings],
    data_dir: Path,
    *,
    events: EventLog | None,
    limits: SandboxLimits = DEFAULT_LIMITS,
    backoff: Backoff = DEFAULT_BACKOFF,
) -> AsyncIterator[Plugins]:
    """Start all plugins, supervise them while the body runs, kill them all at exit."""
    names = souvenir_names(settings)
    plugins = [_Plugin(s) for s in settings]
    supervisor = _Supervisor(names, data_dir, events, limits, backoff)
    async with trio.open_nursery() as nursery:
        for plugin in plugins:
            nursery.start_soon(supervisor.run, plugin)
        for plugin in plugins:
            await plugin.tried.wait()
        try:
            yield Plugins(plugins)
        finally:
            nursery.cancel_scope.cancel()


@dataclass
class _Supervisor:
    names: dict[tuple[str, str], str]
    data_dir: Path
    events: EventLog | None
    limits: SandboxLimits
    backoff: Backoff

    def _emit(self, event: str, **fields: Any) -> None:
        if self.events is not None:
            self.events.emit(event, **fields)

    async def run(self, plugin: _Plugin) -> None:
        try:
            await self._supervise(plugin)
        finally:
            if plugin.state != "refused":
                plugin.state = "stopped"
            plugin.client, plugin.process, plugin.lent = None, None, ()
            plugin.tried.set()

    async def _supervise(self, plugin: _Plugin) -> None:
        name = plugin.settings.name
        delay = self.backoff.first_s
        while True:
            try:
                plan = await trio.to_thread.run_sync(
                    plan_launch, plugin.settings, self.data_dir, self.limits
                )
            except SandboxUnavailable as exc:
                plugin.state, plugin.last_exit = "refused", exc.reason
                logger.error("%s; not started (set unsandboxed to allow it)", exc)
                self._emit("plugin_refused", plugin=name, reason=exc.reason)
                plugin.tried.set()
                return
            except PluginError as exc:
                reason = exc.reason
                logger.error("plugin %s cannot start: %s", name, exc)
            else:
                plugin.sandboxed, plugin.enforced, plugin.uid = (
                    plan.sandboxed,
                    plan.enforced,
                    plan.uid,
                )
                if not plan.sandboxed:
                    logger.warning("plugin %s runs %s", name, plan.enforced)
                reason = await self._run_once(plugin, plan)
            plugin.state, plugin.last_exit = "backoff", reason
            plugin.client, plugin.process, plugin.lent = None, None, ()
            plugin.tried.set()
            since = plugin.running_since
            if since is not None and trio.current_time() - since >= STABLE_S:
                delay = self.backoff.first_s
            plugin.running_since = None
            logger.warning("plugin %s exited (%s); restart in %g s", name, reason, delay)
            self._emit(
                "plugin_exited", plugin=name, reason=reason, restarts=plugin.restarts, retry_s=delay
            )
            await trio.sleep(delay)
            delay = min(delay * 2, self.backoff.max_s)
            plugin.restarts += 1
            plugin.state = "starting"

    async def _run_once(self, plugin: _Plugin, plan: LaunchPlan) -> str:
        if not plugin.legacy:
            reason = await self._session(plugin, plan, "auto")
            if reason != "handshake failed":
                return reason
            logger.info("plugin %s: modern handshake failed, trying legacy", plugin.settings.name)
        return await self._session(plugin, plan, "legacy")

    async def _session(self, plugin: _Plugin, plan: LaunchPlan, mode: str) -> str:
        name = plugin.settings.name
        began = trio.current_time()
        try:
            process = spawn(plan.argv, plan.env)
        except OSError as exc:
            return f"spawn failed ({exc.strerror})"
        plugin.process = process
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pump_stderr, process.stderr, name)
                try:
                    return await self._serve(plugin, process, mode, began)
                finally:
                    await stop(process)
                    nursery.cancel_scope.cancel()
        finally:
            kill_tree(process)
            await process.aclose()

    async def _serve(self, plugin: _Plugin, process: PluginProcess, mode: str, began: float) -> str:
        name = plugin.settings.name
        ready = False
        # One scope around the whole client: its deadline bounds the handshake and is
        # lifted once the tools are listed (a scope may not end inside the client's own
        # task group, so a fail_after around the handshake alone is not possible).
        handshake = trio.CancelScope(deadline=trio.current_time() + HANDSHAKE_S)
        try:
            with handshake:
                client = Client(process_transport(process, name), mode=mode, cache=None)
                async with client:
                    offered = await _list_tools(client)
                    handshake.deadline = math.inf
                    ready = True
                    plugin.legacy = mode == "legacy"
                    self._running(plugin, client, offered, began)
                    await process.wait()
                    plugin.state, plugin.client = "backoff", None
        except Exception as exc:
            if ready:
                return exit_reason(process.returncode)
            ended = (
                f" ({exit_reason(process.returncode)})" if process.returncode is not None else ""
            )
            logger.warning("plugin %s: %s handshake failed%s: %r", name, mode, ended, exc)
            return "handshake failed"
        if not ready:
            logger.warning("plugin %s: %s handshake timed out", name, mode)
            return "handshake failed"
        return exit_reason(process.returncode)

    def _running(
        self, plugin: _Plugin, client: Client, offered: list[types.Tool], began: float
    ) -> None:
        name = plugin.settings.name
        plugin.lent = lent_tools(plugin.settings, offered, self.names)
        plugin.client, plugin.state = client, "running"
        plugin.protocol_version = client.protocol_version
        plugin.start_s = round(trio.current_time() - began, 3)
        plugin.running_since = trio.current_time()
        plugin.tried.set()
        listed = {tool for tool, _ in plugin.settings.tools}
        unlent = sorted(listed - {tool.tool for tool in plugin.lent})
        logger.info(
            "plugin %s running (%s, protocol %s, %.2f s); lends %s; listed but not lent: %s",
            name,
            plugin.enforced,
            client.protocol_version,
            plugin.start_s,
            [tool.name for tool in plugin.lent] or "nothing",
            unlent or "none",
        )
        self._emit(
            "plugin_started",
            plugin=name,
            sandboxed=plugin.sandboxed,
            lent=[tool.name for tool in plugin.lent],
            start_s=plugin.start_s,
            restarts=plugin.restarts,
        )


async def _why_failed(process: PluginProcess, exc: Exception) -> str:
    """ "crashed" when the server went away under the call, "failed" when it answered
    with an error (or the client refused its answer)."""
    if isinstance(exc, MCPError) and exc.code != CONNECTION_CLOSED:
        return "failed"
    with trio.move_on_after(CRASH_GRACE_S):
        await process.wait()
    return "crashed" if process.returncode is not None else "failed"


async def _list_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor or len(tools) >= MAX_TOOLS:
            return tools[:MAX_TOOLS]


__all__ = ["Backoff", "Plugins", "open_plugins"]
