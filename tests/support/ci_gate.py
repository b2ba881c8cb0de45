"""A pytest plugin: under ``CI=true``, a skipped test of a suite the project depends on
fails the run.

The suites are those marked ``netns``, ``interop``, ``browser`` or ``embedded``: each
skips with a reason when its tools are missing (not root, no node/npm, no Chromium, no
llama-cpp-python), which is right on a developer's machine and wrong in CI, where
``.ci/run`` installs them: there a skip would let the run go green without them. So in
CI every such skip is listed at the end of the run, with its reason, and the exit status
becomes "tests failed". Outside CI, skips stay skips (``-ra`` prints their reasons).

Skips are seen in both places they happen: a test's own (``pytest.skip``, ``skipif``) in
its report, checked against the test's markers; and a whole module's (``pytest.skip(...,
allow_module_level=True)``, ``importorskip``) in its collection report. A module skipped
while being imported never finished defining ``pytestmark``, so its markers are read
from its source: any ``pytest.mark.<suite>`` in it counts.

Loaded through ``addopts = "-p tests.support.ci_gate"`` in pyproject.toml.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

GATED_MARKERS = ("netns", "interop", "browser", "embedded")
CI_VALUES = frozenset({"1", "true", "yes"})


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this run is CI's (``CI=true``, as CI services and ``.ci/run`` set it)."""
    return environ.get("CI", "").strip().lower() in CI_VALUES


def markers_in_source(path: Path) -> set[str]:
    """The gated markers a module names as ``pytest.mark.<name>`` anywhere in its text."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in GATED_MARKERS
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "mark"
        ):
            found.add(node.attr)
    return found


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@dataclass(frozen=True)
class GatedSkip:
    nodeid: str
    markers: tuple[str, ...]
    reason: str

    def line(self) -> str:
        return f"{self.nodeid} [{', '.join(self.markers)}]: {self.reason}"


class CiGate:
    """Collects the gated skips of one run; in CI, fails the run if there are any."""

    def __init__(self, enforce: bool) -> None:
        self.enforce = enforce
        self.skips: list[GatedSkip] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        if report.skipped and isinstance(collector, pytest.Module):
            markers = markers_in_source(collector.path)
            if markers:
                self.skips.append(
                    GatedSkip(report.nodeid, tuple(sorted(markers)), skip_reason(report))
                )
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.skipped and not hasattr(report, "wasxfail"):
            names = {mark.name for mark in item.iter_markers()}
            markers = tuple(m for m in GATED_MARKERS if m in names)
            if markers:
                self.skips.append(GatedSkip(report.nodeid, markers, skip_reason(report)))
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        passing = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        if self.enforce and self.skips and session.exitstatus in passing:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.enforce or not self.skips:
            return
        terminalreporter.section("CI gate: required suites were skipped", sep="=", red=True)
        terminalreporter.line(
            f"CI=true: {len(self.skips)} skip(s) of tests marked "
            f"{', '.join(GATED_MARKERS)} fail this run (.ci/run installs what they need):",
            red=True,
        )
        for skip in self.skips:
            terminalreporter.line(f"  {skip.line()}")


MARKER_HELP = {
    "netns": "needs root to create network namespaces",
    "interop": "runs a js-libp2p peer (needs node and npm)",
    "browser": "drives Debian's Chromium through Playwright",
    "embedded": "runs the real embedded engine (llama-cpp-python and a small model)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name in GATED_MARKERS:  # also in pyproject.toml; here for runs without it
        config.addinivalue_line("markers", f"{name}: {MARKER_HELP[name]}")
    config.pluginmanager.register(CiGate(enforce=in_ci()), "ci_gate")
