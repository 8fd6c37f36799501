"""The error log step of the high-error-rate procedure: read, group and count.

The runbook reads ``/health/logs?level=error&last=1h``. The endpoint may return a
JSON list of entries (bare or under a key such as ``logs``) or plain log text, and
both are grouped by fingerprint with ``veerunbook.logs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from veerunbook.errorrate_tables import group_rows
from veerunbook.logs import (
    LIMIT_REACHED,
    LOG_LIMIT,
    ErrorGroup,
    entry_limit,
    group_errors,
    normalise_entries,
    parse_log_text,
)
from veerunbook.text import counted
from veerunbook.triage_tables import Nothing

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.session import Session


@dataclass
class ErrorLogs:
    """The grouped error entries, whether the logs were read, and whether cut."""

    groups: list[ErrorGroup] = field(default_factory=list)
    read: bool = False
    truncated: bool = False


def read_error_logs(
    session: Session, minutes: int
) -> tuple[ErrorLogs, pd.DataFrame | Nothing]:
    """Read and group the error entries of the last ``minutes``; journal a check.

    Returns the groups and the table to show. Logs that could not be read leave
    ``read`` false, and the probe's check gives the reason.
    """
    logs = ErrorLogs()
    query = f"level=error&last={minutes}m&limit={LOG_LIMIT}"
    result = session.probe("logs", name="error logs", expect="text", query=query)
    if result.status not in ("pass", "warn"):
        return logs, Nothing(f"error logs could not be read: {result.summary()}")
    entries = _entries_of(result.json)
    if isinstance(entries, list):
        records = normalise_entries(entries)
        logs.truncated = len(entries) >= entry_limit(result.json)
    else:
        records = parse_log_text(result.text, source="error logs").records
    logs.read = True
    logs.groups = group_errors(records)
    total = sum(group.count for group in logs.groups)
    cut = LIMIT_REACHED if logs.truncated else ""
    session.run.check(
        "error log entries",
        "warn" if total else "pass",
        observed=total,
        unit="entries",
        expected=f"none in the last {minutes} min",
        evidence=[group.to_dict() for group in logs.groups[:10]],
        summary=f"{counted(total, 'error')} in {counted(len(logs.groups), 'group')}"
        + cut,
    )
    return logs, group_rows(logs.groups)


def _entries_of(body: Any) -> Any:
    """Return the entry list of a log endpoint's body (a list, or under a key)."""
    if isinstance(body, dict):
        for key in ("logs", "entries", "items", "data"):
            if isinstance(body.get(key), list):
                return body[key]
    return body
