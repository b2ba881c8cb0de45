"""DESIGN §2: the sans-IO packages import no I/O framework; only one module imports libp2p."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SANS_IO = ("keys", "registry_crdt")
IO_FRAMEWORKS = {
    "trio",
    "libp2p",
    "quart",
    "quart_trio",
    "hypercorn",
    "sqlite3",
    "openai",
    "httpx",
    "zeroconf",
    "multiaddr",
    "asyncio",
    "socket",
}
LIBP2P_ADAPTER = REPO / "node" / "_libp2p"


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def python_files(*packages: str) -> list[Path]:
    return [p for pkg in packages for p in sorted((REPO / pkg).rglob("*.py"))]


def test_sans_io_packages_import_no_io_framework() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_roots(path) & IO_FRAMEWORKS)
        for path in python_files(*SANS_IO)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_adapter_package_imports_libp2p() -> None:
    importers = [
        str(path.relative_to(REPO))
        for path in python_files("keys", "registry_crdt", "node", "firehose")
        if "libp2p" in imported_roots(path) and LIBP2P_ADAPTER not in path.parents
    ]
    assert importers == []


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_firehose_uses_only_the_nodes_public_modules() -> None:
    """DESIGN §2: firehose/ may import node's public API, not its private modules."""
    private = {
        str(path.relative_to(REPO)): sorted(
            name for name in imported_modules(path) if name.startswith("node.") and "._" in name
        )
        for path in python_files("firehose")
    }
    assert {k: v for k, v in private.items() if v} == {}


def test_importing_keys_loads_no_io_framework_at_run_time() -> None:
    code = (
        "import sys, keys, registry_crdt\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(IO_FRAMEWORKS)!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.strip()
    assert out == ""
