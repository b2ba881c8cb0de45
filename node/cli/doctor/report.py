"""What ``roomverse doctor`` found: one :class:`Check` per thing looked at, printed as a
line each (or one JSON object), and the exit code they add up to."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from node.cli.exit_codes import EXIT_FAILED, EXIT_OK
from node.cli.terminal import printable

Status = Literal["ok", "fail", "skip"]
MARKS: Final[dict[str, str]] = {"ok": "✓", "fail": "✗", "skip": "-"}


@dataclass(frozen=True, slots=True)
class Check:
    """One finding. ``detail`` says what was seen (never a secret); ``fix`` is the one line
    that puts a failure right (empty when nothing needs doing)."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}

    def line(self) -> str:
        text = f"{MARKS[self.status]} {self.name}: "
        text += f"skipped: {self.detail}" if self.status == "skip" else self.detail
        if self.fix:
            text += f" → fix: {self.fix}"
        return printable(text)


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, "fail", detail, fix)


def skip(name: str, why: str) -> Check:
    return Check(name, "skip", why)


def exit_code(checks: Sequence[Check]) -> int:
    """0 only when nothing failed (a skip is not a failure)."""
    return EXIT_FAILED if any(check.status == "fail" for check in checks) else EXIT_OK


def render(checks: Sequence[Check], about: dict[str, Any], *, as_json: bool) -> str:
    """The report: one line per check and a summary, or one JSON object holding ``about``
    (what was examined) and every check."""
    failed = sum(check.status == "fail" for check in checks)
    if as_json:
        document = {**about, "ok": failed == 0, "checks": [c.to_json() for c in checks]}
        return json.dumps(document, ensure_ascii=False)
    lines = [check.line() for check in checks]
    skipped = sum(check.status == "skip" for check in checks)
    verdict = "all needed checks pass" if failed == 0 else f"{failed} failed"
    lines.append(f"{len(checks)} checks: {verdict} ({skipped} skipped)")
    return "\n".join(lines)


__all__ = ["Check", "exit_code", "fail", "ok", "render", "skip"]
