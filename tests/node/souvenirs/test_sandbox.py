"""The sandbox: a hostile plugin tries to reach the network, write outside its tmp, read
the character's key file, fork-bomb, allocate 4 GiB and loop forever; each is contained,
the runner stays usable, and a dead plugin is restarted with backoff."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from node.config.settings import SouvenirSettings
from node.souvenirs import Backoff, PluginError, Plugins, SandboxLimits, open_plugins
from node.souvenirs.sandbox import plan_launch, plugin_uid, resolve_command, runtime_roots
from tests.support.plugin_servers import HOSTILE, PYTHON, Recorded, needs_sandbox, open_up
from tests.support.waiting import wait_until_async

HOSTILE_TOOLS = (
    "ping",
    "whoami",
    "connect",
    "write",
    "read",
    "fork_bomb",
    "allocate",
    "spin",
    "crash",
)
LIMITS = SandboxLimits(cpu_s=2, processes=32)
BACKOFF = Backoff(first_s=0.5, max_s=4.0)


async def ask(plugins: Plugins, tool: str, **arguments: object) -> str:
    outcome = await plugins.call(tool, dict(arguments), timeout_s=20, max_result_bytes=4096)
    return outcome.text


def restarted(plugins: Plugins, name: str, restarts: int) -> bool:
    status = next(s for s in plugins.describe() if s["name"] == name)
    return bool(status["state"] == "running" and status["restarts"] >= restarts)


def _restarted_check(plugins: Plugins, restarts: int) -> Callable[[], bool]:
    return lambda: restarted(plugins, "hostile", restarts)


@needs_sandbox
async def test_a_hostile_plugin_is_contained_and_restarted_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="node.souvenirs")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    open_up(tmp_path)
    open_up(data_dir)  # only the key file's own 0600 protects it
    key = data_dir / "identity.key"
    key.write_bytes(b"secret key material")
    key.chmod(0o600)
    hostile = SouvenirSettings(
        name="hostile",
        command=(PYTHON, str(HOSTILE)),
        tools=tuple((tool, "lend") for tool in HOSTILE_TOOLS),
        paths=(str(HOSTILE.parent), str(data_dir)),  # it may even see the data directory
    )
    time = SouvenirSettings(
        name="time", command=("mcp-server-time",), tools=(("get_current_time", "lend"),)
    )
    events = Recorded()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]

    async with open_plugins(
        [hostile, time], data_dir, events=events.log, limits=LIMITS, backoff=BACKOFF
    ) as plugins:
        assert {tool.plugin for tool in plugins.lent()} == {"hostile", "time"}
        uid = plugin_uid(data_dir, "hostile")
        assert await ask(plugins, "whoami") == f"uid={uid} gid={uid} groups=[]"

        # network: the node's loopback listener is not reachable, nor anything else
        assert (await ask(plugins, "connect", host="127.0.0.1", port=port)).startswith("blocked")
        assert (await ask(plugins, "connect", host="1.1.1.1", port=53)).startswith("blocked")
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection ever arrived

        # files: read-only everywhere but a private /tmp
        assert await ask(plugins, "write", path="/tmp/inside") == "wrote"
        assert not await trio.Path("/tmp/inside").exists()
        for outside in (str(data_dir / "planted"), str(HOSTILE.parent / "planted"), "/usr/planted"):
            assert (await ask(plugins, "write", path=outside)).startswith("blocked")
            assert not await trio.Path(outside).exists()
        assert await ask(plugins, "read", path=str(key)) == "blocked: PermissionError errno=13"
        assert (await ask(plugins, "read", path="/etc/shadow")).startswith("blocked")

        # processes and memory
        forks = await ask(plugins, "fork_bomb")
        count = int(forks.split()[0].removeprefix("forks="))
        assert count < LIMITS.processes and "errno=11" in forks, forks
        assert await ask(plugins, "allocate", gib=4) == "blocked: MemoryError"
        assert await ask(plugins, "ping") == "pong"  # still usable after all that

        # a busy loop: the call times out, the CPU limit kills it, it comes back
        with pytest.raises(PluginError) as caught:
            await plugins.call("spin", {}, timeout_s=0.5, max_result_bytes=100)
        assert caught.value.reason == "timeout"
        await wait_until_async(lambda: restarted(plugins, "hostile", 1), 30, "restart after spin")
        exits = events.named("plugin_exited")
        assert exits[0][1]["reason"] == "cpu limit (SIGXCPU)"
        assert await ask(plugins, "ping") == "pong"
        # the other plugin never noticed
        assert "datetime" in await ask(plugins, "get_current_time", timezone="UTC")

        # crashing again and again: the wait doubles
        for restarts in (2, 3):
            with pytest.raises(PluginError) as caught:
                await plugins.call("crash", {}, timeout_s=10, max_result_bytes=100)
            assert caught.value.reason == "crashed"
            with pytest.raises(PluginError) as caught:
                await plugins.call("ping", {}, timeout_s=10, max_result_bytes=100)
            assert caught.value.reason in ("not_lent", "not_running")
            await wait_until_async(_restarted_check(plugins, restarts), 30, f"restart {restarts}")
    exited = [fields for _, fields in events.named("plugin_exited")]
    assert [e["retry_s"] for e in exited] == [0.5, 1.0, 2.0]
    assert [e["reason"] for e in exited][1:] == ["exit 3", "exit 3"]
    assert all("arguments" not in e for e in exited)
    starts = [at for at, fields in events.named("plugin_started") if fields["plugin"] == "hostile"]
    exit_times = [at for at, fields in events.named("plugin_exited")]
    gaps = [start - exited for start, exited in zip(starts[1:], exit_times, strict=True)]
    assert all(gap >= wait for gap, wait in zip(gaps, [0.5, 1.0, 2.0], strict=True)), gaps
    listener.close()
    # stderr reached the log, scrubbed of control characters
    logged = [r.getMessage() for r in caplog.records if "crashing on purpose" in r.getMessage()]
    assert logged and all("\x1b" not in line for line in logged)


@needs_sandbox
def test_the_sandboxed_command_line(tmp_path: Path) -> None:
    offline = SouvenirSettings(name="time", command=("mcp-server-time",), paths=(str(tmp_path),))
    plan = plan_launch(offline, tmp_path, LIMITS)
    argv = list(plan.argv)
    assert plan.sandboxed and argv[0] == "bwrap" and "--unshare-net" in argv
    uid = plugin_uid(tmp_path, "time")
    assert argv[argv.index("setpriv") + 1 : argv.index("setpriv") + 3] == [
        f"--reuid={uid}",
        f"--regid={uid}",
    ]
    assert "--bounding-set=-all" in argv and "--no-new-privs" in argv
    assert "--cpu=2:7" in argv and "--nproc=32" in argv
    assert argv[-1] == str(resolve_command("mcp-server-time"))
    online = plan_launch(
        SouvenirSettings(name="net", command=("mcp-server-time",), network=True), tmp_path
    )
    assert "--unshare-net" not in online.argv and "/etc/resolv.conf" in online.argv
    with pytest.raises(PluginError) as caught:
        plan_launch(
            SouvenirSettings(name="x", command=("mcp-server-time",), paths=("/nope",)), tmp_path
        )
    assert caught.value.reason == "bad_path"
    with pytest.raises(PluginError) as caught:
        plan_launch(SouvenirSettings(name="x", command=("no-such-command-here",)), tmp_path)
    assert caught.value.reason == "not_found"


def test_pyenv_shims_resolve_to_the_real_script_and_its_interpreter_is_bound() -> None:
    script = resolve_command("mcp-server-time")
    assert "shims" not in script.parts and script.is_file()
    roots = runtime_roots(script)
    prefix = Path(sys.base_prefix)
    if not prefix.is_relative_to("/usr"):
        assert prefix in roots
    assert not any(root == Path("/") or Path.home() == root for root in roots)


def test_plugin_uids_are_stable_and_differ_per_plugin(tmp_path: Path) -> None:
    assert plugin_uid(tmp_path, "a") == plugin_uid(tmp_path, "a")
    uids = {plugin_uid(tmp_path, name) for name in ("a", "b", "c", "time", "git")}
    assert len(uids) == 5 and all(61000 <= uid < 65000 for uid in uids)
