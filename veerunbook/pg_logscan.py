"""Find PostgreSQL connection errors and lock waits in server and application logs.

``scan_server_log`` reads a PostgreSQL log written with
``log_line_prefix = '%m [%p] %q%u@%d '``, and ``scan_app_log`` reads pino JSON lines
whose ``err`` object came from node-postgres. Each error is classified by
``veerunbook.pg_errors.classify_error``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from veerunbook.pg_errors import ErrorClass, classify_error, is_sqlstate

# log_line_prefix '%m [%p] %q%u@%d ': %q drops the user@database part on lines from
# background processes. The severity is followed by a colon and two spaces.
_SERVER_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)(?: (?P<zone>\S+))? "
    r"\[(?P<pid>\d+)\] (?:(?P<user>[^\s@]*)@(?P<database>\S*) )?"
    r"(?P<severity>[A-Z][A-Z0-9]*):\s+(?P<message>.*)$"
)
_LOCK_WAIT = re.compile(
    r"process (?P<pid>\d+) still waiting for (?P<mode>\w+) on (?P<object>.+?) "
    r"after (?P<ms>[\d.]+) ms"
)
_LOCK_HOLDERS = re.compile(
    r"Process(?:es)? holding the lock: (?P<holders>[\d, ]+)\. "
    r"Wait queue: (?P<queue>[\d, ]*)\."
)
_ERROR_SEVERITIES = frozenset({"ERROR", "FATAL", "PANIC"})


@dataclass(frozen=True)
class LogError:
    """One error found in a log, with its classification."""

    time: datetime | None
    pid: int | None
    user: str | None
    database: str | None
    severity: str
    message: str
    error: ErrorClass


@dataclass
class LockWait:
    """A ``log_lock_waits`` report: who waits, for which lock, and who holds it."""

    time: datetime | None
    pid: int
    mode: str
    locked_object: str
    waited_ms: float
    holders: tuple[int, ...] = ()
    queue: tuple[int, ...] = ()


@dataclass
class LogScan:
    """Errors and lock waits found in a log, and the count of unreadable lines."""

    errors: list[LogError] = field(default_factory=list)
    lock_waits: list[LockWait] = field(default_factory=list)
    lines: int = 0
    unparsed: int = 0

    def by_kind(self) -> dict[str, int]:
        """Count errors per kind."""
        return dict(Counter(entry.error.kind for entry in self.errors))

    def by_sqlstate(self) -> dict[str, int]:
        """Count errors per SQLSTATE (inferred ones too), "unknown" for none."""
        return dict(Counter(entry.error.sqlstate or "unknown" for entry in self.errors))

    def by_rule(self) -> dict[str, int]:
        """Count errors per recognised wording, "unrecognised" for the rest."""
        return dict(
            Counter(entry.error.rule or "unrecognised" for entry in self.errors)
        )

    def lock_holders(self) -> dict[int, int]:
        """Count, per holding pid, the lock waits that it caused."""
        return dict(Counter(pid for wait in self.lock_waits for pid in wait.holders))

    def rows(self) -> list[dict[str, Any]]:
        """Return one plain row per error, for a table."""
        return [
            {
                "time": entry.time,
                "pid": entry.pid,
                "user": entry.user,
                "severity": entry.severity,
                "kind": entry.error.kind,
                "sqlstate": entry.error.sqlstate,
                "message": entry.message,
            }
            for entry in self.errors
        ]


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[,\s]+", text.strip()) if part)


def _server_time(stamp: str, zone: str | None) -> datetime | None:
    """Parse a ``%m`` time stamp in UTC or GMT; return None for other zones."""
    if zone not in ("UTC", "GMT"):
        # NOTE: other zone abbreviations are ambiguous (CST, IST), so such times are
        # left unparsed rather than guessed.
        return None
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def scan_server_log(lines: Iterable[str]) -> LogScan:
    """Find errors and lock waits in a PostgreSQL server log.

    The log must use ``log_line_prefix = '%m [%p] %q%u@%d '``. Continuation lines of a
    multi-line message (they start with a tab) are skipped. A ``DETAIL`` line naming
    the lock holders is attached to the lock wait reported just before by the same pid.
    """
    scan = LogScan()
    last_wait: dict[int, LockWait] = {}
    for raw in lines:
        scan.lines += 1
        line = raw.rstrip("\r\n")
        match = _SERVER_LINE.match(line)
        if match is None:
            if line.strip() and not line.startswith(("\t", " ")):
                scan.unparsed += 1
            continue
        pid = int(match["pid"])
        severity, message = match["severity"], match["message"]
        time = _server_time(match["time"], match["zone"])
        if severity in _ERROR_SEVERITIES:
            error = classify_error(message)
            scan.errors.append(
                LogError(
                    time,
                    pid,
                    match["user"],
                    match["database"],
                    severity,
                    message,
                    error,
                )
            )
        elif severity == "LOG" and (wait := _LOCK_WAIT.search(message)):
            lock_wait = LockWait(
                time, int(wait["pid"]), wait["mode"], wait["object"], float(wait["ms"])
            )
            scan.lock_waits.append(lock_wait)
            last_wait[pid] = lock_wait
        elif severity == "DETAIL" and pid in last_wait:
            holders = _LOCK_HOLDERS.search(message)
            if holders is not None:
                last_wait[pid].holders = _int_list(holders["holders"])
                last_wait[pid].queue = _int_list(holders["queue"])
    return scan


def _app_error(record: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """Return the error message and code of a pino record, or None without an error."""
    err = record.get("err", record.get("error"))
    if isinstance(err, str):
        return err, None
    if not isinstance(err, Mapping) or not isinstance(err.get("message"), str):
        return None
    code = err.get("code")
    return err["message"], str(code) if code is not None else None


def scan_app_log(lines: Iterable[str]) -> LogScan:
    """Find database errors in pino JSON lines (one object per line).

    Each ``err`` (or ``error``) object is classified by its ``message`` and ``code``.
    A code that is not a SQLSTATE, such as ``ECONNREFUSED``, is put in front of the
    message for classification. Lines that are not JSON objects count as unparsed.
    """
    scan = LogScan()
    for raw in lines:
        scan.lines += 1
        try:
            record = json.loads(raw)
        except ValueError:
            scan.unparsed += int(bool(raw.strip()))
            continue
        if not isinstance(record, dict):
            scan.unparsed += 1
            continue
        found = _app_error(record)
        if found is None:
            continue
        message, code = found
        if is_sqlstate(code):
            error = classify_error(message, code)
        else:
            error = classify_error(f"{code}: {message}" if code else message)
        scan.errors.append(
            LogError(
                _epoch_ms(record.get("time")),
                _as_int(record.get("pid")),
                None,
                None,
                _pino_level(record.get("level")),
                message,
                error,
            )
        )
    return scan


# pino's numeric levels.
_PINO_LEVELS = {
    10: "TRACE",
    20: "DEBUG",
    30: "INFO",
    40: "WARN",
    50: "ERROR",
    60: "FATAL",
}


def _pino_level(level: Any) -> str:
    if isinstance(level, str):
        return level.upper()
    return _PINO_LEVELS.get(level, str(level)) if isinstance(level, int) else "?"


def _epoch_ms(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
