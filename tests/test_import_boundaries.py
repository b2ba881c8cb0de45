"""DESIGN §2: the sans-IO packages import no I/O framework; only one module imports libp2p;
``node`` is stacked in layers with no import cycle; other packages use its public API."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
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
    roots: set[str] = set()
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
        for path in python_files("keys", "registry_crdt", "node", "firehose", "bridge")
        if "libp2p" in imported_roots(path) and LIBP2P_ADAPTER not in path.parents
    ]
    assert importers == []


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


NODE_LAYERS: tuple[tuple[str, ...], ...] = (
    ("node.config", "node.clock", "node.errors", "node.lazy", "node.privacy", "node.events"),
    ("node.wire", "node._libp2p", "node.storage"),
    ("node.net", "node.engine"),
    ("node.directory", "node.catch_up"),
    ("node.visits", "node.souvenirs"),
    ("node.agent",),
    ("node.character", "node.control", "node.dashboard", "node.bridging", "node.metrics"),
    ("node.process", "node.party", "node.cli"),
    ("node.testing",),
)
"""The layer order of DESIGN §2 and ``node/__init__.py``, lowest first."""

PUBLIC_NODE = ("node", "node.testing")
"""What packages beside ``node`` may import of it: the public API and the test doubles."""


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


NODE_MODULES = {module_name(path): path for path in python_files("node")}


def node_imports(path: Path, *, with_type_checking: bool = True) -> Iterator[tuple[int, str]]:
    """(line, module) for every ``node`` module that ``path`` imports, anywhere in it (lazy
    imports in functions count); ``from node.x import y`` names ``node.x.y`` if that is a
    module. ``with_type_checking=False`` skips ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    if not with_type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
                skipped.update(id(inner) for inner in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "node":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "node":
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield node.lineno, full if full in NODE_MODULES else node.module


def layer_of(module: str) -> int:
    for index, layer in enumerate(NODE_LAYERS):
        if any(module == top or module.startswith(top + ".") for top in layer):
            return index
    raise AssertionError(f"{module} is in no layer of NODE_LAYERS: give it one")


def test_every_node_module_has_a_layer() -> None:
    top = {"node", "node.__main__"}
    assert [m for m in NODE_MODULES if m not in top and not _has_layer(m)] == []


def _has_layer(module: str) -> bool:
    try:
        layer_of(module)
    except AssertionError:
        return False
    return True


def test_node_modules_import_only_their_layer_or_below() -> None:
    upward = []
    for module, path in NODE_MODULES.items():
        if module in ("node", "node.__main__"):
            continue
        own = layer_of(module)
        for line, target in node_imports(path):
            if target == "node":
                upward.append(f"{module}:{line} imports the public API; import the module")
            elif layer_of(target) > own:
                upward.append(f"{module}:{line} → {target} (layer {layer_of(target)} > {own})")
    assert upward == []


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle in ``graph`` as a path (first node repeated at the end), or []."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(vertex: str, path: list[str]) -> list[str]:
        state[vertex] = 1
        for nxt in sorted(graph.get(vertex, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[vertex] = 2
        return []

    for vertex in sorted(graph):
        if vertex not in state and (found := visit(vertex, [vertex])):
            return found
    return []


def _module_graph() -> dict[str, set[str]]:
    return {
        module: {t for _, t in node_imports(path, with_type_checking=False) if t != module}
        for module, path in NODE_MODULES.items()
    }


def test_no_import_cycle_between_node_modules() -> None:
    assert _cycle(_module_graph()) == []


def test_no_import_cycle_between_node_packages() -> None:
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for module, targets in _module_graph().items():
        if module == "node":
            continue
        graph.setdefault(package(module), set()).update(
            package(t) for t in targets if package(t) not in (package(module), "node")
        )
    assert _cycle(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """Positive control for the two tests above."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []


def test_other_packages_use_only_the_public_api_of_node() -> None:
    """DESIGN §2: firehose/, bridge/ and bench/ import ``node`` (its ``__all__``) and
    ``node.testing``, never a private module."""
    private = {
        f"{path.relative_to(REPO)}:{line}": target
        for package in ("firehose", "bridge", "bench")
        if (REPO / package).is_dir()
        for path in python_files(package)
        for line, target in node_imports(path)
        if target not in PUBLIC_NODE and not target.startswith("node.testing.")
    }
    assert private == {}


def test_the_public_api_names_load() -> None:
    import node

    missing = [name for name in node.__all__ if getattr(node, name, None) is None]
    assert missing == []


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
