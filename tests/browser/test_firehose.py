"""The firehose viewer page in a real headless Chromium (Debian's, driven by Playwright).

A real firehose process and two real character nodes that bootstrap to it; the nodes act
through `roomverse act`, and the page must show it: the feed, the online list, a
character's timeline, images, resume after a reload with every event exactly once, and a
phone-width layout. A second, bare WebSocket client in the browser ("the reference")
records every cursor the firehose sends, so the page's rows are checked against the
firehose itself and not against what the test expected to publish.

Playwright's sync API blocks, so these are plain (non-trio) test functions. Screenshots go
to ``$ROOMVERSE_TEST_ARTIFACTS/firehose-browser`` (else the test's temporary directory).
"""

from __future__ import annotations

import json
import os
import re
import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.firehose_process import READY_S, FirehoseProcess
from tests.support.procs import (
    JsonLinesProcess,
    NodeProcess,
    run_cli,
    start_character,
    write_character,
)

pytestmark = pytest.mark.browser  # before the module-level skips below (tests/support/ci_gate.py)

try:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        expect,
        sync_playwright,
    )
except ImportError:  # pragma: no cover - depends on the machine
    pytest.skip("the playwright Python package is not installed", allow_module_level=True)

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():  # pragma: no cover - depends on the machine
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

SEEN_S = 30.0
"""From `roomverse act` returning to the row in the page: gossip, store, fan-out."""
DIRECTORY_S = 45.0
"""Directory sync to the firehose, plus the page's 15 s refresh."""
RECONNECT_S = 45.0
"""The page's backoff between attempts is capped at 30 s (viewer.js BACKOFF_MAX_MS)."""
PHONE_WIDTH = 375

Want = list[tuple[str, int]]
"""(PeerID, seq) of published envelopes: what identifies an event without its cursor."""


# ---------------------------------------------------------------------- processes --


class FakeEngineProcess(JsonLinesProcess):
    """`python -m node.testing.fake_openai`: an OpenAI-compatible engine for visits."""

    def __init__(self) -> None:
        super().__init__([sys.executable, "-m", "node.testing.fake_openai"], name="engine")
        first = self.wait_for(lambda e: "line" in e, READY_S, "the engine's URL")
        self.base_url = str(first["line"]).strip()

    def engine(self) -> dict[str, Any]:
        return {
            "preset": "openai-compatible",
            "base_url": self.base_url,
            "model": "fake-model",
            "timeout_s": 10,
        }


@dataclass
class Network:
    firehose: FirehoseProcess
    alice: NodeProcess
    bob: NodeProcess
    artifacts: Path


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A firehose and two characters bootstrapped to it, shared by this module's tests
    (starting them is most of the time); each test publishes and checks its own events."""
    root = tmp_path_factory.mktemp("firehose-browser")
    artifacts = artifacts_dir(root)
    started: list[JsonLinesProcess] = []
    try:
        firehose = FirehoseProcess(root / "data-firehose")
        started.append(firehose)
        firehose.wait_ready()
        engine = FakeEngineProcess()
        started.append(engine)
        characters = []
        for name in ("Alice", "Bob"):
            node = NodeProcess(
                write_character(root, name, engine=engine.engine()),
                root / f"data-{name.lower()}",
                bootstrap=[firehose.dial_addr],
            )
            started.append(node)
            characters.append(node)
        for node in characters:
            node.wait_ready(READY_S)
        for node in characters:
            # Until the firehose listens on the actions topic, an act reaches no one.
            node.wait_topic_peers([firehose.peer_id], timeout=READY_S)
        yield Network(firehose, characters[0], characters[1], artifacts)
    finally:
        for proc in reversed(started):
            proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile per test: its own sessionStorage, so no saved cursor."""
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    ctx.set_default_timeout(SEEN_S * 1000)
    try:
        yield ctx
    finally:
        ctx.close()


# ------------------------------------------------------------------------ helpers --


def act(node: NodeProcess, *words: str) -> tuple[str, int]:
    reply = node.act(*words)
    return node.peer_id, int(reply["seq"])


class PageErrors:
    """Uncaught exceptions and console errors of a page: the viewer must have none, but
    a browser logs every refused connection while the firehose is down."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.server_down = False
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type != "error":
            return
        refused = "ERR_CONNECTION_REFUSED" in msg.text or "WebSocket connection to" in msg.text
        if not (self.server_down and refused):
            self.errors.append(f"console: {msg.text}")


def open_viewer(context: BrowserContext, url: str) -> tuple[Page, PageErrors]:
    page = context.new_page()
    errors = PageErrors(page)
    page.goto(url)
    expect(page.locator("#conn-state")).to_have_text("live")
    return page, errors


def wait_rows(page: Page, want: Want, timeout_s: float = SEEN_S) -> None:
    """Wait until every (PeerID, seq) in ``want`` has a row in the page."""
    page.wait_for_function(
        """(want) => want.every(([from, seq]) =>
            document.querySelector(`[data-from="${from}"][data-seq="${seq}"]`) !== null)""",
        arg=[list(w) for w in want],
        timeout=timeout_s * 1000,
    )


def rows(page: Page) -> list[dict[str, Any]]:
    """Every event row in the page: cursor, sender, seq, kind, text."""
    result = page.evaluate(
        """() => [...document.querySelectorAll('[data-cursor]')].map((row) => ({
            cursor: Number(row.dataset.cursor), from: row.dataset.from,
            seq: Number(row.dataset.seq), kind: row.dataset.kind, text: row.textContent}))"""
    )
    assert isinstance(result, list)
    return result


def cursors(page: Page) -> list[int]:
    return [int(row["cursor"]) for row in rows(page)]


def hooks(page: Page, name: str) -> Any:
    return page.evaluate("(name) => window.__firehose[name]", name)


class Reference:
    """A bare WebSocket viewer, opened from the firehose's own origin (so its Origin is
    accepted), that keeps every event cursor it receives: the ground truth."""

    def __init__(self, context: BrowserContext, firehose: FirehoseProcess) -> None:
        self.page = context.new_page()
        self.page.goto(firehose.url + "/api/directory")
        hello = self.page.evaluate(
            """(url) => new Promise((resolve, reject) => {
                const ref = window.__ref = {hello: null, cursors: [], keys: [], other: []};
                const ws = new WebSocket(url);
                ws.onmessage = (m) => {
                    // A frame holds one or more JSON objects, one per line.
                    for (const line of m.data.split("\\n")) {
                        if (!line.trim()) continue;
                        const msg = JSON.parse(line);
                        if (msg.type === "hello") { ref.hello = msg; resolve(msg); }
                        else if (msg.type === "event") {
                            ref.cursors.push(msg.cursor);
                            ref.keys.push(`${msg.from}/${msg.seq}`);
                        }
                        else ref.other.push(msg);
                    }
                };
                ws.onclose = () => reject(new Error("reference socket closed"));
            })""",
            firehose.ws_url,
        )
        self.after = int(hello["latest"])
        """The reference sees every event with a cursor above this."""

    def cursors(self) -> list[int]:
        result = self.page.evaluate("() => window.__ref.cursors")
        assert isinstance(result, list)
        return [int(c) for c in result]

    def wait_seen(self, want: Want) -> None:
        """Wait until the firehose has sent every (PeerID, seq) in ``want``."""
        self.page.wait_for_function(
            "(want) => want.every((key) => window.__ref.keys.includes(key))",
            arg=[f"{peer}/{seq}" for peer, seq in want],
            timeout=SEEN_S * 1000,
        )

    def check_page(self, page: Page) -> None:
        """The page shows each cursor once, and exactly the reference's cursors (over
        the span the reference saw)."""
        truth = self.cursors()
        assert truth == sorted(set(truth)), f"the firehose itself repeated or reordered: {truth}"
        assert self.page.evaluate("() => window.__ref.other") == []
        page.wait_for_function(
            """(want) => { const have = new Set([...document.querySelectorAll('[data-cursor]')]
                .map((row) => Number(row.dataset.cursor)));
                return want.every((c) => have.has(c)); }""",
            arg=truth,
            timeout=SEEN_S * 1000,
        )
        shown = cursors(page)
        assert len(shown) == len(set(shown)), f"duplicate rows: {sorted(shown)}"
        top = max(truth, default=self.after)
        span = sorted(c for c in shown if self.after < c <= top)
        assert span == truth, f"page {span} != firehose {truth}"


def artifacts_dir(fallback: Path) -> Path:
    """Where screenshots go: ``$ROOMVERSE_TEST_ARTIFACTS`` (CI keeps it), else ``fallback``."""
    base = os.environ.get("ROOMVERSE_TEST_ARTIFACTS")
    path = (Path(base) if base else fallback) / "firehose-browser"
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nfirehose browser screenshots: {path}")
    return path


def screenshot(page: Page, directory: Path, name: str) -> None:
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def tiny_png(path: Path, rgb: tuple[int, int, int] = (200, 40, 40), side: int = 8) -> Path:
    """A valid ``side``×``side`` one-colour PNG, written without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    pixels = b"".join(b"\x00" + bytes(rgb) * side for _ in range(side))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels))
        + chunk(b"IEND", b"")
    )
    return path


# -------------------------------------------------------------------------- tests --


def test_feed_shows_both_characters_and_who_is_online(
    network: Network, context: BrowserContext
) -> None:
    alice, bob = network.alice, network.bob
    page, errors = open_viewer(context, network.firehose.url)
    want = [
        act(alice, "speak", "Hello from Alice, live in the firehose"),
        act(bob, "speak", "Bob answers from the other node"),
        act(alice, "gesture", "wave"),
        act(bob, "text", "Bob is in the garden"),
    ]
    wait_rows(page, want)

    by_key = {(r["from"], r["seq"]): r for r in rows(page)}
    assert "Alice" in by_key[want[0]]["text"]
    assert "Hello from Alice, live in the firehose" in by_key[want[0]]["text"]
    assert "Bob answers from the other node" in by_key[want[1]]["text"]
    assert "waves" in by_key[want[2]]["text"]
    assert by_key[want[3]]["kind"] == "context"
    assert "Bob is in the garden" in by_key[want[3]]["text"]

    for node in (alice, bob):
        entry = page.locator(f'#online li[data-peer-id="{node.peer_id}"]')
        expect(entry).to_have_attribute("data-status", "online", timeout=DIRECTORY_S * 1000)
    expect(page.locator("#online")).to_contain_text("Alice")
    expect(page.locator("#online")).to_contain_text("Bob")
    screenshot(page, network.artifacts, "01-live-feed")
    assert errors.errors == []


def test_compression_offered_is_declined_and_plain_frames_render(
    network: Network, context: BrowserContext
) -> None:
    """Chromium offers permessage-deflate on every WebSocket; the firehose declines it
    (a frame's bytes are then the same for every viewer, encoded once), and the page
    renders the uncompressed frames. The handshake is read from Chromium's own network
    log (DevTools protocol), as it went over the wire."""
    page = context.new_page()
    errors = PageErrors(page)
    devtools = context.new_cdp_session(page)
    offered: list[dict[str, str]] = []
    answered: list[dict[str, Any]] = []
    devtools.on(
        "Network.webSocketWillSendHandshakeRequest",
        lambda e: offered.append(e["request"]["headers"]),
    )
    devtools.on(
        "Network.webSocketHandshakeResponseReceived", lambda e: answered.append(e["response"])
    )
    devtools.send("Network.enable")
    page.goto(network.firehose.url)
    expect(page.locator("#conn-state")).to_have_text("live")
    want = [act(network.alice, "speak", "Plain frames, nothing deflated")]
    wait_rows(page, want)
    (row,) = [r for r in rows(page) if (r["from"], r["seq"]) == want[0]]
    assert "Plain frames, nothing deflated" in row["text"]

    def extensions(headers: dict[str, str]) -> str:
        return " ".join(v for k, v in headers.items() if k.lower() == "sec-websocket-extensions")

    assert offered and all("permessage-deflate" in extensions(h) for h in offered)
    assert answered and all(r["status"] == 101 for r in answered)
    assert [extensions(r["headers"]) for r in answered] == [""] * len(answered)
    negotiated = page.evaluate(
        """(url) => new Promise((resolve, reject) => {
            const ws = new WebSocket(url);
            ws.onopen = () => { resolve(ws.extensions); ws.close(); };
            ws.onerror = () => reject(new Error("no connection"));
        })""",
        network.firehose.ws_url,
    )
    assert negotiated == ""
    assert errors.errors == []


def test_reload_resumes_from_the_cursor_without_gaps(
    network: Network, context: BrowserContext
) -> None:
    alice, bob = network.alice, network.bob
    reference = Reference(context, network.firehose)
    page, errors = open_viewer(context, network.firehose.url)

    want = [act(alice, "speak", "before the reload, Alice"), act(bob, "speak", "before, Bob")]
    wait_rows(page, want)
    before = cursors(page)

    # Away from the page: events published meanwhile must arrive on return.
    page.goto("about:blank")
    gap = [act(alice, "speak", "while away, Alice"), act(bob, "speak", "while away, Bob")]
    reference.wait_seen(gap)  # stored and sent by the firehose while the page was away
    page.goto(network.firehose.url)
    expect(page.locator("#conn-state")).to_have_text("live")
    wait_rows(page, want + gap)
    # What the page saved when it left: it redraws that, then resumes right after it.
    restored = hooks(page, "restored")
    assert set(before) <= set(restored)
    last = max(restored)
    assert hooks(page, "connections")[0].endswith(f"cursor={last + 1}")
    assert min(hooks(page, "received")) > last

    # A real reload while both characters keep talking.
    during: Want = []

    def talk() -> None:
        for i in range(2):
            during.append(act(alice, "speak", f"during the reload {i}, Alice"))
            during.append(act(bob, "speak", f"during the reload {i}, Bob"))

    talker = threading.Thread(target=talk, daemon=True)
    talker.start()
    page.reload()
    expect(page.locator("#conn-state")).to_have_text("live")
    talker.join(SEEN_S * 2)
    assert not talker.is_alive(), "the acts did not finish"
    assert len(during) == 4
    wait_rows(page, want + gap + during)

    reference.check_page(page)
    for key in want + gap + during:
        shown = [r for r in rows(page) if (r["from"], r["seq"]) == key]
        assert len(shown) == 1, f"{key} shown {len(shown)} times"
    screenshot(page, network.artifacts, "02-after-reload")
    assert errors.errors == []


def test_character_timeline_and_kind_filter(network: Network, context: BrowserContext) -> None:
    alice, bob = network.alice, network.bob
    page, errors = open_viewer(context, network.firehose.url)
    mine = [act(alice, "speak", "only in Alice's timeline"), act(alice, "text", "Alice's note")]
    theirs = [act(bob, "speak", "Bob, not in Alice's timeline")]
    wait_rows(page, mine + theirs)

    entry = page.locator(f'#online li[data-peer-id="{alice.peer_id}"] button.peer')
    expect(entry).to_be_visible(timeout=DIRECTORY_S * 1000)
    entry.click()
    expect(page.locator("#feed-title")).to_have_text("Timeline of Alice")
    wait_rows(page, mine)
    assert {r["from"] for r in rows(page)} == {alice.peer_id}
    assert f"character={alice.peer_id}" in hooks(page, "connections")[-1]
    screenshot(page, network.artifacts, "03-alice-timeline")

    page.uncheck("#kind-action")
    expect(page.locator("#feed-title")).to_have_text("Timeline of Alice · context only")
    wait_rows(page, mine[1:])
    assert {(r["from"], r["kind"]) for r in rows(page)} == {(alice.peer_id, "context")}
    assert "kind=context" in hooks(page, "connections")[-1]

    page.check("#kind-action")
    page.click("#show-everyone")
    expect(page.locator("#feed-title")).to_have_text("Everyone")
    wait_rows(page, mine + theirs)
    assert errors.errors == []


def test_untrusted_text_and_images_on_a_phone(
    network: Network, browser: Browser, tmp_path: Path
) -> None:
    alice, bob = network.alice, network.bob
    phone = browser.new_context(viewport={"width": PHONE_WIDTH, "height": 800})
    phone.set_default_timeout(SEEN_S * 1000)
    try:
        page, errors = open_viewer(phone, network.firehose.url)
        hostile = '<img src=x onerror="window.__pwned=1">'
        png = tiny_png(tmp_path / "red.png")
        want = [
            act(bob, "speak", hostile),
            act(bob, "speak", "unbroken:" + "x" * 600),
            act(alice, "image", str(png), "--alt", "a small red square"),
        ]
        wait_rows(page, want)

        hostile_row = page.locator(f'[data-from="{bob.peer_id}"][data-seq="{want[0][1]}"]')
        expect(hostile_row).to_contain_text(hostile)
        assert hostile_row.locator("img").count() == 0
        assert page.evaluate("() => window.__pwned === undefined")

        image = page.locator(f'[data-from="{alice.peer_id}"][data-seq="{want[2][1]}"] img')
        expect(image).to_have_attribute("alt", "a small red square")
        assert str(image.get_attribute("src")).startswith("data:image/png;base64,")
        page.wait_for_function(
            "(el) => el.complete && el.naturalWidth === 8", arg=image.element_handle()
        )

        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE_WIDTH, f"horizontal scroll on a phone: {width}px"
        screenshot(page, network.artifacts, "04-phone")
        assert errors.errors == []
    finally:
        phone.close()


def test_a_visit_is_grouped_under_its_two_characters(
    network: Network, context: BrowserContext
) -> None:
    alice, bob = network.alice, network.bob
    page, errors = open_viewer(context, network.firehose.url)
    alice.wait_directory(lambda seen: seen.get(bob.peer_id) == "online", DIRECTORY_S, "Bob")
    out = run_cli("visit", "Bob", "--data-dir", str(alice.data_dir), "--turns", "4", "--json")
    replies = [json.loads(line) for line in out.splitlines() if line.strip()]
    (done,) = [reply for reply in replies if reply.get("done")]
    assert done["outcome"] == "completed", replies
    visit = str(done["visit"])

    group = page.locator(f'.visit[data-visit="{visit}"]')
    expect(group.locator(".event.type-speak")).to_have_count(4)
    expect(group.locator(".visit-head")).to_have_text("Alice ↔ Bob")
    expect(group.locator(".event.type-move")).to_have_count(1)
    expect(group.locator(".event.type-move")).to_contain_text("is visiting Bob")
    speakers = group.locator(".event.type-speak").evaluate_all(
        "(rows) => rows.map((row) => row.dataset.from)"
    )
    assert sorted(speakers) == sorted([alice.peer_id, bob.peer_id] * 2)
    group.scroll_into_view_if_needed()
    screenshot(page, network.artifacts, "05-visit")
    assert errors.errors == []


def test_reconnects_and_resumes_when_the_firehose_restarts(
    tmp_path: Path, context: BrowserContext, nodes: list[NodeProcess]
) -> None:
    """Its own firehose (the module's stays up for the others): stopped under the page,
    then started again where it was; the page says so, backs off, and resumes. Then one
    with a new data dir (new cursors) at the same address: the page starts over."""
    firehose = FirehoseProcess(tmp_path / "data-firehose")
    firehoses = [firehose]
    try:
        firehose.wait_ready()
        carol = start_character(tmp_path, nodes, "Carol", bootstrap=[firehose.dial_addr])
        carol.wait_topic_peers([firehose.peer_id], timeout=READY_S)
        page, errors = open_viewer(context, firehose.url)
        first = [act(carol, "speak", "Carol before the restart")]
        wait_rows(page, first)
        last = int(page.evaluate("() => window.__firehose.state().last"))

        errors.server_down = True
        assert firehose.stop() == 0
        expect(page.locator("#conn-state")).to_have_text("reconnecting")
        expect(page.locator('.notice[data-reason="closing:server_shutdown"]')).to_be_visible()

        restarted = firehose.again()
        firehoses.append(restarted)
        restarted.wait_ready()
        assert restarted.peer_id == firehose.peer_id
        expect(page.locator("#conn-state")).to_have_text("live", timeout=RECONNECT_S * 1000)
        errors.server_down = False
        assert hooks(page, "connections")[-1].endswith(f"cursor={last + 1}")
        expect(page.locator('.notice[data-reason="closing:server_shutdown"]')).to_contain_text(
            "Reconnected"
        )

        carol.wait_topic_peers([firehose.peer_id], timeout=READY_S)
        second = [act(carol, "speak", "Carol after the restart")]
        wait_rows(page, first + second)
        shown = cursors(page)
        assert len(shown) == len(set(shown)), f"duplicate rows: {sorted(shown)}"
        screenshot(page, artifacts_dir(tmp_path), "06-after-restart")

        # Events the page never saw, pruned while it was away: it must say so.
        last = max(shown)
        page.goto("about:blank")
        for i in range(3):
            act(carol, "speak", f"Carol, pruned before the page returns {i}")
        restarted.wait_latest(last + 3)
        assert restarted.stop() == 0
        pruned = restarted.again(extra=["--backlog-keep", "1"])
        firehoses.append(pruned)
        pruned.wait_ready()
        pruned.wait_for(lambda e: e.get("event") == "backlog_pruned", SEEN_S, "pruning")
        page.goto(pruned.url)
        expect(page.locator('.notice[data-reason="cursor_too_old"]')).to_contain_text(
            "too old to replay"
        )
        assert hooks(page, "connections")[0].endswith(f"cursor={last + 1}")
        assert min(hooks(page, "received"), default=last + 2) > last + 1
        screenshot(page, artifacts_dir(tmp_path), "07-cursor-too-old")

        errors.server_down = True
        assert pruned.stop() == 0
        expect(page.locator("#conn-state")).to_have_text("reconnecting")
        fresh = pruned.again(tmp_path / "data-fresh-firehose")
        firehoses.append(fresh)
        fresh.wait_ready()
        reset = page.locator('.notice[data-reason="reset"]')
        expect(reset).to_be_visible(timeout=RECONNECT_S * 1000)
        expect(page.locator("#conn-state")).to_have_text("live")
        errors.server_down = False
        expect(page.locator("[data-cursor]")).to_have_count(0)
        assert "cursor=" not in hooks(page, "connections")[-1]
        assert errors.errors == []
    finally:
        for proc in reversed(firehoses):
            proc.stop()


def test_a_souvenir_action_says_who_used_whose_tool_and_nothing_more(
    network: Network, context: BrowserContext
) -> None:
    alice, bob = network.alice, network.bob
    page, errors = open_viewer(context, network.firehose.url)
    body = {"type": "souvenir", "visit": "ab" * 16, "lender": bob.peer_id, "tool": "get_time"}
    reply = alice.control({"cmd": "publish", "kind": "action", "body": body})
    assert reply["ok"], reply
    wait_rows(page, [(alice.peer_id, int(reply["seq"]))])
    row = page.locator(f'[data-from="{alice.peer_id}"][data-seq="{reply["seq"]}"]')
    expect(row).to_have_class(re.compile(r"\btype-souvenir\b"))
    expect(row.locator(".what")).to_have_text(re.compile(r"^used Bob's souvenir get_time$"))
    row.scroll_into_view_if_needed()
    screenshot(page, network.artifacts, "08-souvenir")
    assert errors.errors == []
