"""The node's logging wiring (``node.setup_logging``, node/cli/startup.py): every handler
it installs redacts PII, and py-libp2p's records go through those handlers.

Defects these tests guard against: ``handler.addFilter(RedactingFilter())`` removed from
``setup_logging`` (the filter itself is tested in tests/node/privacy/test_redact.py on a
handler the test builds, so it cannot see this), and py-libp2p's own handlers left in
place when ``LIBP2P_DEBUG`` is set (its DEBUG lines, payloads in hex, would then reach
stderr and a file unredacted).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import node
from node.privacy.log_scrub import ENCODED_PLACEHOLDER, RedactingFilter
from tests.support.pii_corpus import leaks, pii_items

REPO = Path(__file__).resolve().parents[2]
LIBP2P = "libp2p"
EMAIL = next(item for item in pii_items() if item.kind == "email")
CARD = next(item for item in pii_items() if item.kind == "card")


@contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger with no handler (as in a fresh process; pytest's capture handlers
    are set aside), restored afterwards with every ``libp2p`` logger ``setup_logging``
    may change."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    libp2p_loggers = [
        logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and (name == LIBP2P or name.startswith("libp2p."))
    ]
    saved = [(lg, list(lg.handlers), lg.propagate, lg.level) for lg in libp2p_loggers]
    for handler in saved_root[0]:
        root.removeHandler(handler)
    try:
        yield root
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_root[0]:
            root.addHandler(handler)
        root.setLevel(saved_root[1])
        for lg, handlers, propagate, level in saved:
            lg.handlers[:] = handlers
            lg.propagate = propagate
            lg.setLevel(level)


@pytest.mark.parametrize("verbosity", [0, 1, 2])
def test_every_handler_setup_logging_installs_carries_the_redacting_filter(
    verbosity: int,
) -> None:
    with bare_root() as root:
        node.setup_logging(verbosity)
        installed = list(root.handlers)
        libp2p = logging.getLogger(LIBP2P)
        libp2p_routed = (libp2p.propagate, list(libp2p.handlers))
    assert installed, "setup_logging installed no handler"
    for handler in installed:
        assert any(isinstance(f, RedactingFilter) for f in handler.filters), handler
    # py-libp2p's records reach those handlers, and no handler of its own.
    assert libp2p_routed == (True, [])


def test_libp2p_debug_lines_reach_stderr_redacted(tmp_path: Path) -> None:
    """A process that calls ``setup_logging`` with ``LIBP2P_DEBUG=DEBUG``: a py-libp2p
    DEBUG line with a payload in hex (as its pubsub logs a refused message) and one of
    ours with PII in clear come out redacted, on stderr only."""
    payload = b"\x82\xa4type\xa5speak\xa4text\xd9\x40" + f"call {EMAIL.text} {CARD.text}".encode()
    script = textwrap.dedent(
        f"""
        import logging, node
        node.setup_logging(2)
        logging.getLogger("libp2p.pubsub.pubsub").debug(
            "Topic validation failed: sender X sent data %s under topic IDs", {payload.hex()!r}
        )
        logging.getLogger("node.test").info("they said %s", {EMAIL.text!r})
        """
    )
    libp2p_file = tmp_path / "libp2p.log"
    env = {
        **os.environ,
        "LIBP2P_DEBUG": "DEBUG",
        "LIBP2P_DEBUG_FILE": str(libp2p_file),
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    lines = done.stderr.splitlines()
    (hex_line,) = [line for line in lines if "Topic validation failed" in line]
    assert " DEBUG libp2p.pubsub.pubsub: " in hex_line  # our handler's format, not libp2p's
    assert ENCODED_PLACEHOLDER in hex_line
    (ours,) = [line for line in lines if "they said" in line]
    assert "[email]" in ours
    assert leaks(done.stderr, [EMAIL, CARD]) == []
    written = libp2p_file.read_text() if libp2p_file.exists() else ""
    assert "Topic validation failed" not in written
    assert leaks(written, [EMAIL, CARD]) == []
