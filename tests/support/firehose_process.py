"""`python -m firehose ... --log-format json` as a real process, followed through its
event lines: the end-to-end firehose tests and the browser tests start it this way."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.line_reader import Event
from tests.support.procs import POLL_INTERVAL_S, JsonLinesProcess
from tests.support.waiting import wait_until

READY_S = 60.0
"""Process start-up (imports, libp2p host, first peering) on a loaded 2-core machine."""
STORED_S = 30.0
"""From an act to the firehose's store: gossip, verification, the write."""


class FirehoseProcess(JsonLinesProcess):
    """A firehose on loopback (HTTP and libp2p on free ports unless told), mDNS off,
    bootstrapping to ``bootstrap``; call :meth:`wait_ready` before using its addresses."""

    def __init__(
        self,
        data_dir: Path,
        *,
        bootstrap: Sequence[str] = (),
        http: str = "127.0.0.1:0",
        listen: str = "/ip4/127.0.0.1/tcp/0",
        extra: Sequence[str] = (),
    ) -> None:
        argv = [sys.executable, "-m", "firehose", "--http", http, "--listen", listen]
        argv += ["--no-mdns", "--log-format", "json", "--data-dir", str(data_dir)]
        for addr in bootstrap:
            argv += ["--bootstrap", addr]
        super().__init__([*argv, *extra], name="firehose")
        self.data_dir = data_dir
        self.bootstrap = list(bootstrap)
        self.ready: Event = {}

    def wait_ready(self, timeout: float = READY_S) -> Event:
        self.ready = self.wait_for(
            lambda e: e.get("event") == "firehose_ready", timeout, "firehose_ready"
        )
        return self.ready

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, as the firehose printed it (no trailing slash)."""
        return str(self.ready["url"]).rstrip("/")

    @property
    def ws_url(self) -> str:
        """The viewers' WebSocket endpoint."""
        return self.url.replace("http://", "ws://", 1) + "/ws"

    @property
    def peer_id(self) -> str:
        return str(self.ready["peer_id"])

    @property
    def dial_addr(self) -> str:
        """A dialable loopback ``/p2p/`` multiaddr of the firehose, from its ready event
        (what a node bootstraps to)."""
        for addr in self.ready.get("addrs", []):
            if str(addr).startswith("/ip4/127.0.0.1/") and "/p2p/" in str(addr):
                return str(addr)
        raise AssertionError(f"firehose_ready has no loopback /p2p/ address: {self.ready}")

    def again(self, data_dir: Path | None = None, extra: Sequence[str] = ()) -> FirehoseProcess:
        """A new firehose on the same HTTP and libp2p addresses (so pages and nodes find
        it where it was), on the same data dir unless told; not yet ready."""
        return FirehoseProcess(
            data_dir or self.data_dir,
            bootstrap=self.bootstrap,
            http=self.url.removeprefix("http://"),
            listen=self.dial_addr.split("/p2p/")[0],
            extra=extra,
        )

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/api/stats", timeout=10) as reply:
            return dict(json.load(reply))

    def wait_latest(self, cursor: int, timeout: float = STORED_S) -> None:
        """Poll ``/api/stats`` until the firehose has stored ``cursor``."""
        latest = 0

        def stored() -> bool:
            nonlocal latest
            latest = int(self.stats()["latest"])
            return latest >= cursor

        wait_until(
            stored,
            timeout,
            f"the firehose to store cursor {cursor}",
            poll=POLL_INTERVAL_S,
            detail=lambda: f"latest: {latest}",
        )


__all__ = ["READY_S", "FirehoseProcess"]
