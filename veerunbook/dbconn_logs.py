"""Database errors in the target's recent error logs, classified by kind and SQLSTATE.

The error entries of the target's log endpoint are read with ``veerunbook.logs``
(which masks credentials in every message) and each error is classified with
``veerunbook.pg_errors.classify_error``. Connection failures are also counted per
minute, for the runbook's critical alert: database connection failures above 10 in
one minute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from veerunbook.logs import (
    LIMIT_REACHED,
    LOG_LIMIT,
    LogRecord,
    entry_limit,
    normalise_entries,
)
from veerunbook.pg_errors import (
    AUTHENTICATION_FAILED,
    CLIENT_POOL_TIMEOUT,
    CONNECTION_LIMIT,
    CONNECTION_REFUSED,
    OTHER,
    POOLER_LIMIT,
    SERVER_STARTING_OR_STOPPING,
    TIMEOUT,
    ErrorClass,
    classify_error,
    is_sqlstate,
)
from veerunbook.text import counted
from veerunbook.triage_tables import Nothing, frame

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.session import Session

# The runbook's critical alert: database connection failures above 10 in 1 minute.
CONNECTION_FAILURES_PER_MINUTE_FAIL = 10
FAILURES_EXPECTED = "at most 10 per minute (critical alert line: more than 10 in 1 min)"
_MINUTE = timedelta(minutes=1)
# Kinds that mean a connection could not be made or checked out. A timeout counts
# only without a SQLSTATE: with one (57014, 55P03) it ended a statement.
CONNECTION_KINDS = frozenset(
    {
        CONNECTION_REFUSED,
        CONNECTION_LIMIT,
        POOLER_LIMIT,
        CLIENT_POOL_TIMEOUT,
        AUTHENTICATION_FAILED,
        SERVER_STARTING_OR_STOPPING,
    }
)


@dataclass(frozen=True)
class DatabaseError:
    """One classified error entry of the log."""

    time: datetime | None
    message: str
    error: ErrorClass

    @property
    def is_connection_failure(self) -> bool:
        """True when the error means a connection could not be made or checked out."""
        kind = self.error.kind
        return kind in CONNECTION_KINDS or (kind == TIMEOUT and not self.error.sqlstate)


@dataclass
class DatabaseErrors:
    """The database errors of one read of the error logs, and why it failed if so."""

    last: str
    entries: int = 0
    errors: list[DatabaseError] = field(default_factory=list)
    problem: str | None = None
    truncated: bool = False  # the log endpoint's entry limit was reached

    def count(self, kind: str) -> int:
        """Return how many errors are of ``kind`` (see ``veerunbook.pg_errors``)."""
        return sum(1 for error in self.errors if error.error.kind == kind)

    @property
    def sqlstates(self) -> dict[str, int]:
        """Errors per SQLSTATE, given or inferred from the wording."""
        counts = Counter(e.error.sqlstate for e in self.errors if e.error.sqlstate)
        return dict(counts.most_common())

    @property
    def peak_per_minute(self) -> int:
        """The maximum number of connection failures within any 60 seconds."""
        times = sorted(
            e.time for e in self.errors if e.is_connection_failure and e.time
        )
        peak, start = 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] >= _MINUTE:
                start += 1
            peak = max(peak, end - start + 1)
        return peak

    def to_dict(self) -> dict[str, Any]:
        """Return the counts as JSON values."""
        kinds = Counter(error.error.kind for error in self.errors)
        return {
            "last": self.last,
            "entries": self.entries,
            "database_errors": len(self.errors),
            "by_kind": dict(kinds.most_common()),
            "by_sqlstate": self.sqlstates,
            "connection_failures_peak_per_minute": self.peak_per_minute,
            "problem": self.problem,
        }

    def table(self) -> pd.DataFrame | Nothing:
        """Tabulate the errors per kind and SQLSTATE, most frequent first."""
        if self.problem:
            return Nothing(self.problem)
        groups: dict[tuple[str, str | None], list[DatabaseError]] = {}
        for error in self.errors:
            groups.setdefault((error.error.kind, error.error.sqlstate), []).append(
                error
            )
        rows = [
            _group_row(kind, sqlstate, found)
            for (kind, sqlstate), found in groups.items()
        ]
        rows.sort(key=lambda row: -int(row["count"]))
        return frame(rows, f"no database errors in the last {span(self.last)}")


def _group_row(
    kind: str, sqlstate: str | None, found: list[DatabaseError]
) -> dict[str, Any]:
    first = found[0].error
    times = [error.time for error in found if error.time]
    return {
        "kind": kind,
        "count": len(found),
        "SQLSTATE": sqlstate or "",
        "class": f"{first.sqlstate_class} {first.class_name}"
        if first.class_name
        else "",
        "inferred": first.sqlstate_inferred,
        "first seen": min(times).isoformat() if times else None,
        "last seen": max(times).isoformat() if times else None,
        "example": found[0].message[:160],
    }


def span(last: str) -> str:
    """Return a log window such as ``15m`` or ``2h`` in words: "15 min", "2 h"."""
    units = {"s": "s", "m": "min", "h": "h", "d": "d"}
    number, unit = last[:-1], last[-1:]
    if number.isdigit() and unit in units:
        return f"{number} {units[unit]}"
    return last


def read_database_errors(session: Session, last: str = "15m") -> DatabaseErrors:
    """Read and classify the error logs of the last ``last``; journal one check."""
    found = DatabaseErrors(last)
    result = session.probe(
        "logs",
        name="error logs",
        expect="json",
        query=f"level=error&last={last}&limit={LOG_LIMIT}",
        record=False,
    )
    entries = _entries(result.json)
    if result.status != "pass" or entries is None:
        reason = result.error or "; ".join(result.reasons) or "no log entry list"
        found.problem = f"the error logs could not be read: {reason}"
        session.run.check(
            "database errors in logs",
            "error",
            evidence={"probe": result.to_dict()},
            summary=found.problem,
        )
        return found
    found.entries = len(entries)
    found.truncated = len(entries) >= entry_limit(result.json)
    found.errors = classify_entries(entries)
    _check(session, found, result.latency_ms)
    return found


def skip_database_errors(session: Session, last: str, reason: str) -> DatabaseErrors:
    """Journal the log step as skipped for ``reason``, without a request."""
    problem = f"error logs not read: {reason}"
    session.run.check("database errors in logs", "skip", summary=problem)
    return DatabaseErrors(last, problem=problem)


def classify_entries(entries: Sequence[Any]) -> list[DatabaseError]:
    """Classify the JSON entries of a log endpoint; keep the database errors only."""
    records = normalise_entries(entries)
    return [e for e in map(_classify, records) if e.error.kind != OTHER]


def _entries(body: Any) -> list[Any] | None:
    if isinstance(body, list):
        return body
    if isinstance(body, Mapping):
        for key in ("logs", "entries", "items", "data"):
            if isinstance(body.get(key), list):
                return list(body[key])
    return None


def _classify(record: LogRecord) -> DatabaseError:
    """Classify a record by its error's message and code, as node-postgres sets them."""
    err = record.fields.get("err") or record.fields.get("error")
    message, code = record.message, None
    if isinstance(err, Mapping) and isinstance(err.get("message"), str):
        message = err["message"]
        code = str(err["code"]) if err.get("code") is not None else None
    elif isinstance(err, str):
        message = err
    if code is not None and not is_sqlstate(code):
        # A Node.js system code such as ECONNREFUSED names the failure by itself.
        message, code = f"{code}: {message}", None
    return DatabaseError(record.time, message, classify_error(message, code))


def _check(session: Session, found: DatabaseErrors, latency_ms: float | None) -> None:
    peak = found.peak_per_minute
    failures = sum(1 for error in found.errors if error.is_connection_failure)
    status = "pass"
    if failures:
        status = "warn"
    if peak > CONNECTION_FAILURES_PER_MINUTE_FAIL:
        status = "fail"
    kinds = ", ".join(f"{kind}: {n}" for kind, n in found.to_dict()["by_kind"].items())
    summary = (
        f"{counted(len(found.errors), 'database error')} in "
        f"{counted(found.entries, 'error entry', 'error entries')} of the last "
        f"{span(found.last)}"
    )
    if found.truncated:
        summary += LIMIT_REACHED
    if kinds:
        summary += f" ({kinds})"
    summary += f"; peak {counted(peak, 'connection failure')} in one minute"
    session.run.check(
        "database errors in logs",
        status,
        observed=peak,
        unit="connection failures per minute (peak)",
        expected=FAILURES_EXPECTED,
        evidence=found.to_dict() | {"latency_ms": latency_ms},
        summary=summary,
    )
