"""The dashboard in a real headless browser: Debian's Chromium driven by Playwright.

Mina runs ``roomverse node --dashboard 127.0.0.1:0`` and Bo (whose engine slips HTML into
everything he says) has visited her. The owner opens the printed URL, sees the status,
switches to away, reads the footprints and the conversation, edits a relation's notes,
and watches the live log; what the page did is then checked on the node itself.
Screenshots go to ``$ROOMVERSE_TEST_ARTIFACTS/dashboard`` (else the test's tmp_path).

Playwright's sync API runs on a worker thread (it brings its own asyncio loop), while
this test's trio loop keeps serving the characters' fake engines. Chromium is Debian's
(``/usr/bin/chromium``): never ``playwright install``.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.dashboard import (
    TOKEN_HEADER,
    artifacts_dir,
    dashboard_url_of,
    split_url,
    visited_party,
)
from tests.support.dashboard_browser import browser_marks, chromium_page
from tests.support.dashboard_browser import sync_api as browser_sync_api
from tests.support.procs import NodeProcess
from tests.support.visit_party import in_thread

HOSTILE = '<b id="bold">bold</b><img src=x onerror="window.__owned=1">'
"""What Bo's engine appends to every line: it must show up as text, never as markup."""
NOTE = "Bo likes trains; ask about the 9:15 to Lyon"

pytestmark = [*browser_marks()]
sync_api = browser_sync_api()


def drive_dashboard(url: str, mina: NodeProcess, bo_id: str, shots: Path) -> None:
    """Everything the owner does in the page, with checks on the node in between."""
    expect = sync_api.expect
    with chromium_page() as (browser, page, problems):
        page.goto(url)

        # Status.
        expect(page.locator("#char-name")).to_have_text("Mina")
        expect(page.locator("#own-status")).to_have_text("online")
        expect(page.locator("#status-list")).to_contain_text("mDNS")
        expect(page.locator("#status-list")).to_contain_text(mina.peer_id)
        page.screenshot(path=shots / "01-status.png", full_page=True)

        # The switch: the page says away once the node stored it; the node agrees.
        page.click("#status-away")
        expect(page.locator("#own-status")).to_have_text("away")
        expect(page.locator("#status-away")).to_have_attribute("aria-pressed", "true")
        assert mina.status()["own_status"] == "away"
        page.screenshot(path=shots / "02-away.png", full_page=True)

        # Footprints and the conversation; Bo's markup stays text.
        page.click("nav [data-tab=visits]")
        card = page.locator("#visits li.visit").first
        expect(card).to_contain_text("Bo came by")
        expect(card).to_contain_text("<img src=x")
        card.click()
        expect(page.locator("#conv-title")).to_have_text("Visit from Bo")
        expect(page.locator("#visits")).to_be_hidden()
        expect(page.locator("#conv-messages li").first).to_contain_text("<b id=")
        assert page.locator("#bold, main img").count() == 0
        assert page.evaluate("window.__owned === undefined")
        page.screenshot(path=shots / "03-conversation.png", full_page=True)
        page.click("#conv-close")

        # A relation's notes, edited in the page.
        page.click("nav [data-tab=relations]")
        relation = page.locator(f'li.relation[data-peer="{bo_id}"]')
        expect(relation).to_contain_text("Bo")
        relation.locator("button.edit").click()
        notes = relation.locator("textarea.notes")
        expect(notes).to_be_visible()
        notes.fill(NOTE)
        relation.locator("button.save").click()
        expect(relation.locator(".saved")).to_have_text("Saved.")
        page.screenshot(path=shots / "04-relation-notes.png", full_page=True)
        assert stored_notes(url, bo_id) == NOTE

        # Still there after a reload (stored by the node, not kept by the page).
        page.reload()
        page.click("nav [data-tab=relations]")
        relation.locator("button.edit").click()
        expect(relation.locator("textarea.notes")).to_have_value(NOTE)

        # The live log: the visit that already happened, then new events as they come.
        page.click("nav [data-tab=live]")
        expect(page.locator("#live-state")).to_have_text("live")
        expect(page.locator('#live li[data-event="visit_line"]').first).to_be_visible()
        relation_line = page.locator('#live li[data-event="relation_updated"]').first
        expect(relation_line).to_contain_text("Bo: affinity")
        page.click("#status-online")
        expect(page.locator("#own-status")).to_have_text("online")
        page.locator('.filters input[data-group="node"]').check()
        expect(page.locator('#live li[data-event="directory_changed"]').first).to_be_visible()
        page.screenshot(path=shots / "05-live-log.png", full_page=True)
        assert split_url(url)[1] not in page.locator("#live").inner_text()

        # Readable on a phone: no sideways scrolling.
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.goto(url)
        expect(phone.locator("#char-name")).to_have_text("Mina")
        phone.click("nav [data-tab=visits]")
        expect(phone.locator("#visits li.visit").first).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.screenshot(path=shots / "06-phone.png", full_page=True)
        assert problems == [], problems


def stored_notes(url: str, bo_id: str) -> str:
    """The notes as the node holds them, asked outside the page."""
    base, token = split_url(url)
    reply = httpx.get(f"{base}/api/relations/{bo_id}", headers={TOKEN_HEADER: token}, timeout=10)
    reply.raise_for_status()
    return str(reply.json()["relation"]["notes"])


async def test_dashboard_in_a_real_browser(tmp_path: Path) -> None:
    shots = artifacts_dir(tmp_path)
    async with visited_party(tmp_path, bo_token=HOSTILE) as (_, mina, bo):
        url = await in_thread(dashboard_url_of, mina.node)
        await in_thread(drive_dashboard, url, mina.node, bo.node.peer_id, shots)
    names = sorted(p.name for p in shots.glob("*.png"))
    assert names == [
        "01-status.png",
        "02-away.png",
        "03-conversation.png",
        "04-relation-notes.png",
        "05-live-log.png",
        "06-phone.png",
    ]
