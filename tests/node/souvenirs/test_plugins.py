"""Plugins: real MCP servers from PyPI started in the sandbox, what they lend, calling
them, the legacy handshake, and refusing to run unsandboxed unless the owner says so."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import trio

from node.config.settings import SouvenirSettings
from node.souvenirs import PluginError, open_plugins
from node.souvenirs.sandbox import plugin_uid
from tests.support.plugin_servers import (
    LEGACY,
    PYTHON,
    SAFE_DIRECTORY_ENV,
    Recorded,
    make_repo,
    needs_sandbox,
)

TIME = SouvenirSettings(
    name="time",
    command=("mcp-server-time", "--local-timezone", "Asia/Tokyo"),
    tools=(("get_current_time", "lend"), ("convert_time", "ask"), ("no_such_tool", "lend")),
)


@needs_sandbox
async def test_mcp_server_time_is_lent_and_called_in_the_sandbox(tmp_path: Path) -> None:
    events = Recorded()
    async with open_plugins([TIME], tmp_path, events=events.log) as plugins:
        (status,) = plugins.describe()
        assert status["state"] == "running" and status["sandboxed"] is True
        assert status["uid"] == plugin_uid(tmp_path, "time")
        print(f"sandboxed start of mcp-server-time: {status['start_s']:.2f} s")
        lent = {tool.name: tool for tool in plugins.lent()}
        assert sorted(lent) == ["convert_time", "get_current_time"]
        now = lent["get_current_time"]
        assert (now.plugin, now.tool, now.read_only, now.ask) == (
            "time",
            "get_current_time",
            True,
            False,
        )
        assert "timezone" in now.input_schema["properties"]
        assert len(now.description) <= 500
        assert lent["convert_time"].ask  # "ask" on a read-only tool still asks
        assert plugins.find("get_current_time") == now and plugins.find("nope") is None

        outcome = await plugins.call(
            "get_current_time", {"timezone": "Europe/Paris"}, timeout_s=10, max_result_bytes=4096
        )
        assert not outcome.is_error
        assert json.loads(outcome.text)["timezone"] == "Europe/Paris"
        assert outcome.size == len(outcome.text.encode())

        bad = await plugins.call(
            "get_current_time", {"timezone": "Mars/Olympus"}, timeout_s=10, max_result_bytes=4096
        )
        assert bad.is_error  # the server's own error is passed through, not raised

        with pytest.raises(PluginError) as caught:
            await plugins.call(
                "get_current_time", {"timezone": "UTC"}, timeout_s=10, max_result_bytes=20
            )
        assert caught.value.reason == "too_large"
        with pytest.raises(PluginError) as caught:
            await plugins.call("no_such_tool", {}, timeout_s=10, max_result_bytes=4096)
        assert caught.value.reason == "not_lent"
    assert plugins.lent() == ()  # killed at exit
    ((_, started),) = events.named("plugin_started")
    assert started["plugin"] == "time" and started["sandboxed"] is True


@needs_sandbox
async def test_mcp_server_git_lends_read_only_tools_and_write_tools_only_when_asked(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # The write tool must be able to write: the repository is the plugin uid's.
    uid = plugin_uid(data_dir, "git")
    await trio.run_process(["chown", "-R", f"{uid}:{uid}", str(repo)])
    git = SouvenirSettings(
        name="git",
        command=("mcp-server-git", "--repository", str(repo)),
        tools=(
            ("git_status", "lend"),
            ("git_log", "lend"),
            ("git_show", "lend"),
            ("git_add", "lend"),  # a write tool listed "lend": not lent
            ("git_create_branch", "ask"),  # a write tool listed "ask": lent, asks
        ),  # git_reset (destructive) is not listed: never lent
        env=SAFE_DIRECTORY_ENV,
        writable_paths=(str(repo),),
    )
    async with open_plugins([git], data_dir, events=None) as plugins:
        lent = {tool.name: tool for tool in plugins.lent()}
        assert sorted(lent) == ["git_create_branch", "git_log", "git_show", "git_status"]
        assert all(
            lent[name].read_only and not lent[name].ask for name in ("git_log", "git_status")
        )
        branch = lent["git_create_branch"]
        assert branch.ask and not branch.read_only

        log = await plugins.call(
            "git_log", {"repo_path": str(repo)}, timeout_s=20, max_result_bytes=65536
        )
        assert not log.is_error and "first commit" in log.text
        status = await plugins.call(
            "git_status", {"repo_path": str(repo)}, timeout_s=20, max_result_bytes=65536
        )
        assert "notes.txt" in status.text
        # Approval is the caller's business; once approved the write tool does write.
        made = await plugins.call(
            "git_create_branch",
            {"repo_path": str(repo), "branch_name": "souvenir"},
            timeout_s=20,
            max_result_bytes=65536,
        )
        assert not made.is_error, made.text
    branches = await trio.run_process(
        ["git", "-c", "safe.directory=*", "-C", str(repo), "branch", "--list", "souvenir"],
        capture_stdout=True,
    )
    assert b"souvenir" in branches.stdout


@needs_sandbox
async def test_a_server_that_fails_the_modern_handshake_is_started_again_as_legacy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stand-in for a 1.x-generation server (see its docstring): it dies on the
    ``server/discover`` probe, so ``mode="auto"`` fails and ``mode="legacy"`` works."""
    caplog.set_level(logging.INFO, logger="node.souvenirs")
    legacy = SouvenirSettings(
        name="legacy",
        command=(PYTHON, str(LEGACY)),
        tools=(("echo", "lend"),),
        paths=(str(LEGACY.parent),),
    )
    async with open_plugins([legacy], tmp_path, events=None) as plugins:
        (status,) = plugins.describe()
        assert status["state"] == "running" and status["handshake"] == "legacy"
        assert status["protocol_version"] == "2025-06-18"
        assert status["restarts"] == 0  # the fallback is part of one start
        outcome = await plugins.call("echo", {"text": "hi"}, timeout_s=10, max_result_bytes=100)
        assert outcome.text == "hi"
    messages = [record.getMessage() for record in caplog.records]
    assert any("modern handshake failed, trying legacy" in m for m in messages)
    # its stderr reached our log
    assert any("unexpected 'server/discover' before initialize" in m for m in messages)


async def test_without_a_sandbox_a_plugin_is_refused_unless_the_owner_allows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="node.souvenirs")
    monkeypatch.setattr("node.souvenirs.sandbox.sandbox_problem", lambda: "missing bwrap (test)")
    allowed = SouvenirSettings(
        name="allowed", command=TIME.command, tools=TIME.tools, unsandboxed=True
    )
    events = Recorded()
    async with open_plugins([TIME, allowed], tmp_path, events=events.log) as plugins:
        refused, running = plugins.describe()
        assert refused["state"] == "refused" and refused["last_exit"] == "no_sandbox"
        assert running["state"] == "running" and running["sandboxed"] is False
        assert "UNSANDBOXED" in running["sandbox"]
        assert {tool.plugin for tool in plugins.lent()} == {"allowed"}
        outcome = await plugins.call(
            "allowed_get_current_time", {"timezone": "UTC"}, timeout_s=10, max_result_bytes=4096
        )
        assert json.loads(outcome.text)["timezone"] == "UTC"
    ((_, refusal),) = events.named("plugin_refused")
    assert refusal == {"plugin": "time", "reason": "no_sandbox"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("plugin allowed runs UNSANDBOXED" in w for w in warnings)


@needs_sandbox
async def test_a_plugin_is_forked_on_the_trio_thread_so_it_outlives_worker_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bwrap's --die-with-parent is PR_SET_PDEATHSIG: the plugin dies with the *thread*
    that forked it. trio forks subprocesses on worker threads and ends them after 10 s
    idle, which killed every plugin 10 s after it started (seen at a party). The fork
    must happen on the trio thread, which lives as long as the node."""
    forked_on: list[int] = []
    real_popen = subprocess.Popen

    def recording_popen(*args: Any, **kwargs: Any) -> Any:
        forked_on.append(threading.get_ident())
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    async with open_plugins([TIME], tmp_path, events=None) as plugins:
        assert plugins.describe()[0]["state"] == "running"
    assert forked_on == [threading.get_ident()]
