"""The machine itself: Python, the installed packages, the souvenir sandbox."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import sys
from typing import Final

from keys.errors import ConfigError
from node.cli.doctor.report import Check, fail, ok, skip
from node.cli.doctor.target import Target
from node.souvenirs import all_souvenirs, sandbox_problem

DISTRIBUTION: Final = "roomverse"
SHOWN: Final = ("roomverse", "libp2p", "trio", "mcp", "openai", "llama-cpp-python")
"""Versions worth reading in a bug report (llama-cpp-python only when installed)."""
MIN_PYTHON: Final = (3, 11)
_REQUIREMENT: Final = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*([^;]*)(;.*)?$"
)


def python_check() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] < MIN_PYTHON:
        wanted = ".".join(map(str, MIN_PYTHON))
        return fail("python", f"{version} is too old", f"install Python {wanted} or newer")
    return ok("python", f"{version} ({sys.executable})")


def packages_check() -> Check:
    """Every requirement of the ``roomverse`` distribution installed, and an exact pin
    (``libp2p==0.8.1``: the workarounds in the adapter are for that version) matched.
    Requirements of extras (the embedded engine's) are left to the engine checks."""
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return fail("packages", "roomverse is not installed", "pip install -e . (in the repo)")
    wrong: list[str] = []
    for text in requires:
        match = _REQUIREMENT.match(text)
        if match is None or "extra" in (match.group(3) or ""):
            continue
        name, spec = match.group(1), match.group(2).strip()
        installed = _version(name)
        pinned = spec.removeprefix("==").strip() if spec.startswith("==") else None
        if installed is None:
            wrong.append(f"{name} missing")
        elif pinned is not None and "," not in pinned and installed != pinned:
            wrong.append(f"{name} {installed} (wants {pinned})")
    shown = ", ".join(f"{name} {_version(name)}" for name in SHOWN if _version(name) is not None)
    if wrong:
        return fail("packages", "; ".join(wrong), "pip install -e . (in the repo) to fix them")
    return ok("packages", shown)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def sandbox_check(target: Target) -> Check:
    """Only a character that lends souvenirs needs the sandbox."""
    if target.config is None:
        return skip("sandbox", "no character file (pass --character)")
    try:
        plugins = all_souvenirs(target.config.souvenirs, target.data_dir)
    except ConfigError as exc:
        return fail("sandbox", f"a plugin file is unusable: {exc}", "correct or remove that file")
    if not plugins:
        return skip("sandbox", "this character lends no souvenirs")
    problem = sandbox_problem()
    if problem is None:
        return ok("sandbox", f"bubblewrap sandbox available for {len(plugins)} souvenir plugin(s)")
    caged = [plugin.name for plugin in plugins if not plugin.unsandboxed]
    if not caged:
        return ok("sandbox", f"unavailable ({problem}); the owner lets every plugin run without")
    fix = "run the node as root" if "root" in problem else "apt-get install bubblewrap util-linux"
    return fail(
        "sandbox",
        f"unavailable: {problem}; plugins {', '.join(caged)} will not start",
        f'{fix}, or set "unsandboxed": true on a plugin you trust',
    )


__all__ = ["packages_check", "python_check", "sandbox_check"]
