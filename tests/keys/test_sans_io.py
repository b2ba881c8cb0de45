"""``keys`` is sans-IO: only the standard library, PyNaCl, cryptography and msgpack."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

KEYS_DIR = Path(__file__).resolve().parents[2] / "keys"
ALLOWED_THIRD_PARTY = {"nacl", "cryptography", "msgpack", "keys"}
# Modules that read the clock or do I/O the caller should own.
FORBIDDEN_STDLIB = {"time", "datetime", "socket", "asyncio", "threading", "sqlite3", "random"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(KEYS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_imports_are_sans_io(path: Path) -> None:
    roots = imported_roots(path)
    foreign = {r for r in roots if r not in sys.stdlib_module_names and r != "__future__"}
    assert foreign <= ALLOWED_THIRD_PARTY, foreign - ALLOWED_THIRD_PARTY
    assert not roots & FORBIDDEN_STDLIB
