"""One character as a process: from its config to a running node, and back out cleanly.

:func:`open_character` locks the data dir and opens the key, store and host a
:class:`~node.character.CharacterNode` is built from; :func:`run_node` subscribes it, starts
its tasks (dialer, mDNS, directory, agent, control socket, dashboard) and runs until
cancelled (Ctrl-C, SIGTERM), then says `left` before it goes.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    # libp2p pulls in trio-typing, whose trio-stubs shadow trio's own annotations.
    from trio_typing import TaskStatus

from keys import (
    PROTO_SYNC,
    TOPIC_ACTIONS,
    TOPIC_CONTEXTS,
    TOPIC_DIRECTORY,
    ReplayWindow,
    load_or_create_key,
)
from keys.cli import KEY_FILE_NAME
from node import _libp2p
from node.catch_up.wire import PROTO_CATCH_UP
from node.character import CharacterNode
from node.config import CharacterConfig
from node.control.commands import handle_control
from node.control.socket import serve_control
from node.directory.name_card import check_card
from node.directory.replica import DirectorySettings
from node.engine.shared import SharedEngineSlot
from node.events import EventLog
from node.net.dialing import run_dialer
from node.net.lan_addrs import advertisable_addrs
from node.net.mdns.discovery import open_mdns_discovery
from node.storage.data_dir import DataDirBusy, lock_data_dir
from node.storage.store import Store

PUBLIC_TOPICS = {TOPIC_ACTIONS: "action", TOPIC_CONTEXTS: "context"}

DB_FILE = "character.db"
LEAVE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class NodeOptions:
    passphrase: str | None = None
    greet: bool = True
    spectator: bool = False
    """A node with a key but no character (the firehose): it joins, listens, keeps the
    directory and serves anti-entropy, but writes no entry, greets nobody, never visits."""
    listed: bool = False
    """A spectator that is in the directory all the same (a bridge: characters dial it
    by its entry); its card says it takes no visits."""
    mdns_interval: float = 2.0
    directory: DirectorySettings = field(default_factory=DirectorySettings)
    turn_timeout_s: float = 120.0
    """How long a visit waits for the partner's next line (their engine is thinking)."""
    dashboard: str | None = None
    """``HOST:PORT`` of the owner's dashboard (``--dashboard``); None serves none."""
    dashboard_public: bool = False
    """Allow the dashboard on a non-loopback address (``--dashboard-public``)."""
    meshsub: tuple[str, ...] = _libp2p.MESHSUB_PROTOCOLS
    """Gossipsub versions offered, newest first (a benchmark may leave one out)."""
    shared_engine: SharedEngineSlot | None = None
    """An embedded engine several characters share (the party's); None: an ``embedded``
    engine in the config loads a model of its own."""
    handle_signals: bool = True
    """Stop on SIGINT/SIGTERM. False when several characters run in one process: the
    process (the party) handles the signals and cancels them all."""


@asynccontextmanager
async def open_character(
    config: CharacterConfig, events: EventLog, options: NodeOptions
) -> AsyncIterator[CharacterNode]:
    data_dir = config.resolved_data_dir()
    with lock_data_dir(data_dir):
        identity, created = load_or_create_key(data_dir / KEY_FILE_NAME, options.passphrase)
        if created:
            events.emit("key_created", peer_id=identity.peer_id_str)
        if not options.spectator:
            check_card(config, identity)
        store = Store(data_dir / DB_FILE)
        try:
            replay = ReplayWindow()
            for mark in await store.load_replay_marks():
                replay.restore(mark.sender, mark.hwm, mark.mask)

            def on_drop(topic: str, why: str) -> None:
                events.emit("dropped", topic=topic, reason=why)

            async with _libp2p.open_p2p_host(
                identity.seed, config.network.listen, on_drop=on_drop, meshsub=options.meshsub
            ) as host:
                node = CharacterNode(
                    config,
                    identity,
                    store,
                    host,
                    events,
                    replay,
                    options.directory,
                    options.turn_timeout_s,
                    options.spectator,
                    options.shared_engine,
                    listed=options.listed,
                )
                known = await node.directory.load()
                if known:
                    events.emit("directory_restored", entries=known)
                yield node
        finally:
            store.close()


async def run_node(
    config: CharacterConfig,
    events: EventLog,
    options: NodeOptions | None = None,
    *,
    task_status: TaskStatus[CharacterNode] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one character until cancelled or until SIGINT/SIGTERM."""
    options = options or NodeOptions()
    async with open_character(config, events, options) as node:
        try:
            await _run_character(node, config, events, options, task_status)
        finally:
            # A clean stop (signal, Ctrl-C) says `left`, so peers need not wait for the
            # lease; bounded, and shielded from the cancellation that got us here.
            with trio.CancelScope(shield=True), trio.move_on_after(LEAVE_TIMEOUT_S):
                await node.directory.leave()
                await node.host.flush(LEAVE_TIMEOUT_S)
    events.emit("stopped", peer_id=node.identity.peer_id_str)


async def _run_character(
    node: CharacterNode,
    config: CharacterConfig,
    events: EventLog,
    options: NodeOptions,
    task_status: TaskStatus[CharacterNode],
) -> None:
    async with trio.open_nursery() as nursery:
        if options.handle_signals:
            nursery.start_soon(_stop_on_signals, nursery.cancel_scope, events)
        for topic in PUBLIC_TOPICS:
            node.host.set_validator(topic, node.validator(topic))
            messages = await node.host.subscribe(topic)
            nursery.start_soon(node.consume, topic, messages)
        node.host.set_validator(TOPIC_DIRECTORY, node.validator(TOPIC_DIRECTORY))
        nursery.start_soon(node.consume_directory, await node.host.subscribe(TOPIC_DIRECTORY))
        node.host.set_stream_handler(PROTO_SYNC, node.anti_entropy.serve)
        node.host.set_stream_handler(PROTO_CATCH_UP, node.catch_up.serve)
        nursery.start_soon(node.watch_peers, nursery, options.greet and not options.spectator)
        await nursery.start(
            serve_control, config.resolved_data_dir(), lambda request: handle_control(node, request)
        )
        for addr in config.network.bootstrap:
            transport, peer_id = _libp2p.split_peer_addr(addr)
            node.book.want(peer_id, (transport,), "bootstrap", trio.current_time(), permanent=True)
        nursery.start_soon(
            lambda: run_dialer(
                node.book,
                node.dial,
                node.host.is_connected,
                node.dialer_wakeups,
                on_failure=lambda peer, why: events.emit("dial_failed", peer_id=peer, error=why),
            )
        )
        if config.network.mdns:
            await nursery.start(_run_mdns, node, options.mdns_interval)
        await nursery.start(node.directory.run)
        nursery.start_soon(node.anti_entropy.run_periodically, nursery)
        nursery.start_soon(node.catch_up.run_periodically, nursery)
        nursery.start_soon(node.liveness.run, nursery)
        nursery.start_soon(node.gossip_health.run)
        if node.agent is not None:
            await nursery.start(node.agent.run)
        if options.dashboard is not None:
            from node.dashboard import serve_dashboard  # quart loads only when asked for

            await nursery.start(
                partial(
                    serve_dashboard,
                    node,
                    options.dashboard,
                    allow_public=options.dashboard_public,
                    events=events,
                )
            )
        events.emit(
            "ready",
            peer_id=node.identity.peer_id_str,
            name=config.name,
            addrs=node.public_addrs(),
            mdns=config.network.mdns,
            data_dir=str(config.resolved_data_dir()),
        )
        task_status.started(node)


async def _run_mdns(
    node: CharacterNode,
    interval: float,
    *,
    task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    addrs = advertisable_addrs(node.host.listen_addrs())
    async with open_mdns_discovery(node.identity.peer_id_str, addrs, interval=interval) as mdns:
        task_status.started()
        async for peer in mdns.peers:
            node.discovered(peer.peer_id, peer.addrs, "mdns")


async def _stop_on_signals(scope: trio.CancelScope, events: EventLog) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            events.emit("stopping", signal=signal.Signals(signum).name)
            scope.cancel()
            return


__all__ = [
    "DataDirBusy",
    "NodeOptions",
    "open_character",
    "run_node",
]
