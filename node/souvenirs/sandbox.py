"""How a plugin's process is confined: the command line that starts it.

Sandboxed (the node runs as root and ``bwrap``, ``setpriv`` and ``prlimit`` are present)::

    bwrap --die-with-parent --new-session --unshare-ipc --unshare-pid --unshare-uts
          --unshare-cgroup-try [--unshare-net unless network] --ro-bind /usr /usr ...
          --proc /proc --dev /dev --perms 1777 --tmpfs /tmp --clearenv --setenv ...
      -- setpriv --reuid=U --regid=U --clear-groups --inh-caps=-all --bounding-set=-all
                 --no-new-privs
      -- prlimit --as --cpu --nofile --fsize --nproc -- argv

bwrap runs first, as root, because the binds must be opened by a user who can read them:
the interpreter here lives under ``/root/.pyenv`` and ``/root`` is 0700, so an
unprivileged bwrap (FIELD-NOTES' order: setpriv first) cannot even find the source
(measured: "Can't find source path: Permission denied", also through ``--ro-bind-fd``).
bwrap as root builds the mount tree without a user namespace, then ``setpriv`` inside it
drops to the plugin's own uid with no capabilities (bounding set emptied, no_new_privs),
and ``prlimit`` sets the limits for that uid (RLIMIT_NPROC counts per uid, which is why
every plugin has its own). The plugin sees only /usr, its interpreter's prefix, the paths
the owner listed, a private tmpfs /tmp, /proc and a minimal /dev; killing bwrap kills its
pid namespace.

Unsandboxed (only when the owner sets ``unsandboxed``): ``prlimit`` limits if ``prlimit``
exists, nothing else — same uid as the node, same filesystem, same network.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from node.config.settings import SouvenirSettings
from node.souvenirs.plugin_errors import PluginError, SandboxUnavailable

UID_BASE = 61000
UID_SPAN = 4000
"""Plugin uids are drawn from [UID_BASE, UID_BASE + UID_SPAN): unused by Debian's
system and user ranges, below the nobody/nogroup ids."""

TOOLS = ("bwrap", "setpriv", "prlimit")
_ETC_FILES = ("/etc/localtime", "/etc/timezone", "/etc/ssl", "/etc/ca-certificates")
_ETC_NETWORK = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf")


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Per-process resource limits (prlimit) of every plugin."""

    address_space_bytes: int = 512 * 1024 * 1024
    cpu_s: int = 60
    """CPU seconds over the process's life: a busy loop is killed (SIGXCPU) and restarted."""
    open_files: int = 256
    file_size_bytes: int = 16 * 1024 * 1024
    processes: int = 64
    """RLIMIT_NPROC for the plugin's uid (threads count); only enforced in the sandbox."""


DEFAULT_LIMITS = SandboxLimits()


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """What to execute for one plugin, and what that enforces."""

    argv: tuple[str, ...]
    env: dict[str, str]
    sandboxed: bool
    uid: int | None
    """The plugin's uid when sandboxed; None: the node's own."""
    enforced: str
    """One line for status and logs: what confines this plugin."""


def sandbox_problem() -> str | None:
    """Why the sandbox cannot be built here, or None if it can."""
    if os.geteuid() != 0:
        return "the node is not running as root (the sandbox switches to a plugin uid)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install bubblewrap util-linux)"
    return None


def plugin_uid(data_dir: Path, name: str) -> int:
    """A stable uid for this character's plugin: the same across restarts (files it wrote
    to writable paths stay its own), distinct per plugin so RLIMIT_NPROC is per plugin."""
    digest = hashlib.sha256(f"{data_dir.resolve()}\0{name}".encode()).digest()
    return UID_BASE + int.from_bytes(digest[:4], "big") % UID_SPAN


def plan_launch(
    settings: SouvenirSettings, data_dir: Path, limits: SandboxLimits = DEFAULT_LIMITS
) -> LaunchPlan:
    """The command line for ``settings``: sandboxed when possible; unsandboxed only when
    the owner allows it; otherwise :class:`SandboxUnavailable`. Blocking (it may ask
    pyenv where a shim points): call it from a thread."""
    exe = resolve_command(settings.command[0])
    argv = (str(exe), *settings.command[1:])
    problem = sandbox_problem()
    if problem is None:
        uid = plugin_uid(data_dir, settings.name)
        return LaunchPlan(
            argv=(*_bwrap(settings, exe, data_dir), *_setpriv(uid), *_prlimit(limits, True), *argv),
            env={"PATH": "/usr/bin:/bin"},
            sandboxed=True,
            uid=uid,
            enforced=(
                f"uid {uid}, {'network' if settings.network else 'no network'}, read-only "
                "files but a private /tmp, prlimit as/cpu/nofile/fsize/nproc, pid namespace"
            ),
        )
    if not settings.unsandboxed:
        raise SandboxUnavailable(f"plugin {settings.name}: sandbox unavailable: {problem}")
    prefix: tuple[str, ...] = ()
    enforced = f"UNSANDBOXED ({problem}): node's uid, files and network"
    if shutil.which("prlimit") is not None:
        prefix = tuple(_prlimit(limits, False))
        enforced += "; prlimit as/cpu/nofile/fsize"
    env = {**_base_env(exe), **dict(settings.env)}
    return LaunchPlan((*prefix, *argv), env, sandboxed=False, uid=None, enforced=enforced)


def resolve_command(command: str) -> Path:
    """argv[0] as a real file: found on PATH, and a pyenv shim (a bash script that execs
    ``pyenv exec``, which the sandbox cannot run) replaced by the script it stands for."""
    if "/" in command:
        found = command if os.path.isabs(command) else None
    else:
        found = shutil.which(command)
    if found is None or not os.path.isfile(found):
        raise PluginError(f"command not found: {command!r}", reason="not_found")
    path = Path(found)
    if path.parent.name == "shims" and _is_pyenv_shim(path):
        path = _unshim(path)
    return path.resolve()


def _is_pyenv_shim(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(1024)
    except OSError:
        return False
    return head.startswith(b"#!") and b"pyenv" in head


def _unshim(shim: Path) -> Path:
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        candidate = Path(prefix) / "bin" / shim.name
        if candidate.is_file():
            return candidate
    try:
        out = subprocess.run(
            ["pyenv", "which", shim.name], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    if not out:
        raise PluginError(f"cannot resolve the pyenv shim {shim}", reason="not_found")
    return Path(out)


def runtime_roots(exe: Path) -> list[Path]:
    """The directories the executable needs to run, bound read-only at the same path: its
    prefix (``.../bin/x`` → ``...``), its ``#!`` interpreter's prefix, and a venv's base.
    Everything under /usr is bound anyway."""
    roots: list[Path] = []
    targets = [exe]
    interpreter = _shebang(exe)
    if interpreter is not None:
        targets.append(interpreter)
    for target in targets:
        root = _prefix_of(target)
        roots.append(root)
        cfg = root / "pyvenv.cfg"
        if cfg.is_file():
            for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    roots.append(_prefix_of(Path(value.strip()).resolve() / "python"))
    unique: list[Path] = []
    for root in roots:
        if _under(root, Path("/usr")) or root in unique:
            continue
        unique.append(root)
    return unique


def _shebang(exe: Path) -> Path | None:
    try:
        with exe.open("rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    parts = first[2:].decode("utf-8", "replace").split()
    if not parts:
        return None
    if parts[0].endswith("/env") and len(parts) > 1:
        found = shutil.which(parts[1])
        return Path(found).resolve() if found else None
    return Path(parts[0]).resolve()


def _prefix_of(path: Path) -> Path:
    """``/x/bin/tool`` → ``/x`` when ``/x`` looks like an install prefix (it has lib/ or
    pyvenv.cfg); otherwise just the tool's own directory (never a home directory)."""
    parent = path.parent
    if parent.name == "bin":
        prefix = parent.parent
        if (prefix / "lib").is_dir() or (prefix / "pyvenv.cfg").is_file():
            return prefix
    return parent


def _under(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def _world_readable(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & need == need


def _check_readable(roots: list[Path], exe: Path, data_dir: Path) -> None:
    """The plugin's uid reads these through the binds: refuse early with a clear reason
    rather than a bare "Permission denied" from inside the sandbox."""
    for root in roots:
        if _under(data_dir.resolve(), root):
            raise PluginError(
                f"the command lives in {root}, which holds the data directory",
                reason="bad_path",
            )
    for path in (*roots, exe, *(p for p in exe.parents if any(_under(p, r) for r in roots))):
        if not _world_readable(path):
            raise PluginError(
                f"{path} is not world-readable: the plugin's uid could not run the command",
                reason="bad_path",
            )


def _bwrap(settings: SouvenirSettings, exe: Path, data_dir: Path) -> list[str]:
    roots = runtime_roots(exe)
    _check_readable(roots, exe, data_dir)
    args = ["bwrap", "--die-with-parent", "--new-session"]
    args += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    if not settings.network:
        args.append("--unshare-net")
    args += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    args += ["--perms", "0755", "--dir", "/etc"]
    for etc in (*_ETC_FILES, *(_ETC_NETWORK if settings.network else ())):
        args += ["--ro-bind-try", etc, etc]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
    binds = [(str(root), "--ro-bind") for root in roots]
    binds += [(p, "--ro-bind") for p in settings.paths]
    binds += [(p, "--bind") for p in settings.writable_paths]
    made = {"/", "/tmp"}
    bound = [Path("/usr")]
    for path, kind in sorted(binds, key=lambda item: item[0].count("/")):
        if not os.path.exists(path):
            raise PluginError(f"plugin {settings.name}: no such path {path}", reason="bad_path")
        # bwrap (as root) creates missing mount points 0700: the plugin's uid could not
        # walk through them, so create each ancestor 0755 first (those inside a bind
        # already exist, with the host's modes).
        for parent in reversed(Path(path).parents):
            if str(parent) in made or any(_under(parent, top) for top in bound):
                continue
            args += ["--perms", "0755", "--dir", str(parent)]
            made.add(str(parent))
        args += [kind, path, path]
        bound.append(Path(path))
    args += ["--chdir", "/tmp", "--clearenv"]
    for key, value in _sandbox_env(exe, roots, settings).items():
        args += ["--setenv", key, value]
    args.append("--")
    return args


def _sandbox_env(exe: Path, roots: list[Path], settings: SouvenirSettings) -> dict[str, str]:
    bins = [str(root / "bin") for root in roots if (root / "bin").is_dir()]
    return {
        "PATH": ":".join(dict.fromkeys([*bins, str(exe.parent), "/usr/local/bin", "/usr/bin"])),
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        **dict(settings.env),
    }


def _base_env(exe: Path) -> dict[str, str]:
    return {
        "PATH": ":".join(dict.fromkeys([str(exe.parent), "/usr/local/bin", "/usr/bin", "/bin"])),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
    }


def _setpriv(uid: int) -> list[str]:
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def _prlimit(limits: SandboxLimits, nproc: bool) -> list[str]:
    args = [
        "prlimit",
        f"--as={limits.address_space_bytes}",
        f"--cpu={limits.cpu_s}:{limits.cpu_s + 5}",
        "--core=0",
        f"--nofile={limits.open_files}",
        f"--fsize={limits.file_size_bytes}",
    ]
    if nproc:
        # Only under the plugin's own uid: for the node's uid it would count (and starve)
        # every process the owner runs, and root ignores it anyway.
        args.append(f"--nproc={limits.processes}")
    return [*args, "--"]


__all__ = [
    "DEFAULT_LIMITS",
    "LaunchPlan",
    "SandboxLimits",
    "plan_launch",
    "plugin_uid",
    "resolve_command",
    "runtime_roots",
    "sandbox_problem",
]
