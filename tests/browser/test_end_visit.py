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

import trio

from node.testing.fake_openai import FakeReply
from tests.support.dashboard import artifacts_dir, dashboard_url_of
from tests.support.dashboard_browser import browser_marks, chromium_page
from tests.support.dashboard_browser import sync_api as browser_sync_api
from tests.support.visit_party import Member, in_thread, open_party

WAIT_S = 30.0

pytestmark = [*browser_marks(300)]
sync_api = browser_sync_api()


def end_the_visit(url: str, shots: Path) -> None:
    """What the owner does in the page: find Bo's visit, press "End visit"."""
    expect = sync_api.expect
    with chromium_page() as (_browser, page, problems):
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
