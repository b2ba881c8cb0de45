"""End to end: `python -m firehose` as a real process joined to two real character nodes
on loopback; a WebSocket viewer sees their actions as verified events with names, and
resumes across a firehose restart with the cursors it already had."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from firehose.service import Firehose, FirehoseSettings, run_firehose
from keys import peer_id_from_str, verify
from node.config import NetworkSettings
from node.events import EventLog
from tests.support.firehose_process import FirehoseProcess
from tests.support.firehose_wire import LineClient, open_lines
from tests.support.metrics import TEXT_FORMAT, Scrape
from tests.support.procs import NodeProcess, start_character
from tests.support.visit_party import in_thread
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.timeout(240)
WAIT_S = 30.0


@pytest.fixture
def firehoses() -> Iterator[list[FirehoseProcess]]:
    started: list[FirehoseProcess] = []
    yield started
    for process in started:
        process.stop()


async def start_firehose(
    started: list[FirehoseProcess], data_dir: Path, bootstrap: list[str]
) -> FirehoseProcess:
    process = FirehoseProcess(data_dir, bootstrap=bootstrap)
    started.append(process)
    await in_thread(process.wait_ready, WAIT_S)
    return process


async def wait_names(url: str, names: set[str]) -> None:
    """Until the firehose's directory lists ``names`` online (it names events by it)."""
    async with httpx.AsyncClient(base_url=url) as http:

        async def listed() -> bool:
            rows = (await http.get("/api/directory")).json()["entries"]
            return names <= {r["name"] for r in rows if r["status"] == "online"}

        await wait_until_async(listed, WAIT_S, f"{sorted(names)} online in the directory", poll=0.2)


async def speeches(ws: LineClient, count: int) -> list[dict[str, Any]]:
    """The next ``count`` speak events (greeting waves and the like are skipped)."""
    out: list[dict[str, Any]] = []
    with trio.fail_after(WAIT_S):
        while len(out) < count:
            obj = await ws.next(WAIT_S)
            assert obj["type"] in ("hello", "event"), obj
            if obj["type"] == "event" and obj["body"].get("type") == "speak":
                out.append(obj)
    return out


def check_verified(event: dict[str, Any]) -> None:
    """The event is exactly what its sender signed: re-verify the raw envelope."""
    envelope = verify(base64.b64decode(event["raw"]), channel=event["channel"], now_ms=event["ts"])
    assert envelope.sender == peer_id_from_str(event["from"])
    assert (envelope.kind, envelope.seq, envelope.ts_ms) == (
        event["kind"],
        event["seq"],
        event["ts"],
    )
    assert dict(envelope.body) == event["body"]
    assert envelope.sig.hex() == event["sig"]


async def scrape_shows_a_viewer(url: str) -> None:
    """``/metrics`` (Prometheus text, parsed by prometheus_client) counts the viewer and
    the frames it was sent, beside the firehose node's own families; ``/healthz`` is ok."""
    async with httpx.AsyncClient(base_url=url) as http:
        answer = await http.get("/metrics")
        health = await http.get("/healthz")
    assert answer.status_code == 200 and answer.headers["content-type"] == TEXT_FORMAT
    scrape = Scrape(answer.text)
    assert scrape.value("roomverse_firehose_viewers") == 1
    frames = scrape.value("roomverse_firehose_frames_total")
    assert frames is not None and frames >= 1
    assert scrape.value("roomverse_firehose_slow_consumer_drops_total") == 0
    received = scrape.value("roomverse_envelopes_received_total")
    assert received is not None and received >= 2
    assert health.status_code == 200 and health.json()["status"] == "ok"


async def test_viewer_sees_verified_named_actions_and_resumes_across_restart(
    tmp_path: Path, nodes: list[NodeProcess], firehoses: list[FirehoseProcess]
) -> None:
    mina = await in_thread(start_character, tmp_path, nodes, "Mina")
    kai = await in_thread(start_character, tmp_path, nodes, "Kai", bootstrap=mina.addrs[:1])
    data_dir = tmp_path / "firehose"
    firehose = await start_firehose(firehoses, data_dir, mina.addrs[:1])
    for node in (mina, kai):
        await in_thread(node.wait_topic_peers, [firehose.peer_id], WAIT_S)
    await wait_names(firehose.url, {"Mina", "Kai"})

    async with open_lines(firehose.ws_url) as ws:
        hello = await ws.next(WAIT_S)
        assert hello["type"] == "hello"
        await in_thread(mina.act, "speak", "hello from Mina")
        await in_thread(kai.act, "speak", "and Kai answers")
        first = await speeches(ws, 2)
        await scrape_shows_a_viewer(firehose.url)
    by_name = {e["name"]: e for e in first}
    assert set(by_name) == {"Mina", "Kai"}
    assert by_name["Mina"]["from"] == mina.peer_id and by_name["Kai"]["from"] == kai.peer_id
    assert by_name["Kai"]["body"] == {"type": "speak", "text": "and Kai answers"}
    for event in first:
        check_verified(event)
    last = max(e["cursor"] for e in first)

    before = firehose.peer_id
    await in_thread(firehose.stop)
    assert firehose.of("firehose_stopped")
    firehose = await start_firehose(firehoses, data_dir, mina.addrs[:1])
    assert firehose.peer_id == before  # same key, same database
    for node in (mina, kai):
        await in_thread(node.wait_topic_peers, [firehose.peer_id], WAIT_S)

    async with open_lines(firehose.ws_url + f"?cursor={last}") as ws:
        hello = await ws.next(WAIT_S)
        assert hello["latest"] >= last
        await in_thread(mina.act, "speak", "Mina again, after the restart")
        resumed = await speeches(ws, 2)
    assert resumed[0]["cursor"] == last  # inclusive: the last one seen comes again
    assert resumed[0]["raw"] == next(e for e in first if e["cursor"] == last)["raw"]
    assert resumed[1]["cursor"] > last and resumed[1]["name"] == "Mina"
    assert resumed[1]["body"]["text"] == "Mina again, after the restart"
    check_verified(resumed[1])
    async with httpx.AsyncClient(base_url=firehose.url) as http:
        stats = (await http.get("/api/stats")).json()
    assert stats["libp2p_drops"]["buffer_overflow"] == 0
    assert stats["libp2p_drops"]["subscription_overflow"] == 0


async def test_in_process_firehose_prunes_its_backlog_and_says_goodbye(
    tmp_path: Path, nodes: list[NodeProcess]
) -> None:
    """``run_firehose`` in the test's own trio loop (how load tests start it): a resume
    from a pruned cursor is told ``cursor_too_old``; stop() closes viewers with 1001."""
    network = NetworkSettings(listen=("/ip4/127.0.0.1/tcp/0",), mdns=False)
    settings = FirehoseSettings(
        http_port=0, network=network, data_dir=tmp_path / "fh", backlog_keep=2, prune_interval_s=0.1
    )
    log = io.StringIO()
    async with trio.open_nursery() as nursery:
        firehose: Firehose = await nursery.start(run_firehose, settings, EventLog("json", log))
        mina = await in_thread(
            start_character, tmp_path, nodes, "Mina", bootstrap=firehose.node.public_addrs()[:1]
        )
        await in_thread(mina.wait_topic_peers, [firehose.peer_id], WAIT_S)
        ws_url = firehose.url.replace("http://", "ws://") + "/ws"
        async with open_lines(ws_url) as ws:
            assert (await ws.next(WAIT_S))["type"] == "hello"
            for i in range(4):
                await in_thread(mina.act, "speak", f"line {i}")
            first = (await speeches(ws, 4))[0]["cursor"]

        async def pruned() -> bool:
            oldest, _ = await firehose.node.store.envelope_id_range()
            return oldest > int(first)

        # The pruner runs every 0.1 s; nothing signals it from outside.
        await wait_until_async(pruned, WAIT_S, f"the pruner to drop cursor {first}")
        async with open_lines(f"{ws_url}?cursor={first}") as ws:
            hello = await ws.next(WAIT_S)
            too_old = await ws.next(WAIT_S)
            assert too_old == {
                "type": "cursor_too_old",
                "cursor": first,
                "oldest": too_old["oldest"],
            }
            assert too_old["oldest"] > first and hello["oldest"] == too_old["oldest"]
            resumed = await ws.next(WAIT_S)
            assert resumed["type"] == "event" and resumed["cursor"] == too_old["oldest"]
            firehose.stop()
            assert await ws.closed_with(WAIT_S) == (1001, "server_shutdown")
            assert ws.rest()[-1] == {"type": "closing", "reason": "server_shutdown"}
    assert '"event": "firehose_stopped"' in log.getvalue()
    assert '"event": "backlog_pruned"' in log.getvalue()
