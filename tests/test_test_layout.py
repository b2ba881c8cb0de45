"""The tests' own layout, and the support tools every test relies on.

What several test modules share lives in ``tests/support``; no module under ``tests/``
imports a test module (``test_*.py``, ``*_test.py``) or a ``conftest.py``. Such an import
runs the other module's set-up on import, makes pytest collect its tests and fixtures
twice, and hides shared helpers where no one looks for them.

Imports are read with :mod:`ast` (nothing is imported), in every form: ``import a.b``,
``from a.b import c``, ``from a import b`` (``b`` a module of package ``a``), relative
imports, and ``importlib.import_module("a.b")`` / ``__import__("a.b")`` with a literal.
"""

from __future__ import annotations

import ast
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.support.line_reader import UNPARSED, LineReader, json_event, plain_line
from tests.support.waiting import WaitTimeout, wait_until, wait_until_async

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SKIP_DIRS = frozenset({"node_modules", "__pycache__"})


def is_test_module(name: str) -> bool:
    """``tests.x.test_y``, ``tests.x.y_test`` or any ``tests...conftest``."""
    if name != "tests" and not name.startswith("tests."):
        return False
    last = name.rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_") or last.endswith("_test")


def is_package_on_disk(name: str) -> bool:
    return (ROOT.joinpath(*name.split("."))).is_dir()


def resolve(module: str | None, level: int, package: str) -> str:
    """The absolute name of ``from <level dots><module> import ...`` inside ``package``."""
    if level == 0:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*base, module] if module else base)


def imported_modules(
    source: str,
    module: str,
    *,
    is_package: bool = False,
    package_exists: Callable[[str], bool] = is_package_on_disk,
) -> Iterator[tuple[int, str]]:
    """(line, module name) of every module ``source`` (the text of ``module``) imports,
    as far as the text can tell."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module, node.level, package)
            yield node.lineno, base
            if package_exists(base):
                # ``from package import name``: ``name`` may be a submodule.
                for alias in node.names:
                    if alias.name != "*":
                        yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            literal = first.value if isinstance(first, ast.Constant) else None
            # A relative name (leading dot) would need the package= argument: not read.
            absolute = isinstance(literal, str) and not literal.startswith(".")
            if called in ("import_module", "__import__") and absolute:
                yield node.lineno, str(literal)


def find_test_imports(
    source: str,
    module: str,
    *,
    is_package: bool = False,
    package_exists: Callable[[str], bool] = is_package_on_disk,
) -> list[tuple[int, str]]:
    """The imports of test modules and conftests in ``source``, in order."""
    found = imported_modules(source, module, is_package=is_package, package_exists=package_exists)
    return sorted({(line, name) for line, name in found if is_test_module(name)})


def python_files() -> Iterator[Path]:
    for path in sorted(TESTS.rglob("*.py")):
        if not SKIP_DIRS & set(path.relative_to(TESTS).parts):
            yield path


def module_of(path: Path) -> tuple[str, bool]:
    """The dotted name of ``path`` under the repository, and whether it is a package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def test_no_module_under_tests_imports_a_test_module_or_a_conftest() -> None:
    found = []
    for path in python_files():
        module, is_package = module_of(path)
        for line, name in find_test_imports(path.read_text(), module, is_package=is_package):
            found.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert found == [], (
        "shared test helpers belong in tests/support (fixtures in a conftest are used, "
        "never imported):\n" + "\n".join(found)
    )


SAMPLE = """\
import tests.firehose.test_hub
import tests.firehose.test_hub as hub
from tests.firehose.test_hub import ALICE, Net
from tests.firehose import test_hub, test_ws
from tests import conftest
from tests.conftest import free_form
from .test_ws import open_server
from . import test_node
from ..conftest import nodes
import importlib
importlib.import_module("tests.firehose.test_load")
__import__("tests.browser.firehose_test")

import pytest
import tests.support.procs
from tests.support.procs import NodeProcess, REPO
from tests.support import waiting
from tests.support.procs import test_like_attribute
from . import helpers
from keys import test_vectors
importlib.import_module("node.testing")
"""


def test_the_check_finds_every_form_of_import_and_nothing_else() -> None:
    packages = {"tests", "tests.firehose", "tests.support"}
    found = find_test_imports(
        SAMPLE, "tests.firehose.test_sample", package_exists=packages.__contains__
    )
    assert found == [
        (1, "tests.firehose.test_hub"),
        (2, "tests.firehose.test_hub"),
        (3, "tests.firehose.test_hub"),
        (4, "tests.firehose.test_hub"),
        (4, "tests.firehose.test_ws"),
        (5, "tests.conftest"),
        (6, "tests.conftest"),
        (7, "tests.firehose.test_ws"),
        (8, "tests.firehose.test_node"),
        (9, "tests.conftest"),
        (11, "tests.firehose.test_load"),
        (12, "tests.browser.firehose_test"),
    ]
    # Relative imports in a package's __init__ resolve from the package itself.
    assert find_test_imports(
        "from .conftest import x\nfrom . import test_a\n",
        "tests.node",
        is_package=True,
        package_exists={"tests.node"}.__contains__,
    ) == [(1, "tests.node.conftest"), (2, "tests.node.test_a")]
    # And the real tree's packages are found on disk.
    assert is_package_on_disk("tests.support") and not is_package_on_disk("tests.support.procs")


# -- the one wait and the one reader ------------------------------------------------------


def test_wait_until_returns_what_the_check_found_or_names_what_never_came() -> None:
    calls: list[int] = []

    def third_time() -> str | None:
        calls.append(1)
        return "found" if len(calls) == 3 else None

    assert wait_until(third_time, 5, "the third call", poll=0.001) == "found"
    start = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"timed out after 0\.05 s waiting for nothing\nseen"):
        wait_until(lambda: 0, 0.05, "nothing", poll=0.01, detail=lambda: "seen")
    assert 0.05 <= time.monotonic() - start < 5
    # Once nothing more can change, one last check, then the failure: no waiting out.
    checked: list[int] = []
    with pytest.raises(WaitTimeout, match="output ended waiting for late"):
        wait_until(lambda: checked.append(1), 60, "late", ended=lambda: "output ended")
    assert checked == [1]
    assert issubclass(WaitTimeout, AssertionError)


async def test_wait_until_async_takes_sync_and_async_checks_and_cuts_slow_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticks: list[int] = []

    async def fourth_tick() -> bool:
        ticks.append(1)
        return len(ticks) >= 4

    await wait_until_async(fourth_tick, 5, "four ticks")
    await wait_until_async(lambda: len(ticks) >= 4, 5, "a sync check")

    async def never_answers() -> bool:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    start = trio.current_time()
    with pytest.raises(WaitTimeout, match="timed out after 3 s waiting for an answer"):
        await wait_until_async(never_answers, 3, "an answer")
    assert trio.current_time() - start == pytest.approx(3)
    with pytest.raises(WaitTimeout, match="waiting for never"):
        await wait_until_async(lambda: False, 2, "never")


def test_line_reader_keeps_every_line_wakes_waiters_and_fails_fast_at_the_end() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as stream, os.fdopen(write_fd, "wb") as pipe:
        reader = LineReader(stream, json_event, label="pipe")
        pipe.write(b'{"event": "ready", "n": 1}\nnot json\n[1, 2]\n')
        pipe.flush()
        assert reader.wait_until(lambda items: items[2:], 10, "three lines") == [
            {"event": UNPARSED, "line": "[1, 2]"}
        ]
        assert reader.snapshot()[:2] == [
            {"event": "ready", "n": 1},
            {"event": UNPARSED, "line": "not json"},
        ]
        pipe.close()
        start = time.monotonic()
        with pytest.raises(WaitTimeout, match="output ended waiting for more from pipe"):
            reader.wait_until(lambda items: items[3:], 60, "more")
        assert time.monotonic() - start < 30
        reader.join()
    text_read, text_write = os.pipe()
    with os.fdopen(text_read, "r") as stream, os.fdopen(text_write, "w") as pipe:
        lines = LineReader(stream, plain_line, label="text")
        pipe.write("ready\r\n\nafter\n")
        pipe.close()
        assert lines.wait_until(lambda items: "after" in items, 10, "after")
        lines.join()
        assert lines.items == ["ready", "", "after"]
