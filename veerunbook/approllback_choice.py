"""The choice of the version to roll back to, by evidence or by the operator.

By evidence, the newest deployment at or before the start of the errors is the
suspect. It must lie within the window a deployment stays suspect, as in the
high-error-rate procedure. The last known good version is then the newest earlier
deployment of another version whose status is not rolled back or failed.

A version the operator gives must have the strict form of ``VERSION_PATTERN`` and
appear in the deployment history. It must not be the running version, unless the
history shows a rollback to it already happened: then the action finds it done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from veerunbook.approllback_versions import (
    HISTORY_LIMIT,
    NOT_GOOD_STATUSES,
    VERSION_PATTERN,
    Deployment,
    VersionHistory,
)
from veerunbook.errorrate_evidence import (
    CLOCK_SKEW_SECONDS,
    ErrorStart,
    dominant_groups,
)
from veerunbook.logs import ErrorGroup
from veerunbook.text import listed

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.record import RunContext

BY_EVIDENCE = "evidence"
BY_PARAMETER = "parameter"
_ANYWAY = "give -p version VERSION to roll back anyway"


@dataclass(frozen=True)
class Choice:
    """The version to roll back to, or why there is none.

    ``by`` is ``evidence`` or ``parameter``, and empty without a version.
    ``reason`` names the evidence for the version, or why none was chosen.
    ``status`` is the status of the check that records the choice. ``suspect`` is
    the deployment the errors started with, when one was found.
    """

    version: str | None
    by: str
    reason: str
    status: str
    suspect: Deployment | None = None


def choose_version(
    history: VersionHistory,
    start: datetime | None,
    requested: str = "",
    window_minutes: float = 60.0,
    *,
    start_evidence: str = "",
) -> Choice:
    """Choose the version to roll back to; see the module doc.

    ``start`` is when the errors started, and ``start_evidence`` names the source
    of that moment, as ``describe_start`` returns it.
    """
    suspect = _suspect(history, start)
    if requested:
        return _check_requested(history, requested, suspect)
    if not history.read:
        reason = (
            f"the deployment history could not be read ({history.problem}),"
            " so no version can be chosen"
        )
        return Choice(None, "", reason, "error")
    if start is None:
        reason = (
            "nothing to roll back: no errors were found (no dominant error group in"
            " the logs and no interval above 1 % in the baseline)"
        )
        return Choice(None, "", reason, "pass")
    if suspect is None or suspect.time is None:
        reason = (
            f"no deployment in the history before the errors started at"
            f" {start:%H:%M:%S} UTC, so they did not come with a deployment:"
            f" run high-error-rate, or {_ANYWAY}"
        )
        return Choice(None, "", reason, "warn")
    before = max((start - suspect.time).total_seconds(), 0.0)
    if before > window_minutes * 60:
        reason = (
            f"the newest deployment before the errors, {suspect.version}, came"
            f" {_duration(before)} before them, outside the {window_minutes:g} min"
            f" a deployment stays suspect: run high-error-rate, or {_ANYWAY}"
        )
        return Choice(None, "", reason, "warn", suspect)
    good = _good_before(history, suspect)
    if good is None or good.time is None:
        reason = (
            f"no good deployment older than {suspect.version} among the last"
            f" {HISTORY_LIMIT} deployments; {_ANYWAY}"
        )
        return Choice(None, "", reason, "warn", suspect)
    evidence = f" ({start_evidence})" if start_evidence else ""
    reason = (
        f"the errors started at {start:%H:%M:%S} UTC{evidence}; {suspect.version}"
        f" was deployed {_duration(before)} before; the newest earlier good"
        f" deployment is {good.version}, deployed {good.time:%Y-%m-%d %H:%M} UTC"
    )
    return Choice(good.version, BY_EVIDENCE, reason, "pass", suspect)


def describe_start(start: ErrorStart | None, groups: list[ErrorGroup]) -> str:
    """Name the evidence for the start of the errors, or return "" without one."""
    if start is None or start.at is None:
        return ""
    parts = []
    if start.logs is not None:
        first = next(g for g in dominant_groups(groups) if g.first_seen == start.logs)
        parts.append(
            f"first error log entry of '{first.signature}' at {start.logs:%H:%M:%S} UTC"
        )
    if start.rate is not None:
        parts.append(
            f"first baseline interval above 1 % from {start.rate:%H:%M:%S} UTC"
        )
    if start.caveat:
        parts.append(start.caveat)
    return "; ".join(parts)


def record_choice(run: RunContext, choice: Choice, running: str | None) -> pd.DataFrame:
    """Journal the choice as the check ``version to roll back to``; tabulate it."""
    import pandas as pd

    suspect = choice.suspect.version if choice.suspect else None
    summary = choice.reason
    if choice.version is not None:
        summary = f"{choice.version} by {choice.by}: {choice.reason}"
    run.check(
        "version to roll back to",
        choice.status,
        observed=choice.version,
        expected=f"a version other than the running {running}",
        evidence={"by": choice.by, "suspect": suspect, "running": running},
        summary=summary,
    )
    row = {
        "version": choice.version,
        "chosen by": choice.by or "-",
        "running": running,
        "errors started with": suspect,
        "evidence": choice.reason,
    }
    return pd.DataFrame([row])


def _suspect(history: VersionHistory, start: datetime | None) -> Deployment | None:
    """Return the newest deployment at or before ``start``, allowing clock skew."""
    if start is None:
        return None
    cutoff = start + timedelta(seconds=CLOCK_SKEW_SECONDS)
    earlier = [
        item for item in history.deployments if item.time and item.time <= cutoff
    ]
    return earlier[0] if earlier else None


def _good_before(history: VersionHistory, suspect: Deployment) -> Deployment | None:
    assert suspect.time is not None
    for item in history.deployments:
        if (
            item.time is not None
            and item.time < suspect.time
            and item.version != suspect.version
            and item.status not in NOT_GOOD_STATUSES
        ):
            return item
    return None


def _check_requested(
    history: VersionHistory, requested: str, suspect: Deployment | None
) -> Choice:
    if not VERSION_PATTERN.fullmatch(requested):
        reason = (
            f"invalid version {requested[:70]!r}: give 1 to 64 letters, digits, '.',"
            " '_', '+' or '-', starting with a letter or digit"
        )
        return Choice(None, "", reason, "fail")
    if not history.read:
        reason = (
            f"version {requested} cannot be checked: the deployment history could"
            f" not be read ({history.problem})"
        )
        return Choice(None, "", reason, "error")
    known = history.known()
    if requested not in known:
        reason = (
            f"unknown version {requested!r}: the deployment history does not list"
            f" it; known versions, newest first: {listed(known)}"
        )
        return Choice(None, "", reason, "fail")
    if requested == history.current and not history.redeployed(requested):
        others = [version for version in known if version != requested]
        reason = (
            f"{requested} is the running version, so a rollback to it changes"
            f" nothing; choose an older version: {listed(others)}"
        )
        return Choice(None, "", reason, "fail")
    own = [item for item in history.deployments if item.version == requested]
    newest = own[0]
    when = f"{newest.time:%Y-%m-%d %H:%M} UTC" if newest.time else "at an unknown time"
    reason = f"given with -p version; last deployed {when}"
    if all(item.status in NOT_GOOD_STATUSES for item in own):
        reason += "; caution: every deployment of it was rolled back or failed"
        return Choice(requested, BY_PARAMETER, reason, "warn", suspect)
    return Choice(requested, BY_PARAMETER, reason, "pass", suspect)


def _duration(seconds: float) -> str:
    """Return a duration as "12 s", "4.5 min", "3.2 h" or "1.3 d"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"
