"""The target's ``db_status`` command: run it bounded, mask its output, read it.

``run_command`` runs a command from the target's configuration through
``veerunbook.shell``, which bounds the whole step by the timeout, keeps only the end
of the output and masks every secret in it. ``read_status_output`` recognises the
status lines of common migration tools and returns a ``Migrations`` summary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from veerunbook import shell
from veerunbook.db_migrations import Migrations
from veerunbook.redact import Redactor

# Output kept of stdout and stderr together: the end, where tools print a summary.
MAX_OUTPUT_CHARS = shell.MAX_OUTPUT_CHARS

# "10 applied, 0 pending" (the demo's db-status) and knex's "Found 2 Pending ...".
_APPLIED_COUNT = re.compile(r"\b(\d+)\s+(?:applied|completed)\b", re.IGNORECASE)
_PENDING_COUNT = re.compile(r"\b(\d+)\s+pending\b", re.IGNORECASE)
# One migration per line: "pending 0011_x" (the demo), "down 2024..." (Rails and
# Sequelize), "[ ] AddUsers" (TypeORM), "Pending" or "Failed" rows (Flyway info).
_PENDING_LINE = re.compile(
    r"^\s*(?:pending|down|\[ \])\s+(?P<name>\S.*?)\s*$|\|\s*Pending\s*\|", re.IGNORECASE
)
_FAILED_LINE = re.compile(
    r"^\s*failed\s+(?P<name>\S.*?)\s*$|\|\s*Failed\s*\|", re.IGNORECASE
)
_APPLIED_LINE = re.compile(
    r"^\s*(?:applied|up|\[X\])\s+(?P<name>\S+)(?:\s+(?P<at>\d{4}-\d\d-\d\dT\S+))?",
    re.IGNORECASE,
)
_DIRTY = re.compile(r"^\s*(?P<version>\d+)\s+\(dirty\)\s*$", re.MULTILINE)
# prisma migrate status: "Following migrations have not yet been applied:" and
# "Following migration have failed:", each followed by one name per line.
_PRISMA_PENDING = "have not yet been applied"
_PRISMA_FAILED = "have failed"
_PRISMA_CURRENT = "database schema is up to date"


@dataclass(frozen=True)
class CommandResult:
    """A finished (or killed) command; ``output`` is stdout then stderr, masked."""

    command: str
    exit_code: int | None
    output: str
    seconds: float
    timed_out: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the command ran to the end and exited 0."""
        return self.exit_code == 0 and not self.timed_out

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON values."""
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "seconds": self.seconds,
            "timed_out": self.timed_out,
            "error": self.error,
            "output": self.output,
        }


def run_command(command: str, *, timeout_s: float, redactor: Redactor) -> CommandResult:
    """Run ``command`` with ``/bin/sh -c``; kill its process group after ``timeout_s``.

    Never raises for the command's failure: a command that cannot start, exits
    non-zero or times out is a result, and so is a command with a ``{name}``
    placeholder, because a status command gets no values to fill in.
    """
    try:
        result = shell.run_command(command, timeout_s=timeout_s, redactor=redactor)
    except ValueError as exc:
        error = redactor.mask(str(exc))
        return CommandResult(redactor.mask(command), None, "", 0.0, error=error)
    output = (result.stdout + result.stderr)[-MAX_OUTPUT_CHARS:]
    return CommandResult(
        result.command,
        result.exit_code,
        output,
        result.duration_s,
        timed_out=result.timed_out,
        error=result.error,
    )


def read_status_output(result: CommandResult) -> Migrations:
    """Summarise a status command's output: counts, pending and failed migrations.

    NOTE: the output of a status command has no standard form. The recognised
    shapes are listed beside the patterns above; anything else leaves the counts
    unknown, and the output itself stays in the record as evidence.
    """
    text = result.output
    pending = _names(text, _PENDING_LINE) + _prisma_list(text, _PRISMA_PENDING)
    failed = _names(text, _FAILED_LINE) + _prisma_list(text, _PRISMA_FAILED)
    failed += [
        f"version {m['version']} is dirty: its migration failed part-way"
        for m in _DIRTY.finditer(text)
    ]
    pending_count = _count(text, _PENDING_COUNT)
    if pending_count is None and pending:
        pending_count = len(pending)
    if pending_count is None and _PRISMA_CURRENT in text.lower():
        pending_count = 0
    warnings = tuple(f"{name} pending" for name in pending)
    if not result.ok:
        failed.append(_failure(result))
    applied = [m for m in map(_APPLIED_LINE.match, text.splitlines()) if m]
    latest = applied[-1] if applied else None
    applied_count = _count(text, _APPLIED_COUNT)
    if applied_count is None and applied:
        applied_count = len(applied)
    return Migrations(
        tool="db_status command",
        source=result.command,
        applied=applied_count,
        latest=latest["name"] if latest else None,
        latest_applied_at=latest["at"] if latest else None,
        pending=pending_count,
        failed=tuple(failed),
        warnings=warnings,
    )


def _failure(result: CommandResult) -> str:
    if result.error:
        return f"the command {result.error}"
    last = [line for line in result.output.splitlines() if line.strip()][-1:]
    detail = f": {last[0].strip()[:200]}" if last else ""
    return f"the command exited with code {result.exit_code}{detail}"


def _count(text: str, pattern: re.Pattern[str]) -> int | None:
    match = pattern.search(text)
    return int(match.group(1)) if match else None


def _names(text: str, pattern: re.Pattern[str]) -> list[str]:
    names = []
    for line in text.splitlines():
        match = pattern.search(line)
        if match is not None:
            names.append((match.group("name") or line.strip()).strip())
    return names


def _prisma_list(text: str, heading: str) -> list[str]:
    """Return the indented names that follow a prisma heading, up to a blank line."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if heading in line.lower():
            names: list[str] = []
            for following in lines[index + 1 :]:
                if not following.strip():
                    if names:
                        break
                    continue
                names.append(following.strip())
            return names
    return []
