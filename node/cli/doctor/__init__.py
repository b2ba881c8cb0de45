"""``roomverse doctor``: why is my character not talking? One check per thing that can
stop it, each ✓ / ✗ (with the fix in one line) or skipped (with why).

:mod:`.target` is what is examined; the checks are grouped by what they look at:
:mod:`.environment` (Python, packages, sandbox), :mod:`.key_file`, :mod:`.storage`
(data dir, database, clock skew), :mod:`.engines`, :mod:`.network` (listen, bootstrap,
ports), :mod:`.mdns`; :mod:`.report` prints them. This module only registers the command:
the checks load when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from node.cli.doctor.target import BRIDGE_HTTP, FIREHOSE_HTTP


def add_doctor_command(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check everything a character needs, each with its fix",
        description="Check Python and packages, the key file, the data directory and "
        "database, each engine (a 1-token completion), the listen addresses, mDNS, the "
        "bootstrap peers, the clock against peers', the HTTP ports and the souvenir "
        "sandbox. Exit 0 only when nothing failed; skipped checks do not fail.",
    )
    doctor.add_argument("--character", type=Path, help="character JSON file")
    doctor.add_argument("--data-dir", type=Path, help="data directory (default: the character's)")
    doctor.add_argument("--passphrase-file", type=Path, help="to check the key's passphrase")
    doctor.add_argument(
        "--firehose-http", default=FIREHOSE_HTTP, metavar="HOST:PORT", help="port to check"
    )
    doctor.add_argument(
        "--bridge-http", default=BRIDGE_HTTP, metavar="HOST:PORT", help="port to check"
    )
    doctor.add_argument("--dashboard", metavar="HOST:PORT", help="also check this port")
    doctor.add_argument("--json", action="store_true", help="one JSON object with every check")


def run_doctor_command(args: argparse.Namespace) -> int:
    from node.cli.doctor.command import run_doctor_command as run

    return run(args)


__all__ = ["add_doctor_command", "run_doctor_command"]
