"""``roomverse node``: a character's config plus the command line's overrides becomes a
running process (:func:`node.process.run_node`), until Ctrl-C."""

from __future__ import annotations

import argparse

import trio

from keys.cli import passphrase_from
from keys.errors import ConfigError
from node.cli.exit_codes import EXIT_OK
from node.cli.startup import check_network_addrs
from node.config import load_config, with_overrides
from node.directory.replica import DirectorySettings
from node.events import EventLog


def run_node_command(args: argparse.Namespace) -> int:
    # Loaded here, not at the top: the agent's engines and the dashboard's web framework
    # are for a running node, and every other command would pay for them.
    from node.process import NodeOptions, run_node

    config = load_config(args.character)
    config = with_overrides(
        config,
        listen=args.listen,
        bootstrap=args.bootstrap,
        mdns=False if args.no_mdns else None,
        data_dir=args.data_dir,
        engine_url=args.engine_url,
        engine_model=args.engine_model,
        autonomy=None if args.autonomy is None else args.autonomy == "on",
        visit_interval_s=args.visit_interval,
    )
    check_network_addrs(config.network)
    if args.dashboard is not None:
        from node.dashboard import check_bind

        check_bind(args.dashboard, allow_public=args.dashboard_public)
    options = NodeOptions(
        passphrase=passphrase_from(args.passphrase_file),
        greet=not args.no_greet,
        directory=directory_settings(args),
        turn_timeout_s=args.turn_timeout if args.turn_timeout is not None else 120.0,
        dashboard=args.dashboard,
        dashboard_public=args.dashboard_public,
    )
    events = EventLog(args.log_format)
    try:
        trio.run(run_node, config, events, options)
    except KeyboardInterrupt:
        events.emit("stopped", reason="interrupt")
    except ExceptionGroup as group:
        # A setting found unusable once the node was starting (a busy dashboard port).
        config_error, _ = group.split(ConfigError)
        if config_error is None:
            raise
        raise first_leaf(config_error) from None
    return EXIT_OK


def directory_settings(args: argparse.Namespace) -> DirectorySettings:
    """``--heartbeat``, ``--lease`` and ``--sync-interval``; the lease is at least three
    heartbeats unless it is given."""
    defaults = DirectorySettings()
    heartbeat = args.heartbeat if args.heartbeat is not None else defaults.heartbeat_s
    settings = DirectorySettings(
        heartbeat_s=heartbeat,
        lease_s=args.lease if args.lease is not None else max(defaults.lease_s, 3 * heartbeat),
        sync_interval_s=(
            args.sync_interval if args.sync_interval is not None else defaults.sync_interval_s
        ),
    )
    settings.check()
    return settings


def first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside trio's (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
