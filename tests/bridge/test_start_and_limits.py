"""What the bridge refuses before it starts, and the limits of its visits: the token or
``--open`` (loopback only), an idle legacy visitor, the cap on visits at once."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import trio
import trio.testing

from bridge.cli import add_bridge_arguments, settings_from
from bridge.problems import Problem
from bridge.visits import MAX_CONVERSATIONS, LegacyVisits
from keys.errors import ConfigError
from node import Partner, RelayedLines
from tests.support.procs import run_cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_bridge_arguments(parser)
    return parser.parse_args(list(argv))


def test_without_a_token_the_bridge_starts_only_when_open_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--token-file"):
        settings_from(parse())
    with pytest.raises(ConfigError, match="loopback-only"):
        settings_from(parse("--open", "--http", "0.0.0.0:8000"))
    assert settings_from(parse("--open", "--http", "127.0.0.1:8000")).token is None
    token = tmp_path / "token"
    token.write_text("short\n")
    with pytest.raises(ConfigError, match="16 to 1024"):
        settings_from(parse("--token-file", str(token)))
    token.write_text("a-community-token-long-enough\n")
    settings = settings_from(parse("--token-file", str(token), "--http", "0.0.0.0:8000"))
    assert settings.token == "a-community-token-long-enough"
    with pytest.raises(ConfigError, match="--token-file"):
        settings_from(parse("--token-file", str(tmp_path / "missing")))


def test_rate_flags_set_the_limits() -> None:
    settings = settings_from(parse("--open", "--visits-per-minute", "12"))
    assert (settings.limits.visit_per_ip.per_minute, settings.limits.visit_per_ip.burst) == (12, 4)
    with pytest.raises(ConfigError, match="--chats-per-minute"):
        settings_from(parse("--open", "--chats-per-minute", "0"))


def test_the_command_says_why_it_will_not_start() -> None:
    with pytest.raises(AssertionError, match="an open bridge must be loopback-only"):
        run_cli("bridge", "--open", "--http", "0.0.0.0:0", "--no-mdns", timeout=60)


async def test_a_silent_legacy_visitor_ends_the_visit_politely(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lines = RelayedLines("hello", idle_s=120)
    partner = Partner("12D3KooWExample", "Mina")
    assert await lines.opening(partner, None) == "hello"
    started = trio.current_time()
    assert await lines.reply(partner, None, [], "guest") == ""
    assert trio.current_time() - started == pytest.approx(120)
    assert lines.say("are you there?") is True
    assert lines.say("twice?") is False, "one line waits at a time"
    assert await lines.reply(partner, None, [], "guest") == "are you there?"


async def test_no_more_than_the_cap_of_visits_at_once() -> None:
    visits = LegacyVisits(None, None, None)  # type: ignore[arg-type]
    for n in range(MAX_CONVERSATIONS):
        visits._conversations[str(n)] = None  # type: ignore[assignment]
    with pytest.raises(Problem) as refused:
        await visits.start("peer", "Mina", None, "hi", "")  # type: ignore[arg-type]
    assert (refused.value.status, refused.value.slug) == (503, "bridge-busy")
