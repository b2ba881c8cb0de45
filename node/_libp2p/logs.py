"""py-libp2p's own logging, routed through the handlers the process installs."""

from __future__ import annotations

import logging
import logging.handlers
import os

import libp2p.network.auto_connector  # noqa: F401  (sets its logger's level on import)
from libp2p.utils import logging as libp2p_logging

LIBP2P_LOGGER = "libp2p"
DEBUG_ENV = "LIBP2P_DEBUG"


def route_logging_to_root() -> None:
    """Send py-libp2p's log records to the root logger's handlers, and nowhere else.

    Importing py-libp2p configures its logging. With ``LIBP2P_DEBUG`` set, the ``libp2p``
    logger (and each module that variable names) gets a queue handler feeding stderr and
    a log file (``LIBP2P_DEBUG_FILE``, else a new file in the temp directory), and those
    loggers stop propagating; without it, the ``libp2p`` logger has no handler and does
    not propagate (its warnings reach ``logging.lastResort``). Either way its records,
    which at DEBUG hold whole messages and payloads in hex, would bypass our handlers and
    their filter (PII redaction, :mod:`node.privacy.log_scrub`). So its listener is
    stopped, its file handlers closed, its handlers removed and its loggers propagate;
    the levels ``LIBP2P_DEBUG`` asked for are kept.
    """
    libp2p_logging.cleanup_logging()
    loggers = logging.Logger.manager.loggerDict
    for name, candidate in list(loggers.items()):
        if not isinstance(candidate, logging.Logger):
            continue
        if name != LIBP2P_LOGGER and not name.startswith(LIBP2P_LOGGER + "."):
            continue
        theirs = [
            handler
            for handler in candidate.handlers
            if isinstance(handler, logging.handlers.QueueHandler)
            and handler.queue is libp2p_logging.log_queue
        ]
        for handler in theirs:
            candidate.removeHandler(handler)
        if theirs or name == LIBP2P_LOGGER:
            candidate.propagate = True
        if not os.environ.get(DEBUG_ENV) and candidate.level != logging.NOTSET:
            # Without LIBP2P_DEBUG a module that sets its own level (the auto-connector
            # logs every 10 s at INFO) follows ours instead.
            candidate.setLevel(logging.NOTSET)
