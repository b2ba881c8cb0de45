"""What every RoomVerse process (node, firehose) checks and sets up before it starts:
its multiaddrs, and logging that never writes PII."""

from __future__ import annotations

import logging
import sys

from keys.errors import ConfigError
from node import _libp2p
from node.config import NetworkSettings


def check_network_addrs(
    network: NetworkSettings,
    *,
    listen_field: str = "network.listen",
    bootstrap_field: str = "network.bootstrap",
) -> None:
    """Refuse a listen or bootstrap multiaddr libp2p cannot use, naming the field."""
    for i, addr in enumerate(network.listen):
        try:
            _libp2p.validate_listen_addr(addr)
        except _libp2p.DialError as exc:
            raise ConfigError(f"{listen_field}[{i}]", str(exc)) from None
    for i, addr in enumerate(network.bootstrap):
        try:
            _libp2p.split_peer_addr(addr)
        except _libp2p.DialError as exc:
            raise ConfigError(f"{bootstrap_field}[{i}]", str(exc)) from None


def setup_logging(verbosity: int) -> None:
    """stderr logging at WARNING (-v INFO, -vv DEBUG), every record PII-scrubbed,
    py-libp2p's included (at the level ``LIBP2P_DEBUG`` sets, WARNING without it)."""
    from node.privacy.log_scrub import RedactingFilter

    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # On the handler, so records of every library's loggers (libp2p dumps payloads in hex
    # at DEBUG) are redacted before they are written.
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=level, handlers=[handler])
    # py-libp2p logs through handlers of its own when LIBP2P_DEBUG is set: bring its
    # records to this handler instead (its levels stay as LIBP2P_DEBUG set them).
    _libp2p.route_logging_to_root()
