"""The running firehose: a spectator node, the hub it feeds, the web app, the pruner.

:func:`run_firehose` starts the node (``NodeOptions(spectator=True)``: a key, no
character), registers an envelope listener that only converts and publishes (it runs
inside the node's receive path, so it never awaits), serves the app, and keeps the stored
backlog under ``backlog_keep`` envelopes. On SIGINT/SIGTERM or :meth:`Firehose.stop`,
viewers get ``closing server_shutdown`` before the server and then the node stop.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import time
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
import trio

from firehose.app import FirehoseApp, listening_socket, serve_app
from firehose.events import FirehoseEvent
from firehose.hub import Hub
from firehose.limits import ViewerLimits
from keys import EnvelopeError, Verified, verify
from keys.envelope import MAX_TS_MS
from node import (
    CharacterConfig,
    CharacterNode,
    EventLog,
    FirehoseReading,
    NetworkSettings,
    NodeOptions,
    ReadingsCollector,
    Store,
    add_metrics_routes,
    firehose_families,
    metrics_registry,
    node_collector,
    node_health,
    run_node,
)

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 8080
DEFAULT_BACKLOG_KEEP = 1_000_000
STOP_GRACE_S = 3.0


@dataclass(frozen=True, slots=True)
class FirehoseSettings:
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    """0 picks a free port (the ``firehose_ready`` event says which)."""
    network: NetworkSettings = field(default_factory=NetworkSettings)
    data_dir: Path | None = None
    limits: ViewerLimits = field(default_factory=ViewerLimits)
    backlog_keep: int = DEFAULT_BACKLOG_KEEP
    """Stored envelopes kept for resuming viewers; older ones are pruned."""
    prune_interval_s: float = 60.0
    send_timeout_s: float = 5.0
    """A viewer connection whose data stays unacknowledged this long is cut (kernel)."""
    passphrase: str | None = None

    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        return Path(platformdirs.user_data_dir("roomverse")) / "firehose"

    def node_config(self) -> CharacterConfig:
        # A spectator runs no agent: the config's engines and autonomy are never used.
        return CharacterConfig(
            name="firehose",
            network=self.network,
            data_dir=self.resolved_data_dir(),
        )


class StoreBacklog:
    """The node's SQLite store as the hub's backlog; rows are verified again on the way
    out, so what reaches a viewer is a :class:`keys.Verified` by construction."""

    def __init__(self, node: CharacterNode) -> None:
        self._store: Store = node.store
        self._node = node

    async def bounds(self) -> tuple[int, int]:
        return await self._store.envelope_id_range()

    async def read(self, cursor: int, kinds: Collection[str], limit: int) -> list[FirehoseEvent]:
        rows = await self._store.received_since(cursor, kinds=sorted(kinds), limit=limit)
        out = []
        for row_id, raw, channel in rows:
            try:
                # The timestamp was checked when it arrived; here only its bytes matter.
                envelope = verify(raw, channel=channel, now_ms=0, window_ms=MAX_TS_MS)
            except EnvelopeError as exc:
                logger.warning("stored envelope %d no longer verifies: %s", row_id, exc.reason)
                continue
            out.append(FirehoseEvent.from_verified(row_id, envelope, name_of(self._node, envelope)))
        return out


class IngestLag:
    """How far behind its sender's clock each event reaches the hub (store + gossip +
    validation, plus any clock skew): the half of a viewer's latency that is not the
    fan-out. The last ``keep`` events; read by ``/api/stats``."""

    def __init__(self, keep: int = 4096) -> None:
        self._lags_ms: deque[float] = deque(maxlen=keep)

    def record(self, sent_ms: int, now_ms: int) -> None:
        self._lags_ms.append(now_ms - sent_ms)

    def stats(self) -> dict[str, float | None]:
        return percentiles(self._lags_ms)


class LoopLag:
    """How late the event loop wakes a sleeper: when it grows, every task (the node's
    receive path included) waits that long between steps, i.e. the process is saturated.
    Sampled every ``interval_s``; the last ``keep`` samples."""

    def __init__(self, interval_s: float = 0.01, keep: int = 1000) -> None:
        self.interval_s = interval_s
        self._lags_ms: deque[float] = deque(maxlen=keep)

    async def run(self) -> None:
        while True:
            due = trio.current_time() + self.interval_s
            await trio.sleep_until(due)
            self._lags_ms.append((trio.current_time() - due) * 1000)

    def stats(self) -> dict[str, float | None]:
        return percentiles(self._lags_ms)


def percentiles(values: Collection[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": ordered[len(ordered) // 2],
        "p99": ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)],
        "max": ordered[-1],
    }


def name_of(node: CharacterNode, envelope: Verified) -> str | None:
    entry = node.directory.directory.get(envelope.sender)
    return None if entry is None else entry.card.name


@dataclass
class Firehose:
    """A running firehose, as :func:`run_firehose` reports it."""

    node: CharacterNode
    hub: Hub
    web: FirehoseApp
    url: str = ""
    _stop: trio.Event = field(default_factory=trio.Event, repr=False)
    _node_done: trio.Event = field(default_factory=trio.Event, repr=False)
    _server_stop: trio.Event = field(default_factory=trio.Event, repr=False)
    _server_done: trio.Event = field(default_factory=trio.Event, repr=False)

    @property
    def peer_id(self) -> str:
        return self.node.identity.peer_id_str

    def stop(self) -> None:
        """Shut down gracefully: viewers hear ``server_shutdown``, then all stops."""
        self._stop.set()

    def stats(self) -> dict[str, Any]:
        return self.web.stats()

    async def _until_stopped(self) -> None:
        """Until :meth:`stop` (or a signal) or the node ends; then close in order:
        viewers (told why), the web server, and (by the caller) the node."""
        async with trio.open_nursery() as waiting:
            for flag in (self._stop, self._node_done):
                waiting.start_soon(_cancel_when_set, flag, waiting.cancel_scope)
        self.hub.close_all("server_shutdown")
        with trio.move_on_after(STOP_GRACE_S):
            await self.web.wait_idle()
        self._server_stop.set()
        with trio.move_on_after(STOP_GRACE_S):
            await self._server_done.wait()


def node_stats(node: CharacterNode, lag: IngestLag, loop: LoopLag) -> dict[str, Any]:
    return {
        "libp2p_drops": dataclasses.asdict(node.host.drops),
        "peers": len(node.host.connected_peers()),
        "received": node.received,
        "ingest_lag_ms": lag.stats(),
        "loop_lag_ms": loop.stats(),
    }


def directory_rows(node: CharacterNode) -> list[dict[str, Any]]:
    return [row for row in node.directory.listing() if not row["self"]]


async def run_firehose(
    settings: FirehoseSettings,
    events: EventLog,
    *,
    task_status: TaskStatus[Firehose] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until SIGINT/SIGTERM, :meth:`Firehose.stop`, or cancellation."""
    settings.limits.check()
    # Bound first, so a busy port fails before the node starts; the server takes the
    # socket over (closing it here afterwards is then a no-op).
    with listening_socket(settings.http_host, settings.http_port, settings.send_timeout_s) as sock:
        async with trio.open_nursery() as nursery:
            firehose = await _start(nursery, settings, events, sock)
            events.emit(
                "firehose_ready",
                url=firehose.url,
                peer_id=firehose.peer_id,
                addrs=firehose.node.public_addrs(),
                data_dir=str(settings.resolved_data_dir()),
            )
            task_status.started(firehose)
            await firehose._until_stopped()
            nursery.cancel_scope.cancel()
    events.emit("firehose_stopped", peer_id=firehose.peer_id)


async def _start(
    nursery: trio.Nursery, settings: FirehoseSettings, events: EventLog, sock: socket.socket
) -> Firehose:
    node_done = trio.Event()
    options = NodeOptions(passphrase=settings.passphrase, spectator=True)
    node: CharacterNode = await nursery.start(
        _run_node_then_flag, settings.node_config(), events, options, node_done
    )
    hub = Hub(StoreBacklog(node), settings.limits)
    lag = IngestLag()

    def on_envelope(cursor: int, envelope: Verified) -> None:
        # Inside the node's receive path: convert and hand over, never wait.
        lag.record(envelope.ts_ms, time.time_ns() // 1_000_000)
        hub.publish(FirehoseEvent.from_verified(cursor, envelope, name_of(node, envelope)))

    node.envelope_listeners.append(on_envelope)
    _, stored = await node.store.envelope_id_range()
    hub.latest = max(hub.latest, stored)
    loop = LoopLag()
    nursery.start_soon(loop.run)
    rows, stats = partial(directory_rows, node), partial(node_stats, node, lag, loop)
    web = FirehoseApp(
        hub, settings.limits, directory=rows, stats=stats, send_timeout_s=settings.send_timeout_s
    )
    _add_metrics(web, hub, node)
    firehose = Firehose(node, hub, web, _node_done=node_done)
    firehose.url = await nursery.start(
        partial(_serve_then_flag, web, sock, stop=firehose._server_stop, done=firehose._server_done)
    )
    nursery.start_soon(_prune_periodically, node.store, settings, events)
    nursery.start_soon(_stop_on_signals, firehose, events)
    return firehose


def _add_metrics(web: FirehoseApp, hub: Hub, node: CharacterNode) -> None:
    """``/metrics`` and ``/healthz``: the firehose's own families (viewers, frames encoded,
    slow consumers dropped) and its node's. Open like ``/api/stats``: a firehose shows the
    public network to anyone, and these are counts of it. (Requests other than ``/ws``
    reach the app through the front's relay, so the client's address is not known here.)"""

    def reading() -> FirehoseReading:
        return FirehoseReading(hub.viewers, web.fanout.encoded, hub.closed["slow_consumer"])

    families = ReadingsCollector(firehose_families(reading))
    registry = metrics_registry(node_collector(node), families)
    add_metrics_routes(web.app, registry, partial(node_health, node))


async def _cancel_when_set(flag: trio.Event, scope: trio.CancelScope) -> None:
    await flag.wait()
    scope.cancel()


async def _run_node_then_flag(
    config: CharacterConfig,
    events: EventLog,
    options: NodeOptions,
    done: trio.Event,
    *,
    task_status: TaskStatus[CharacterNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await run_node(config, events, options, task_status=task_status)
    finally:
        done.set()


async def _serve_then_flag(
    web: FirehoseApp,
    sock: socket.socket,
    *,
    stop: trio.Event,
    done: trio.Event,
    task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await serve_app(web, sock=sock, shutdown_trigger=stop.wait, task_status=task_status)
    finally:
        done.set()


async def _prune_periodically(store: Store, settings: FirehoseSettings, events: EventLog) -> None:
    while True:
        removed = await store.prune_envelopes(settings.backlog_keep)
        if removed:
            events.emit("backlog_pruned", removed=removed, keep=settings.backlog_keep)
        await trio.sleep(settings.prune_interval_s)


async def _stop_on_signals(firehose: Firehose, events: EventLog) -> None:
    # Opened after the node's own receiver, so it takes the signals (the last handler
    # installed wins): viewers are told goodbye before the node goes.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            events.emit("stopping", signal=signal.Signals(signum).name)
            firehose.stop()
            return


__all__ = ["Firehose", "FirehoseSettings", "StoreBacklog", "run_firehose"]
