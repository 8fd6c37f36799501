"""Recent deployments and configuration changes of a target.

Two sources are read when configured: the target's deployment history endpoint
(``GET /api/deployments`` by default) and the git history of the application
repository (``app_repo``, commits of the last hours). Each source gets a check:
``deployment history`` passes when the history was read, and ``git history`` is
skipped without an ``app_repo``. The ``recent changes`` check passes on "no change"
only when every configured source was read. Otherwise it is skipped and names the
source that could not be read.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from veerunbook.probe import ProbeResult
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


@dataclass
class ChangeHistory:
    """The changes of the last hours and which sources could not be read.

    ``unread`` maps a source ("deployment history" or "git history") to why it could
    not be read. A source that is not configured is neither read nor unread.
    """

    hours: float
    changes: list[Change] = field(default_factory=list)
    unread: dict[str, str] = field(default_factory=dict)
    git_configured: bool = False

    @property
    def deployments_read(self) -> bool:
        """Whether the deployment history was read, so a missing deploy is a fact."""
        return "deployment history" not in self.unread

    def status(self) -> str:
        """Check status: warn on changes, skip on an unread source, else pass."""
        if self.changes:
            return "warn"
        return "skip" if self.unread else "pass"

    def describe(self) -> str:
        """Return one line: the latest change, or what was not found, and gaps."""
        text = _describe_changes(self.changes) if self.changes else self._none_found()
        gaps = [
            f"the {name} could not be read: {why}" for name, why in self.unread.items()
        ]
        return "; ".join([text, *gaps]) if text else "; ".join(gaps)

    def _none_found(self) -> str:
        read = []
        if self.deployments_read:
            read.append("deployment")
        if self.git_configured and "git history" not in self.unread:
            read.append("commit")
        if not read:
            return ""
        return f"no {' or '.join(read)} in the last {self.hours:g} h"


def read_changes(session: Session, hours: float) -> ChangeHistory:
    """Collect the changes of the last ``hours`` from every configured source."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    history = ChangeHistory(hours, git_configured=bool(session.target.app_repo))
    history.changes = _deployments(session, since, history)
    if session.target.app_repo:
        history.changes += _git_commits(
            session, session.target.app_repo, since, history
        )
    else:
        summary = f"target {session.target.name!r} has no app_repo configured"
        session.run.check("git history", "skip", summary=summary)
    history.changes.sort(key=lambda change: change.time or since, reverse=True)
    session.run.check(
        "recent changes",
        history.status(),
        observed=len(history.changes)
        if history.changes or not history.unread
        else None,
        unit="changes",
        expected=f"none in the last {hours:g} h",
        evidence={
            "changes": [change.to_row() for change in history.changes[:20]],
            "unread": history.unread,
        },
        summary=history.describe(),
    )
    return history


def recent_changes(session: Session, hours: float) -> list[Change]:
    """Collect the changes of the last ``hours``; see ``read_changes``."""
    return read_changes(session, hours).changes


def _describe_changes(changes: list[Change]) -> str:
    latest = changes[0]
    when = latest.time.strftime("%H:%M:%S UTC") if latest.time else "unknown time"
    count = "1 change" if len(changes) == 1 else f"{len(changes)} changes"
    return f"{count}; latest {latest.kind} {latest.version} at {when}"


def _deployments(
    session: Session, since: datetime, history: ChangeHistory
) -> list[Change]:
    result = session.probe(
        "deployments", name="deployment history", expect="json", record=False
    )
    body = result.json
    items = body.get("deployments") if isinstance(body, dict) else body
    if result.status != "pass":
        history.unread["deployment history"] = _probe_reason(result)
        session.run.record_probe(result)
        return []
    if not isinstance(items, list):
        reason = "the response has no deployment list"
        history.unread["deployment history"] = reason
        session.run.check(
            "deployment history",
            "error",
            evidence={"url": result.url, "excerpt": result.excerpt},
            summary=f'{reason} (expected a JSON list or {{"deployments": [...]}})',
        )
        return []
    listed = [item for item in items if isinstance(item, dict)]
    changes = [_deployment(item) for item in listed]
    changes = [change for change in changes if not change.time or change.time >= since]
    session.run.check(
        "deployment history",
        "pass",
        observed=result.latency_ms,
        unit="ms",
        evidence={"url": result.url, "listed": len(listed)},
        summary=f"{_count(len(listed), 'deployment', 'deployments')} listed,"
        f" {len(changes)} in the last {history.hours:g} h",
    )
    return changes


def _deployment(item: dict[str, Any]) -> Change:
    when = parse_time(item.get("deployedAt") or item.get("time"))
    status = item.get("status", "")
    return Change(
        time=when,
        kind="deployment",
        version=str(item.get("version", "?")),
        description=f"{status} {item.get('commitSha', '')}".strip(),
        source="deployment history",
    )


def _probe_reason(result: ProbeResult) -> str:
    reason = result.error or (result.reasons[0] if result.reasons else result.status)
    if result.http_status is not None:
        return f"HTTP {result.http_status}: {reason}"
    return reason


def _count(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _git_commits(
    session: Session, repo: str, since: datetime, history: ChangeHistory
) -> list[Change]:
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
        history.unread["git history"] = f"git log failed: {exc}"
        session.run.check("git history", "error", summary=f"git log failed: {exc}")
        return []
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or ["no output"]
        history.unread["git history"] = f"git log: {reason[0]}"
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
