"""``roomverse doctor``: run every check, print the report, exit 0 only if none failed."""

from __future__ import annotations

import argparse

import trio

from node.cli.doctor.engines import engine_checks
from node.cli.doctor.environment import packages_check, python_check, sandbox_check
from node.cli.doctor.key_file import key_file_checks
from node.cli.doctor.mdns import mdns_check
from node.cli.doctor.network import bootstrap_checks, listen_checks, port_checks
from node.cli.doctor.report import Check, exit_code, render
from node.cli.doctor.storage import data_dir_check, database_checks
from node.cli.doctor.target import Target, target_from


def run_doctor_command(args: argparse.Namespace) -> int:
    target = target_from(args)
    checks = trio.run(run_checks, target)
    print(render(checks, target.about(), as_json=args.json))
    return exit_code(checks)


async def run_checks(target: Target) -> list[Check]:
    """Every check, in the order an owner reads them: the machine, the character's files,
    its engines, its network, its souvenirs."""
    checks = [python_check(), packages_check()]
    checks += key_file_checks(target)
    checks.append(data_dir_check(target))
    checks += await database_checks(target)
    checks += await engine_checks(target)
    checks += listen_checks(target)
    checks.append(await trio.to_thread.run_sync(mdns_check, target))
    checks += await bootstrap_checks(target)
    checks += port_checks(target)
    checks.append(sandbox_check(target))
    return checks


__all__ = ["run_checks", "run_doctor_command"]
