"""``roomverse firehose``: the arguments and the command (``roomverse`` hands
``firehose ...`` to :func:`main` by name).

Exit codes as for ``roomverse``: 0 stopped cleanly, 1 failed at run time, 2 bad usage.
"""

from __future__ import annotations

import argparse
import gc
import sys
from typing import TYPE_CHECKING

from firehose.limits import ViewerLimits, normalize_origin
from keys.cli import passphrase_from
from keys.errors import ConfigError
from node import (
    DEFAULT_LISTEN,
    NetworkSettings,
    add_network_arguments,
    parse_http_addr,
    service_main,
)

if TYPE_CHECKING:
    from firehose.service import FirehoseSettings

EXIT_USAGE = 2
DEFAULT_HTTP = "127.0.0.1:8080"
GC_THRESHOLDS = (50_000, 20, 100)
SWITCH_INTERVAL_S = 0.0005


def add_firehose_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--http",
        default=DEFAULT_HTTP,
        metavar="HOST:PORT",
        help=f"where viewers connect (default {DEFAULT_HTTP}; port 0 = any free port)",
    )
    add_network_arguments(parser, data_dir_default="per user")
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin (http://host:port) allowed to connect besides the page's own",
    )
    defaults = ViewerLimits()
    parser.add_argument(
        "--max-per-ip",
        type=int,
        default=defaults.max_per_ip,
        metavar="N",
        help=f"viewer connections per client address (default {defaults.max_per_ip})",
    )
    parser.add_argument(
        "--backlog-keep",
        type=int,
        metavar="N",
        help="stored envelopes kept for resuming viewers (default 1,000,000)",
    )


def settings_from(args: argparse.Namespace) -> FirehoseSettings:
    """The settings the flags describe; :class:`ConfigError` names a bad flag."""
    from firehose.service import FirehoseSettings

    host, port = parse_http_addr(args.http)
    if args.max_per_ip < 1:
        raise ConfigError("--max-per-ip", "must be at least 1")
    if args.backlog_keep is not None and args.backlog_keep < 1:
        raise ConfigError("--backlog-keep", "must be at least 1")
    extra = {} if args.backlog_keep is None else {"backlog_keep": args.backlog_keep}
    origins = []
    for origin in args.allow_origin:
        normal = normalize_origin(origin)
        if not normal.startswith(("http://", "https://")):
            raise ConfigError("--allow-origin", f"{origin!r} is not an http(s) origin")
        origins.append(normal)
    network = NetworkSettings(
        listen=tuple(args.listen or DEFAULT_LISTEN),
        bootstrap=tuple(args.bootstrap or ()),
        mdns=not args.no_mdns,
    )
    check_network(network)
    return FirehoseSettings(
        http_host=host,
        http_port=port,
        network=network,
        data_dir=args.data_dir,
        limits=ViewerLimits(max_per_ip=args.max_per_ip, allow_origins=frozenset(origins)),
        passphrase=passphrase_from(args.passphrase_file),
        **extra,
    )


def check_network(network: NetworkSettings) -> None:
    # The node's own multiaddr checks, so a typo fails here with the flag named.
    from node import check_network_addrs

    check_network_addrs(network, listen_field="--listen", bootstrap_field="--bootstrap")


def run_firehose_command(args: argparse.Namespace) -> int:
    """Run the firehose in the foreground until SIGINT/SIGTERM."""
    from firehose.service import run_firehose
    from node import EventLog, run_service

    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"roomverse: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    events = EventLog(args.log_format)
    # A firehose with a thousand viewers holds ~0.5M objects the collector tracks; a
    # full collection then stalls every viewer and the node's receive path for 100-300
    # ms. Collecting the young generation less often promotes less of the short-lived
    # per-frame garbage, so full collections become rare (measured: the worst loop stall
    # went from ~300 ms to ~60 ms at 1,000 viewers). Process-wide, so only here.
    gc.set_threshold(*GC_THRESHOLDS)
    # The node stores each batch of envelopes on its SQLite thread, which needs the GIL
    # several times per batch; while the fan-out writes to a thousand sockets the main
    # thread holds it, and the store thread gets it only when the switch interval (5 ms
    # by default) forces a handover, so ingest fell seconds behind at 1,000-2,000
    # viewers with the firehose at half a core. A shorter interval hands it over sooner.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return run_service("firehose", run_firehose, settings, events)


def main(argv: list[str] | None = None) -> int:
    """``python -m firehose``: the same flags as ``roomverse firehose``."""
    return service_main("roomverse firehose", add_firehose_arguments, run_firehose_command, argv)


__all__ = ["main", "run_firehose_command", "settings_from"]
