"""The running bridge: a node with its own key and no character (a spectator, as the
firehose is), its registry of legacy participants, and the HTTP face.

:func:`run_bridge` starts the node, then serves the app until SIGINT/SIGTERM or
cancellation; ``bridge_ready`` (its URL, PeerID and multiaddrs) says it is up.
"""

from __future__ import annotations

import logging
import signal
import socket
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from bridge.app import create_bridge_app
from bridge.guard import Gate, Limits
from bridge.hosting import LegacyHostFactory
from bridge.participants import ANSWER_TIMEOUT_S
from bridge.registry import DEFAULT_LEASE_S, Registry
from bridge.urls import guarded_client
from bridge.visits import LegacyVisits
from keys import peer_id_from_str
from keys.errors import InvalidPeerId
from node import (
    CharacterConfig,
    CharacterNode,
    EventLog,
    NetworkSettings,
    NodeOptions,
    host_for_legacy,
    node_collector,
    node_health,
    now_ms,
    run_node,
)
from registry_crdt import NameCard, Presence

if TYPE_CHECKING:
    from trio_typing import TaskStatus

logger = logging.getLogger(__name__)

DEFAULT_HTTP_PORT = 8000


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    """0 picks a free port (``bridge_ready`` says which)."""
    token: str | None = None
    """The shared community token; None only with ``--open`` on a loopback address."""
    allow_private_urls: bool = False
    trust_proxy: bool = False
    public_url: str | None = None
    """How legacy clients reach this bridge (behind ngrok: the ngrok URL); default: the
    URL each request came to."""
    metrics_public: bool = False
    """``/metrics`` and ``/healthz`` pass the gate (token, rates) like any route, instead
    of answering this machine only."""
    limits: Limits = field(default_factory=Limits)
    lease_s: float = DEFAULT_LEASE_S
    character: str | None = None
    """The character (a name or PeerID) the root /manifest, /visit, /chat and
    /.well-known/agent-card.json front; None: they answer 404."""
    network: NetworkSettings = field(default_factory=NetworkSettings)
    data_dir: Path | None = None
    passphrase: str | None = None

    def resolved_data_dir(self) -> Path:
        if self.data_dir is not None:
            return self.data_dir
        return Path(platformdirs.user_data_dir("roomverse")) / "bridge"

    def node_config(self) -> CharacterConfig:
        return CharacterConfig(
            name="bridge",
            description="An HTTP bridge: legacy HTTP participants reach the network here.",
            network=self.network,
            data_dir=self.resolved_data_dir(),
        )


async def run_bridge(
    settings: BridgeSettings,
    events: EventLog,
    *,
    task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until SIGINT/SIGTERM or cancellation; reports the HTTP URL."""
    settings.limits.check()
    sock = _bound(settings.http_host, settings.http_port)  # a busy port fails first
    async with trio.open_nursery() as nursery:
        # Listed, so characters find the bridge's address in the directory when they
        # visit a legacy participant it vouches for; its card says it takes no visits.
        options = NodeOptions(passphrase=settings.passphrase, spectator=True, listed=True)
        node: CharacterNode = await nursery.start(run_node, settings.node_config(), events, options)
        client = guarded_client(
            allow_private=settings.allow_private_urls, timeout_s=ANSWER_TIMEOUT_S
        )
        registry = Registry(
            node.directory,
            node.identity.peer_id,
            client,
            allow_private=settings.allow_private_urls,
            lease_s=settings.lease_s,
        )
        gate = Gate(settings.token, settings.limits, trust_proxy=settings.trust_proxy)
        front = None if settings.character is None else partial(fronted, node, settings.character)
        app = create_bridge_app(
            registry,
            gate,
            node.directory.listing,
            partial(character_card, node),
            LegacyVisits(node, registry, nursery),
            front=front,
            addrs_of=partial(addrs_of, node),
            public_url=settings.public_url,
            node_metrics=node_collector(node),
            health=partial(node_health, node),
            metrics_public=settings.metrics_public,
        )
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("roomverse.bridge.http")
        config.h11_max_incomplete_size = 16 * 1024
        stop = trio.Event()
        binds: list[str] = await nursery.start(
            lambda task_status: serve(
                app, config, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        url = binds[0].replace("0.0.0.0", "127.0.0.1")
        host_for_legacy(node, LegacyHostFactory(node, client, settings.public_url or url))
        events.emit(
            "bridge_ready",
            url=url,
            peer_id=node.identity.peer_id_str,
            addrs=node.public_addrs(),
            open=settings.token is None,
        )
        task_status.started(url)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                events.emit("stopping", signal=signal.Signals(signum).name)
                break
        stop.set()
        await client.aclose()
        nursery.cancel_scope.cancel()
    events.emit("bridge_stopped")


def character_card(node: CharacterNode, peer_id: str) -> NameCard | None:
    """The card of the libp2p character ``peer_id`` if it is online (not a legacy
    participant, not a bridge)."""
    try:
        entry = node.directory.directory.get(peer_id_from_str(peer_id))
    except InvalidPeerId:
        return None
    if entry is None or entry.vouch is not None or not entry.card.capabilities.accepts_visits:
        return None  # unknown, a legacy participant, or a bridge
    if entry.presence(now_ms()) not in _PRESENT:
        return None
    return entry.card


def fronted(node: CharacterNode, wanted: str) -> str | None:
    """The PeerID of the online libp2p character called ``wanted`` (a name, any case, or
    a PeerID), or None."""
    now = now_ms()
    folded = wanted.casefold()
    for entry in node.directory.directory.entries():
        if entry.vouch is not None or entry.presence(now) not in _PRESENT:
            continue
        if not entry.card.capabilities.accepts_visits:
            continue
        if entry.peer_str == wanted or entry.card.name.casefold() == folded:
            return entry.peer_str
    return None


def addrs_of(node: CharacterNode, peer_id: str) -> list[str]:
    try:
        entry = node.directory.directory.get(peer_id_from_str(peer_id))
    except InvalidPeerId:
        return []
    return [] if entry is None else list(entry.addrs)


_PRESENT = (Presence.ONLINE, Presence.AWAY, Presence.ASLEEP)


def _bound(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
