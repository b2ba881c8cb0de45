"""The Souvenirs panel in a real headless browser (Debian's Chromium, Playwright).

Kai lends ``mcp-server-git``'s ``git_create_branch`` with ``ask``; Mina, in a visit he
opened for her, calls it. The owner opens Kai's dashboard: the tab's badge says a call is
waiting, the panel shows who asks, for which tool, with the arguments as text, and the
owner clicks Approve: the branch is made, and the call reads "Kai lent Mina the
git_create_branch souvenir". Screenshots go to ``$ROOMVERSE_TEST_ARTIFACTS/souvenirs``
(else the test's tmp_path).

Playwright's sync API runs on a worker thread while trio keeps both characters running.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio

from node.souvenirs.wire import ToolAnswer
from tests.support.dashboard_browser import browser_marks, chromium_page
from tests.support.dashboard_browser import sync_api as browser_sync_api
from tests.support.plugin_servers import needs_sandbox
from tests.support.souvenir_sides import (
    Borrower,
    Lender,
    borrow,
    branches,
    git_lent,
    kai_lends,
    writable_repo,
)
from tests.support.visit_party import in_thread

BRANCH = "souvenir-from-mina"
MARKUP = "<b id=bold>not markup</b>"
"""In the arguments: the page must show it as text."""

pytestmark = [*browser_marks(240), needs_sandbox]
sync_api = browser_sync_api()


def shots_dir(tmp_path: Path) -> Path:
    root = os.environ.get("ROOMVERSE_TEST_ARTIFACTS")
    path = Path(root) / "souvenirs" if root else tmp_path / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def approve_in_the_page(url: str, repo: Path, shots: Path) -> None:
    expect = sync_api.expect
    with chromium_page() as (browser, page, problems):
        page.goto(url)
        expect(page.locator("#char-name")).to_have_text("Kai")
        expect(page.locator("#approvals-badge")).to_have_text("1")

        page.click("nav [data-tab=souvenirs]")
        card = page.locator("#approvals li.approval")
        expect(card).to_have_count(1)
        expect(card.locator(".name")).to_have_text("Mina wants to run git_create_branch")
        args = card.locator("pre.args")
        expect(args).to_contain_text(f'"branch_name": "{BRANCH}"')
        expect(args).to_contain_text(f'"repo_path": "{repo}"')
        expect(args).to_contain_text(MARKUP)  # shown as text, not rendered
        assert page.locator("#bold").count() == 0
        lent = page.locator("#lent")
        expect(lent.locator('li[data-tool="git_create_branch"]')).to_contain_text("asks you first")
        expect(lent.locator('li[data-tool="git_log"]')).to_contain_text("lent freely")
        page.screenshot(path=shots / "01-pending-approval.png", full_page=True)

        card.locator("button.approve").click()
        expect(page.locator("#notice")).to_contain_text(
            "Approved: Mina's call to git_create_branch"
        )
        expect(page.locator("#approvals li")).to_have_count(0)
        expect(page.locator("#approvals-empty")).to_be_visible()
        expect(page.locator("#approvals-badge")).to_be_hidden()
        expect(page.locator("#souvenir-calls li").first).to_contain_text(
            "Kai lent Mina the git_create_branch souvenir"
        )
        page.screenshot(path=shots / "02-approved.png", full_page=True)

        # Readable on a phone: no sideways scrolling, the arguments wrap.
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.goto(url)
        phone.click("nav [data-tab=souvenirs]")
        expect(phone.locator("#souvenir-calls li").first).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        phone.screenshot(path=shots / "03-phone.png", full_page=True)
        assert problems == [], problems


async def ask_for_branch(mina: Borrower, kai: Lender, repo: Path, answers: list[Any]) -> None:
    arguments = {"repo_path": str(repo), "branch_name": BRANCH, "note": MARKUP}
    answers.append(await borrow(mina, kai, "git_create_branch", arguments))


async def test_the_owner_approves_a_souvenir_call_in_the_page(tmp_path: Path) -> None:
    shots = shots_dir(tmp_path)
    data_dir = tmp_path / "kai"
    repo = await writable_repo(tmp_path, data_dir)
    async with kai_lends(tmp_path, (git_lent(repo),), data_dir=data_dir) as (kai, mina):
        kai.service.approvals.timeout_s = 120.0
        answers: list[Any] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_for_branch, mina, kai, repo, answers)
            url = f"{kai.base}/?token={kai.token}"
            await in_thread(approve_in_the_page, url, repo, shots)
        (answer,) = answers
        assert isinstance(answer, ToolAnswer) and not answer.is_error, answer
        assert BRANCH in await branches(repo)
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "01-pending-approval.png",
        "02-approved.png",
        "03-phone.png",
    ]
