"""The CI gate plugin (tests/support/ci_gate.py), run on small test files by pytester,
and ``ensure_js_deps`` (tests/support/jspeer.py) when ``npm ci`` fails.

Defect guarded against: a CI run that goes green while a suite the project depends on
(netns, interop, browser, embedded) skipped, e.g. without root, node/npm or Chromium,
or after a failed ``npm ci``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import jspeer
from tests.support.ci_gate import in_ci, markers_in_source

pytest_plugins = ["pytester"]

GATE = (
    *("-p", "tests.support.ci_gate", "-p", "no:cacheprovider", "-ra"),
    *("-W", "ignore::pytest.PytestAssertRewriteWarning"),  # the plugin is imported already
)

MARKED_SKIP = """
import pytest

@pytest.mark.netns
def test_needs_root():
    pytest.skip("needs root to create network namespaces")

def test_plain():
    pass
"""

MARKED_SKIPIF = """
import pytest

pytestmark = [pytest.mark.embedded, pytest.mark.skipif(True, reason="no llama-cpp-python")]

def test_model():
    pass
"""

MODULE_SKIP = """
import pytest

pytestmark = pytest.mark.browser
pytest.skip("/usr/bin/chromium is missing", allow_module_level=True)

def test_page():
    pass
"""

UNMARKED_SKIP_AND_XFAIL = """
import pytest

def test_optional_dataset():
    pytest.skip("spikee is not installed")

@pytest.mark.interop
@pytest.mark.xfail(reason="known js-libp2p quirk")
def test_known_quirk():
    assert False
"""


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: bool) -> pytest.RunResult:
    if ci:
        monkeypatch.setenv("CI", "true")
    else:
        monkeypatch.delenv("CI", raising=False)
    return pytester.runpytest(*GATE)


def test_a_marked_skip_fails_the_run_in_ci_with_its_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_lan=MARKED_SKIP)
    result = run(pytester, monkeypatch, ci=True)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*CI gate: required suites were skipped*",
            "*test_lan.py::test_needs_root [[]netns[]]: needs root to create network namespaces",
        ]
    )


def test_a_marked_skip_stays_a_skip_outside_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_lan=MARKED_SKIP)
    result = run(pytester, monkeypatch, ci=False)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["SKIPPED*needs root to create network namespaces"])
    result.stdout.no_fnmatch_line("*CI gate*")


def test_a_skipif_on_a_marked_module_fails_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_engine=MARKED_SKIPIF)
    result = run(pytester, monkeypatch, ci=True)
    result.assert_outcomes(skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_model [[]embedded[]]: no llama-cpp-python"])


def test_a_module_level_skip_of_a_marked_module_fails_in_ci_only(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_viewer=MODULE_SKIP, test_other="def test_ok():\n    pass\n")
    result = run(pytester, monkeypatch, ci=True)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*test_viewer.py [[]browser[]]: /usr/bin/chromium is missing"])

    result = run(pytester, monkeypatch, ci=False)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK


def test_unmarked_skips_and_expected_failures_do_not_fail_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_other=UNMARKED_SKIP_AND_XFAIL)
    result = run(pytester, monkeypatch, ci=True)
    result.assert_outcomes(skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*CI gate*")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("1", True), ("", False), ("false", False), ("0", False)],
)
def test_ci_is_read_from_the_ci_variable(value: str, expected: bool) -> None:
    assert in_ci({"CI": value}) is expected
    assert in_ci({}) is False


def test_markers_are_read_from_a_module_that_never_finished_importing(tmp_path: Path) -> None:
    module = tmp_path / "test_partly.py"
    module.write_text(
        "import pytest\n"
        "pytestmark = [pytest.mark.interop, pytest.mark.timeout(5)]\n"
        "raise ImportError('node is missing')\n"
        "@pytest.mark.browser\n"
        "def test_x(): pass\n"
    )
    assert markers_in_source(module) == {"interop", "browser"}


@pytest.mark.interop
def test_a_failed_npm_ci_is_an_error_in_ci_and_a_skip_reason_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ensure_js_deps`` on a folder whose ``npm ci`` fails (no package-lock.json)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are required for js-libp2p interop tests")
    (tmp_path / "package.json").write_text('{"name": "broken", "version": "0.0.0"}')

    def fresh() -> None:  # forget the session's cached result, for this test only
        monkeypatch.setattr(jspeer, "_deps_done", False)
        monkeypatch.setattr(jspeer, "_deps_result", None)
        monkeypatch.setattr(jspeer, "_npm_failed", False)
        monkeypatch.setattr(jspeer, "JS_SKIP_REASON", None)

    fresh()
    monkeypatch.delenv("CI", raising=False)
    assert jspeer.ensure_js_deps(tmp_path, timeout=120) is None
    assert jspeer.js_skip_reason().startswith("npm ci failed")

    fresh()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(jspeer.JsDepsError, match="npm ci failed"):
        jspeer.ensure_js_deps(tmp_path, timeout=120)
    with pytest.raises(jspeer.JsDepsError):  # and again on the next call, from the cache
        jspeer.ensure_js_deps(tmp_path, timeout=120)
