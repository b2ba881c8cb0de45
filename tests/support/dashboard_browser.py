"""The dashboard in real headless Chromium (Debian's, through Playwright's sync API), for
the browser tests: the marks that skip without it, and one page that records every page
error and console error, so each test ends by asserting there were none."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
EXPECT_TIMEOUT_MS = 20_000


def browser_marks(timeout_s: int | None = None) -> list[pytest.MarkDecorator]:
    """The ``pytestmark`` of a dashboard browser test module (``timeout_s``: longer than
    the suite's default, for tests that start several nodes)."""
    longer = [] if timeout_s is None else [pytest.mark.timeout(timeout_s)]
    return [
        pytest.mark.browser,
        *longer,
        pytest.mark.skipif(
            not CHROMIUM.exists(),
            reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
        ),
    ]


def sync_api() -> Any:
    """Playwright's sync API, or a skip saying how to get it."""
    return pytest.importorskip(
        "playwright.sync_api",
        reason="needs Playwright's Python package (pip install playwright; no browser download)",
    )


@contextmanager
def chromium_page() -> Iterator[tuple[Any, Any, list[str]]]:
    """``(browser, page, problems)``: a desktop-sized page whose uncaught errors and
    console errors land in ``problems``; ``expect`` waits up to 20 s."""
    api = sync_api()
    api.expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console", lambda msg: problems.append(msg.text) if msg.type == "error" else None
            )
            yield browser, page, problems
        finally:
            browser.close()
