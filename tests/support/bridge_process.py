"""`python -m bridge ... --log-format json` as a real process, followed through its event
lines, and the seed protocol's HTTP calls against it (with ``requests``, as the seed's
own snippets are written)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import requests

from bridge.guard import TOKEN_HEADER
from tests.support.line_reader import Event
from tests.support.procs import JsonLinesProcess
from tests.support.visit_party import Member, in_thread
from tests.support.waiting import wait_until

READY_S = 60.0
TOKEN = "community-token-for-the-tests-0123456789"


class BridgeProcess(JsonLinesProcess):
    """A bridge on loopback (HTTP and libp2p on free ports), mDNS off, with the community
    token :data:`TOKEN` (written to a file) unless ``open``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        bootstrap: Sequence[str] = (),
        open_: bool = False,
        extra: Sequence[str] = (),
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "bridge", "--http", "127.0.0.1:0"]
        argv += ["--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--log-format", "json"]
        argv += ["--data-dir", str(data_dir)]
        if open_:
            argv.append("--open")
        else:
            token_file = data_dir / "token"
            token_file.write_text(TOKEN + "\n")
            argv += ["--token-file", str(token_file)]
        for addr in bootstrap:
            argv += ["--bootstrap", addr]
        super().__init__([*argv, *extra], name="bridge")
        self.token = None if open_ else TOKEN
        self.ready: Event = {}

    def wait_ready(self, timeout: float = READY_S) -> Event:
        self.ready = self.wait_for(
            lambda e: e.get("event") == "bridge_ready", timeout, "bridge_ready"
        )
        return self.ready

    @property
    def url(self) -> str:
        return str(self.ready["url"]).rstrip("/")

    @property
    def addrs(self) -> list[str]:
        return [str(a) for a in self.ready["addrs"]]

    @property
    def peer_id(self) -> str:
        return str(self.ready["peer_id"])

    def headers(self, **more: str) -> dict[str, str]:
        return {TOKEN_HEADER: self.token or "", **more}

    def post(self, path: str, body: Any, **headers: str) -> requests.Response:
        return requests.post(
            f"{self.url}{path}", json=body, headers=self.headers(**headers), timeout=30
        )

    def get(self, path: str, **headers: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", headers=self.headers(**headers), timeout=30)


@asynccontextmanager
async def bridge_beside(
    member: Member, tmp_path: Path, *extra: str, name: str = "bridge"
) -> AsyncIterator[BridgeProcess]:
    """A bridge bootstrapped from ``member`` (private URLs allowed, behind a trusted
    proxy), its data in ``tmp_path / name``, once it lists ``member`` in its directory."""
    bridge = BridgeProcess(
        tmp_path / name,
        bootstrap=member.node.addrs[:1],
        extra=["--allow-private-urls", "--trust-proxy", *extra],
    )
    try:
        await in_thread(bridge.wait_ready)

        def lists_host() -> bool:
            rows = bridge.get("/directory").json()["online"]
            return any(row["id"] == member.node.peer_id for row in rows)

        await in_thread(wait_until, lists_host, 30, f"{member.name} listed by the bridge")
        yield bridge
    finally:
        await in_thread(bridge.stop)
