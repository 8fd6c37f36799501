"""Rows of the security-incident notebook's tables, one dict per row.

The per-address tables show at most ``TABLE_ROWS`` rows; the checks count every
address.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from veerunbook.secincident_audit import Audit, Event, Source
from veerunbook.text import counted

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.shell import CommandResult

TABLE_ROWS = 20
# Account names shown per address; the rest are counted.
USERS_SHOWN = 3
# Lines shown of a command's output that is not JSON.
OUTPUT_LINES = 40
# Decimal places a fractional number keeps in a table.
TABLE_DECIMALS = 2


def login_rows(audit: Audit) -> list[dict[str, Any]]:
    """Return one row per address with failed logins, most first."""
    sources = [source for source in audit.sources.values() if source.failed_logins]
    sources.sort(key=lambda source: (-source.failed_logins, source.ip))
    return [source_row(source) for source in sources[:TABLE_ROWS]]


def source_row(source: Source) -> dict[str, Any]:
    """Return a table row for one address's failed logins."""
    users = ", ".join(source.users[:USERS_SHOWN])
    if len(source.users) > USERS_SHOWN:
        users += f" and {len(source.users) - USERS_SHOWN} more"
    rate = source.rate_per_minute
    return {
        "address": source.ip,
        "failed logins": source.failed_logins,
        "per minute": None if rate is None else round(rate, 1),
        "first seen": clock(source.first_seen),
        "last seen": clock(source.last_seen),
        "accounts tried": users or "-",
        "rate-limit hits": source.rate_limit_hits,
        "blocked": source.blocked,
    }


def source_rows(audit: Audit, count: int = 10) -> list[dict[str, Any]]:
    """Return the addresses with the most audit events and their event types."""
    ranked = sorted(audit.sources.values(), key=lambda s: (-s.events, s.ip))[:count]
    rows = []
    for source in ranked:
        kinds = Counter(event.type for event in audit.events if event.ip == source.ip)
        rows.append(
            {
                "address": source.ip,
                "events": source.events,
                "types": ", ".join(f"{k} {n}" for k, n in kinds.most_common()),
                "blocked": source.blocked,
            }
        )
    return rows


def breach_row(event: Event) -> dict[str, Any]:
    """Return a table row for one breach event."""
    return {
        "time": clock(event.time),
        "type": event.type,
        "address": event.ip or "-",
        "detail": event.detail,
    }


def outline(output: str, tail: int = OUTPUT_LINES) -> str:
    """Return a command's output shortened for the notebook.

    A JSON object is shown one top-level key a line, with a nested object's plain
    values and a list's length. Any other output is shown by its last lines.
    """
    try:
        data = json.loads(output)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return "\n".join(output.splitlines()[-tail:])
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            plain = [f"{k}={v}" for k, v in value.items() if _plain(v)]
            shown = ", ".join(plain) or f"{len(value)} keys"
        elif isinstance(value, list):
            shown = counted(len(value), "item")
        else:
            shown = str(value)
        lines.append(f"{key}: {shown}")
    return "\n".join(lines)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def clock(moment: datetime | None) -> str:
    """Return a UTC time as ``HH:MM:SS.mmm UTC``, or ``-`` when unknown."""
    return f"{moment:%H:%M:%S.%f}"[:-3] + " UTC" if moment else "-"


def checks_table(checks: pd.DataFrame) -> pd.DataFrame:
    """Return a run's checks sorted worst first: fail, error, warn, skip, pass."""
    if checks.empty:
        return checks
    order = {"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}
    checks = checks.assign(_order=checks["status"].map(order))
    checks = checks.sort_values(["_order", "time"]).drop(columns="_order")
    return checks.reset_index(drop=True)


def tidy(table: pd.DataFrame) -> pd.DataFrame:
    """Return ``table`` with every cell ready to read.

    A whole number shows without a decimal point, other numbers are rounded to
    ``TABLE_DECIMALS`` places, and a missing value (None, NaN, pandas' NA) is empty
    text. Each column becomes an object column, so pandas casts nothing back.
    """
    import pandas as pd

    columns = {name: [_cell(value) for value in table[name]] for name in table.columns}
    return pd.DataFrame(columns, index=table.index, dtype=object)


def _cell(value: Any) -> Any:
    import pandas as pd

    if value is None:
        return ""
    if isinstance(value, bool | str):
        return value

    try:
        if pd.isna(value):
            return ""
    except (TypeError, ValueError):  # a list or an array is not one value
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value) if value.is_integer() else round(value, TABLE_DECIMALS)
    return value


def command_row(result: CommandResult) -> dict[str, Any]:
    """Return a table row for a finished command."""
    return {
        "command": result.command,
        "exit code": result.exit_code,
        "seconds": result.duration_s,
        "timed out": result.timed_out,
        "note": result.error or result.note or "",
    }
