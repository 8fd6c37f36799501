"""Recent deployments and configuration changes of a target.

Two sources are read when configured: the git history of the application repository
(``app_repo``, commits of the last hours) and the target's deployment history endpoint
(``GET /api/deployments`` by default). A repository that is not configured is recorded
as a skipped check, and a source that fails as a failed or error check. The returned
list contains what the other source gave.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from veerunbook.session import Session

GIT_TIMEOUT_SECONDS = 10.0
_FIELD = "\x1f"


@dataclass(frozen=True)
class Change:
    """One deployment or commit, with when it happened and where it was read."""

    time: datetime | None
    kind: str
    version: str
    description: str
    source: str

    def to_row(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat() if self.time else None,
            "kind": self.kind,
            "version": self.version,
            "description": self.description,
            "source": self.source,
        }


def recent_changes(session: Session, hours: float) -> list[Change]:
    """Collect the changes of the last ``hours`` from every configured source."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    changes = _deployments(session, since)
    if session.target.app_repo:
        changes += _git_commits(session, session.target.app_repo, since)
    else:
        summary = f"target {session.target.name!r} has no app_repo configured"
        session.run.check("git history", "skip", summary=summary)
    changes.sort(key=lambda change: change.time or since, reverse=True)
    session.run.check(
        "recent changes",
        "warn" if changes else "pass",
        observed=len(changes),
        unit="changes",
        expected=f"none in the last {hours:g} h",
        evidence=[change.to_row() for change in changes[:20]],
        summary=_describe(changes, hours),
    )
    return changes


def _describe(changes: list[Change], hours: float) -> str:
    if not changes:
        return f"no deployment or commit in the last {hours:g} h"
    latest = changes[0]
    when = latest.time.strftime("%H:%M:%S UTC") if latest.time else "unknown time"
    return f"{len(changes)} changes; latest {latest.kind} {latest.version} at {when}"


def _deployments(session: Session, since: datetime) -> list[Change]:
    result = session.probe("deployments", name="deployment history", expect="json")
    body = result.json
    items = body.get("deployments") if isinstance(body, dict) else body
    if result.status != "pass" or not isinstance(items, list):
        return []
    changes = []
    for item in items:
        if not isinstance(item, dict):
            continue
        when = parse_time(item.get("deployedAt") or item.get("time"))
        if when is not None and when < since:
            continue
        status = item.get("status", "")
        changes.append(
            Change(
                time=when,
                kind="deployment",
                version=str(item.get("version", "?")),
                description=f"{status} {item.get('commitSha', '')}".strip(),
                source="deployment history",
            )
        )
    return changes


def _git_commits(session: Session, repo: str, since: datetime) -> list[Change]:
    command = [
        "git",
        "-C",
        repo,
        "log",
        f"--since={since.isoformat()}",
        f"--format=%H{_FIELD}%cI{_FIELD}%s",
        "-n",
        "50",
    ]
    try:
        # Commit subjects are bytes to git: one that is not UTF-8 must not fail here.
        done = subprocess.run(
            command,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        session.run.check("git history", "error", summary=f"git log failed: {exc}")
        return []
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or ["no output"]
        session.run.check("git history", "error", summary=f"git log: {reason[0]}")
        return []
    changes = []
    for line in done.stdout.splitlines():
        sha, _, rest = line.partition(_FIELD)
        stamp, _, subject = rest.partition(_FIELD)
        changes.append(Change(parse_time(stamp), "commit", sha[:12], subject, repo))
    return changes


def parse_time(value: Any) -> datetime | None:
    """Parse an ISO-8601 time (``Z`` allowed) as UTC, or return None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # OverflowError: 9999-12-31T23:00-01:00
        return None
