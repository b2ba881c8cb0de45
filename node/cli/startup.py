"""What every RoomVerse process (node, firehose) checks and sets up before it starts:
its multiaddrs, and logging that never writes PII."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from keys.errors import ConfigError, LocalError, RoomverseError
from node import _libp2p
from node.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from node.config import NetworkSettings
from node.events import EventLog


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


def parse_http_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) → (host, port); a :class:`ConfigError`
    names ``--http`` (the flag of every process that serves HTTP: firehose, bridge)."""
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError("--http", f"expected HOST:PORT, got {text!r}")
    return host, int(port_text)


def run_service(
    what: str, run: Callable[[Any, EventLog], Awaitable[object]], settings: Any, events: EventLog
) -> int:
    """``trio.run(run, settings, events)`` in the foreground until SIGINT/SIGTERM; the exit
    code (:mod:`node.cli.exit_codes`): a local error is bad usage, a peer's or the
    network's a run-time failure, each said on stderr in one line; anything else raises."""
    import trio

    try:
        trio.run(run, settings, events)
    except KeyboardInterrupt:
        events.emit("stopped", reason="interrupt")
    except (Exception, BaseExceptionGroup) as exc:
        cause: BaseException = exc
        while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
            cause = cause.exceptions[0]  # the first real error inside trio's groups
        if isinstance(cause, RoomverseError):
            print(f"roomverse: {cause}", file=sys.stderr)
            return EXIT_USAGE if isinstance(cause, LocalError) else EXIT_FAILED
        if isinstance(cause, OSError):
            print(f"roomverse: {what} cannot start: {cause}", file=sys.stderr)
            return EXIT_FAILED
        raise
    return EXIT_OK


def service_main(
    prog: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run_command: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None,
) -> int:
    """``python -m PACKAGE`` for a command another package owns (``roomverse firehose``,
    ``roomverse bridge``): parse, set up logging, run."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logs on stderr")
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    setup_logging(args.verbose)
    return run_command(args)
