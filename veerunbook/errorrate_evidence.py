"""Evidence for the high-error-rate procedure: error kinds, start, deploy timing.

These functions only read what the procedure's steps gathered, so they can be tested
on hand-built inputs. ``align_deploys`` lines the recent deployments up against the
start of the errors, which ``error_start`` takes from the error logs and the rate
series.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from veerunbook.changes import Change
from veerunbook.logs import ErrorGroup
from veerunbook.metrics_series import Sample, interval_rate, intervals

# A group is dominant when it contains at least this share of the error entries.
DOMINANT_SHARE = 0.10
# The runbook's warning alert is an error rate above 1 % for 5 minutes. The first
# interval above it marks the start of the errors when the logs cannot.
START_RATE = 0.01
# Deployment and log times come from different clocks. A deployment up to this many
# seconds after the first error still counts as preceding it.
CLOCK_SKEW_SECONDS = 5.0

# Exceptions that JavaScript and Python raise for programming mistakes.
CODE_ERROR_TYPES = frozenset(
    {
        "TypeError", "RangeError", "ReferenceError", "SyntaxError", "AttributeError",
        "KeyError", "IndexError", "NameError", "AssertionError", "ValueError",
    }
)  # fmt: skip
# Signatures of errors that mean a resource ran out or a request waited too long.
RESOURCE_ERRORS = re.compile(
    r"timeout|timed out|etimedout|heap|allocation failed|out of memory|enomem"
    r"|emfile|too many clients",
    re.IGNORECASE,
)
# Signatures of errors that a database or another service caused.
DEPENDENCY_ERRORS = re.compile(
    r"econnrefused|econnreset|enotfound|axioserror|serverselection|apierror"
    r"|bad gateway|service unavailable|socket hang up",
    re.IGNORECASE,
)
_ERROR_TYPE = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception))\b")
_FRAME = re.compile(r"^\s*at (?:async )?(.+?)\s*$", re.MULTILINE)
_LIBRARY_FRAME = re.compile(r"<anonymous>|\(node:|node_modules|^node:")


def error_type(group: ErrorGroup) -> str | None:
    """Return the exception class a group's signature starts with, if any."""
    match = _ERROR_TYPE.match(group.signature)
    return match.group(1).rsplit(".", 1)[-1] if match else None


def error_kind(group: ErrorGroup) -> str:
    """Classify a group as ``resource``, ``dependency``, ``code`` or ``other``.

    Only the signature is read: a stack or a printed request object may contain
    words such as ``timeout`` that say nothing about the failure.
    """
    if RESOURCE_ERRORS.search(group.signature):
        return "resource"
    if DEPENDENCY_ERRORS.search(group.signature):
        return "dependency"
    return "code" if error_type(group) in CODE_ERROR_TYPES else "other"


def application_frame(group: ErrorGroup) -> str | None:
    """Return the first stack frame of a group that is outside Node and libraries."""
    for match in _FRAME.finditer(group.sample):
        frame = match.group(1)
        if not _LIBRARY_FRAME.search(frame):
            return frame
    return group.first_frame


def dominant_groups(groups: list[ErrorGroup]) -> list[ErrorGroup]:
    """Return the groups that contain at least 10 % of all error entries."""
    total = sum(group.count for group in groups)
    return [
        group for group in groups if total and group.count / total >= DOMINANT_SHARE
    ]


@dataclass(frozen=True)
class ErrorStart:
    """When the errors started, from the logs and from the rate series.

    ``logs`` is the earliest first-seen of the dominant error groups. When
    ``logs_truncated``, the endpoint cut older entries, so the errors may have
    started earlier. ``rate`` is the start of the first interval whose 5xx rate is
    above 1 %. ``rate_at_window_start`` is true when that is the window's first
    interval, so again the errors may have started earlier.
    """

    logs: datetime | None
    logs_truncated: bool
    rate: datetime | None
    rate_at_window_start: bool

    @property
    def at(self) -> datetime | None:
        """The earliest known start, or None."""
        known = [moment for moment in (self.logs, self.rate) if moment is not None]
        return min(known) if known else None

    @property
    def caveat(self) -> str | None:
        """Why the errors may have started before ``at``, or None."""
        if self.logs is not None and self.logs_truncated:
            return "the log endpoint cut older entries, so the errors may be older"
        if self.logs is None and self.rate_at_window_start:
            return "the rate was above 1 % from the window's start, so it may be older"
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at
        return {key: _iso(value) for key, value in data.items()}


def error_start(
    groups: list[ErrorGroup], series: list[Sample], *, logs_truncated: bool = False
) -> ErrorStart:
    """Find the start of the errors from the error groups and the scrape series."""
    seen = [group.first_seen for group in dominant_groups(groups) if group.first_seen]
    pairs = intervals(series)
    crossing = next(
        (
            index
            for index, (before, after) in enumerate(pairs)
            if (interval_rate(before, after).rate or 0.0) > START_RATE
        ),
        None,
    )
    return ErrorStart(
        logs=min(seen) if seen else None,
        logs_truncated=logs_truncated,
        rate=None if crossing is None else pairs[crossing][0].at,
        rate_at_window_start=crossing == 0,
    )


@dataclass(frozen=True)
class DeployAlignment:
    """The last deployment before the errors started, and how long before."""

    start: datetime | None
    deployment: Change | None
    minutes_before: float | None
    within_window: bool
    window_minutes: float
    reason: str
    history_read: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": _iso(self.start),
            "deployment": self.deployment.to_row() if self.deployment else None,
            "minutes_before": self.minutes_before,
            "within_window": self.within_window,
            "window_minutes": self.window_minutes,
            "reason": self.reason,
            "history_read": self.history_read,
        }


def align_deploys(
    changes: list[Change],
    start: datetime | None,
    window_minutes: float,
    *,
    history_read: bool = True,
) -> DeployAlignment:
    """Find the last deployment before ``start`` and whether it is recent enough.

    Commits are not deployments and are left out. A deployment up to 5 seconds
    after ``start`` counts as preceding it, for clock differences. Without
    ``history_read``, a missing deployment is unknown rather than absent.
    """
    if start is None:
        reason = (
            "no start of the errors was found (no dominant error group and no"
            " interval above 1 %), so no deployment is lined up"
        )
        return DeployAlignment(None, None, None, False, window_minutes, reason)
    cutoff = start + timedelta(seconds=CLOCK_SKEW_SECONDS)
    deploys = [
        change
        for change in changes
        if change.kind == "deployment" and change.time and change.time <= cutoff
    ]
    if not deploys and not history_read:
        reason = (
            "the deployment history could not be read, so no deployment is lined up"
            " with the start of the errors"
        )
        return DeployAlignment(
            start, None, None, False, window_minutes, reason, history_read=False
        )
    if not deploys:
        reason = "no deployment in the lookback before the errors started"
        return DeployAlignment(start, None, None, False, window_minutes, reason)
    last = max(deploys, key=lambda change: change.time or start)
    assert last.time is not None
    minutes = max((start - last.time).total_seconds() / 60, 0.0)
    within = minutes <= window_minutes
    relation = "within" if within else "outside"
    reason = (
        f"deployment {last.version} came {_duration(minutes)} before the errors"
        f" started, {relation} the {window_minutes:g} min a deploy stays suspect"
    )
    return DeployAlignment(
        start, last, round(minutes, 2), within, window_minutes, reason
    )


def new_signatures(groups: list[ErrorGroup], alignment: DeployAlignment) -> int | None:
    """Count dominant groups first seen after the deployment, if the logs reach it.

    Returns None when there is no deployment or the logs start after it, because a
    group cannot be called new without logs from before the deployment.
    """
    deployment = alignment.deployment
    if deployment is None or deployment.time is None:
        return None
    seen = [group.first_seen for group in groups if group.first_seen]
    if not seen or min(seen) > deployment.time:
        return None
    return sum(
        1
        for group in dominant_groups(groups)
        if group.first_seen and group.first_seen >= deployment.time
    )


def release_in_stack(groups: list[ErrorGroup], alignment: DeployAlignment) -> bool:
    """Whether a dominant group's stack names the version of the deployment."""
    deployment = alignment.deployment
    if deployment is None:
        return False
    pattern = re.compile(rf"(?<![\w.]){re.escape(deployment.version)}(?![\w])")
    return any(pattern.search(group.sample) for group in dominant_groups(groups))


def _duration(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 120:
        return f"{minutes:.1f} min"
    return f"{minutes / 60:.1f} h"


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
