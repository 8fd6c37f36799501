"""Summaries computed from parsed log records: requests, jobs, metrics, restarts.

``API_CALL`` and ``METRIC`` are the events the VeeFore API's structured logger writes
for each finished request and each metric update. Job records are those of a BullMQ
worker logging with pino: ``jobId``, ``attemptsMade`` and a message such as
``job started``, ``job failed``, ``job will be retried`` or ``job completed``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeGuard

from veerunbook.errors import UsageError
from veerunbook.logs_grouping import describe_error, route_of, status_code_of
from veerunbook.logs_model import LogRecord, Restart, format_time

_JOB_EVENTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(?:completed|succeeded|finished)\b"), "completed"),
    (re.compile(r"(?i)\bfail(?:ed|ure)?\b"), "failed"),
    (re.compile(r"(?i)\bretr(?:y|ied|ying)\b"), "retrying"),
    (re.compile(r"(?i)\b(?:started|active|processing)\b"), "active"),
]


@dataclass(slots=True)
class JobOutcome:
    """Outcome of one queue job as its log records show it.

    ``status`` is ``completed`` (no failure seen), ``recovered`` (completed after a
    failure), ``failed`` (the last event is a failure with no retry announced),
    ``retrying`` (a retry was announced after the last failure) or ``active``.
    """

    job_id: str
    status: str = "active"
    attempts: int = 0
    failures: int = 0
    first_seen: datetime | None = None
    completed_at: datetime | None = None
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the outcome as JSON-compatible values."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "attempts": self.attempts,
            "failures": self.failures,
            "first_seen": format_time(self.first_seen),
            "completed_at": format_time(self.completed_at),
            "last_error": self.last_error,
        }


def api_call_stats(
    records: Sequence[LogRecord], exclude: str | None = r"^/metrics$"
) -> dict[str, Any]:
    """Count ``API_CALL`` requests and their 4xx and 5xx responses.

    Requests whose path matches the regular expression ``exclude`` are left out;
    by default the Prometheus scrapes of ``/metrics``. ``rate_5xx_percent`` is
    rounded to two decimals and is 0.0 when no request remains.
    Raises ``UsageError`` when ``exclude`` is not a valid regular expression.
    """
    pattern = _compile(exclude)
    calls = [r for r in records if r.fields.get("event") == "API_CALL"]
    counted = [r for r in calls if not _excluded(r, pattern)]
    statuses = [status_code_of(r) or 0 for r in counted]
    server_errors = sum(1 for status in statuses if 500 <= status <= 599)
    times = [r.time for r in counted if r.time is not None]
    rate = 100 * server_errors / len(counted) if counted else 0.0
    return {
        "api_calls": len(calls),
        "excluded": len(calls) - len(counted),
        "requests": len(counted),
        "status_4xx": sum(1 for status in statuses if 400 <= status <= 499),
        "status_5xx": server_errors,
        "rate_5xx_percent": round(rate, 2),
        "first_time": format_time(min(times)) if times else None,
        "last_time": format_time(max(times)) if times else None,
    }


def job_outcomes(records: Sequence[LogRecord]) -> dict[str, JobOutcome]:
    """Follow each ``jobId`` through its records, in order of first appearance."""
    jobs: dict[str, JobOutcome] = {}
    for record in records:
        job_id = record.fields.get("jobId")
        event = _job_event(record.message)
        if not isinstance(job_id, str | int) or event is None:
            continue
        job = jobs.setdefault(str(job_id), JobOutcome(str(job_id)))
        job.first_seen = job.first_seen or record.time
        _apply_job_event(job, event, record)
    return jobs


def metric_samples(records: Sequence[LogRecord]) -> dict[str, list[float]]:
    """Collect the values of ``METRIC*`` events per metric name, in log order."""
    samples: dict[str, list[float]] = {}
    for record in records:
        fields = record.fields
        event = fields.get("event")
        name = fields.get("metricName") or fields.get("metric")
        value = fields.get("value")
        if not (isinstance(event, str) and event.startswith("METRIC")):
            continue
        if isinstance(name, str) and _is_number(value):
            samples.setdefault(name, []).append(float(value))
    return samples


def detect_restarts(records: Sequence[LogRecord]) -> list[Restart]:
    """Report each pid that appears on a host after another pid logged there.

    NOTE: a host running several worker processes into one log (Node cluster mode)
    reports each worker's first record as a restart.
    """
    restarts: list[Restart] = []
    seen: dict[str, list[int]] = {}
    for record in records:
        pid = record.fields.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool):
            continue
        hostname = str(record.fields.get("hostname", ""))
        pids = seen.setdefault(hostname, [])
        if pids and pid not in pids:
            restarts.append(
                Restart(record.raw_lines[0], record.time, hostname, pids[-1], pid)
            )
        if pid not in pids:
            pids.append(pid)
    return restarts


def _apply_job_event(job: JobOutcome, event: str, record: LogRecord) -> None:
    if event == "completed":
        job.status = "recovered" if job.failures else "completed"
        job.completed_at = record.time
        job.attempts = max(job.attempts, job.failures + 1)
    elif event == "failed":
        job.failures += 1
        job.status = "failed"
        job.last_error = describe_error(record)[0]
        attempts_made = record.fields.get("attemptsMade")
        reported = attempts_made if _is_number(attempts_made) else 0
        job.attempts = max(job.attempts, int(reported), job.failures)
    elif event == "retrying" and job.status == "failed":
        job.status = "retrying"
    elif event == "active" and job.status not in ("completed", "recovered"):
        job.status = "active"


def _job_event(message: str) -> str | None:
    for pattern, event in _JOB_EVENTS:
        if pattern.search(message):
            return event
    return None


def _compile(exclude: str | None) -> re.Pattern[str] | None:
    if exclude is None:
        return None
    try:
        return re.compile(exclude)
    except re.error as exc:
        raise UsageError(
            f"Invalid exclude pattern {exclude!r}: {exc}. Give a Python regular "
            "expression that matches request paths, such as '^/metrics$'."
        ) from exc


def _excluded(record: LogRecord, pattern: re.Pattern[str] | None) -> bool:
    if pattern is None:
        return False
    route = route_of(record) or ""
    path = route.split(" ", 1)[-1]
    return pattern.search(path) is not None


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
