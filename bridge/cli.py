"""``roomverse bridge``: the arguments and the command (``roomverse`` hands ``bridge ...``
to :func:`main` by name). Exit codes as for ``roomverse``: 0 stopped cleanly, 1 failed at
run time, 2 bad usage.

Without ``--token-file`` the bridge refuses to start unless ``--open`` is given, and
``--open`` is refused on an address other than loopback: an open bridge on the internet
would hand anyone the owners' engines.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.guard import Limits
from bridge.rate import Rate
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
    from bridge.service import BridgeSettings

EXIT_USAGE = 2
DEFAULT_HTTP = "127.0.0.1:8000"
MAX_TOKEN_BYTES = 1024


def add_bridge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--http",
        default=DEFAULT_HTTP,
        metavar="HOST:PORT",
        help=f"where legacy participants connect (default {DEFAULT_HTTP}; port 0 = any)",
    )
    access = parser.add_mutually_exclusive_group()
    access.add_argument(
        "--token-file", type=Path, help="file holding the shared community token (required)"
    )
    access.add_argument(
        "--open", action="store_true", help="no token (refused unless --http is loopback)"
    )
    parser.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="let participants register http:// and loopback/private addresses (LAN, tests)",
    )
    parser.add_argument(
        "--trust-proxy",
        action="store_true",
        help="take the client address from X-Forwarded-For's last hop (behind ngrok)",
    )
    parser.add_argument(
        "--public-url", metavar="URL", help="how clients reach this bridge (the ngrok URL)"
    )
    parser.add_argument(
        "--metrics-public",
        action="store_true",
        help="answer /metrics and /healthz to anyone with the token (default: only to this"
        " machine, not through a proxy)",
    )
    parser.add_argument(
        "--character",
        metavar="NAME_OR_ID",
        help="the character the root /manifest, /visit, /chat and agent card front",
    )
    parser.add_argument(
        "--lease",
        type=float,
        metavar="SECONDS",
        help="a registration lasts this long unless renewed (default 300)",
    )
    limits = Limits()
    for flag, rate, what in (
        ("--visits-per-minute", limits.visit_per_ip, "visits per client address"),
        ("--chats-per-minute", limits.chat_per_ip, "chat requests per client address"),
        ("--requests-per-minute", limits.other_per_ip, "other requests per client address"),
        ("--token-requests-per-minute", limits.per_token, "requests per token, all routes"),
    ):
        parser.add_argument(
            flag,
            type=float,
            metavar="N",
            help=f"{what} (default {rate.per_minute:g}, bursts of {rate.burst})",
        )
    add_network_arguments(parser, data_dir_default="per user")


def limits_from(args: argparse.Namespace) -> Limits:
    """The rate limits the flags set (a burst of a third of a minute's worth, at least 1)."""
    defaults = Limits()

    def rate(value: float | None, default: Rate, flag: str) -> Rate:
        if value is None:
            return default
        if not 0 < value <= 1_000_000:
            raise ConfigError(flag, "must be above 0 and at most 1,000,000")
        return Rate(per_minute=value, burst=max(1, int(value / 3)))

    return Limits(
        visit_per_ip=rate(args.visits_per_minute, defaults.visit_per_ip, "--visits-per-minute"),
        chat_per_ip=rate(args.chats_per_minute, defaults.chat_per_ip, "--chats-per-minute"),
        other_per_ip=rate(args.requests_per_minute, defaults.other_per_ip, "--requests-per-minute"),
        per_token=rate(
            args.token_requests_per_minute, defaults.per_token, "--token-requests-per-minute"
        ),
    )


def settings_from(args: argparse.Namespace) -> BridgeSettings:
    """The settings the flags describe; :class:`ConfigError` names a bad flag."""
    from bridge.service import BridgeSettings

    host, port = parse_http_addr(args.http)
    token = read_token(args.token_file) if args.token_file is not None else None
    if token is None:
        if not args.open:
            raise ConfigError(
                "--token-file", "give the community token file, or --open on a loopback address"
            )
        if not _loopback(host):
            raise ConfigError("--open", f"refused on {host}: an open bridge must be loopback-only")
    if args.lease is not None and not 10 <= args.lease <= 3600:
        raise ConfigError("--lease", "must be between 10 and 3600 seconds")
    network = NetworkSettings(
        listen=tuple(args.listen or DEFAULT_LISTEN),
        bootstrap=tuple(args.bootstrap or ()),
        mdns=not args.no_mdns,
    )
    from node import check_network_addrs

    check_network_addrs(network, listen_field="--listen", bootstrap_field="--bootstrap")
    extra = {} if args.lease is None else {"lease_s": args.lease}
    return BridgeSettings(
        http_host=host,
        http_port=port,
        token=token,
        allow_private_urls=args.allow_private_urls,
        trust_proxy=args.trust_proxy,
        public_url=args.public_url,
        metrics_public=args.metrics_public,
        character=args.character,
        limits=limits_from(args),
        network=network,
        data_dir=args.data_dir,
        passphrase=passphrase_from(args.passphrase_file),
        **extra,
    )


def read_token(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError("--token-file", f"cannot read {path}: {exc.strerror}") from exc
    token = data.decode("utf-8", errors="replace").strip()
    if len(token) < 16 or len(data) > MAX_TOKEN_BYTES or not token.isprintable():
        raise ConfigError("--token-file", "the token must be 16 to 1024 printable characters")
    return token


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_bridge_command(args: argparse.Namespace) -> int:
    from bridge.service import run_bridge
    from node import EventLog, run_service

    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"roomverse: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    events = EventLog(args.log_format)
    return run_service("bridge", run_bridge, settings, events)


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge``: the same flags as ``roomverse bridge``."""
    return service_main("roomverse bridge", add_bridge_arguments, run_bridge_command, argv)


__all__ = ["main", "run_bridge_command", "settings_from"]
