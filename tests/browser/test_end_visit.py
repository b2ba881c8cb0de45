"""The dashboard's "End visit" button in a real headless browser (Debian's Chromium
driven by Playwright, on a worker thread while this trio loop serves the fake engines).

Bo visits Mina; Mina's engine takes a minute over her second line. Her owner opens the
dashboard, sees Bo under "Visits in progress" and presses "End visit": the button says
goodbye is being said, the visit leaves the list, and both nodes record that it ended at
the owner's word, with its receipt. Screenshot: ``07-end-visit.png`` beside the other
dashboard screenshots.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import trio

from node.testing.fake_openai import FakeReply
from tests.support.dashboard import artifacts_dir, dashboard_url_of
from tests.support.visit_party import Member, in_thread, open_party

CHROMIUM = Path("/usr/bin/chromium")
EXPECT_TIMEOUT_MS = 20_000
WAIT_S = 30.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="needs Playwright's Python package (pip install playwright; no browser download)",
)


def end_the_visit(url: str, shots: Path) -> None:
    """What the owner does in the page: find Bo's visit, press "End visit"."""
    expect = sync_api.expect
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(url)
            visiting = page.locator("#visiting li.visiting")
            expect(visiting).to_contain_text("Bo is visiting")
            button = visiting.locator("button.end-visit")
            expect(button).to_have_text("End visit")
            button.click()
            expect(page.locator("#notice")).to_contain_text("saying goodbye to Bo")
            page.screenshot(path=shots / "07-end-visit.png", full_page=True)
            # Over once the partner has its farewell and both receipts are signed.
            expect(page.locator("#visiting")).to_contain_text("none right now")
            expect(page.locator("#visiting li.visiting")).to_have_count(0)
            assert problems == [], problems
        finally:
            browser.close()


async def visit_ended(member: Member) -> dict[str, Any]:
    def ended(event: dict[str, Any]) -> bool:
        return event.get("event") == "visit_ended"

    return await in_thread(member.node.wait_for, ended, WAIT_S, f"visit_ended on {member.name}")


async def test_the_end_visit_button_ends_a_visit_politely(tmp_path: Path) -> None:
    shots = artifacts_dir(tmp_path)
    async with open_party(tmp_path) as party:
        mina = await party.add("Mina", node_args=["--dashboard", "127.0.0.1:0"])
        bo = await party.add("Bo")
        await party.everyone_online()
        url = await in_thread(dashboard_url_of, mina.node)
        mina.fake.script(FakeReply("Mina says welcome."), FakeReply("never said", delay_s=60))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(party.visit, "Bo", "Mina", turns=8))
            await mina.fake.wait_for_requests(2, timeout=WAIT_S)  # writing turn 3
            await in_thread(end_the_visit, url, shots)
        theirs, ours = await visit_ended(mina), await visit_ended(bo)
        assert (theirs["reason"], theirs["ended_by"], theirs["outcome"]) == (
            "owner",
            "me",
            "completed",
        )
        assert (ours["reason"], ours["ended_by"]) == ("owner", "partner")
        assert theirs["transcript"] == ours["transcript"] and theirs["transcript"]
