"""The versions a target ran, and the choice of the version to roll back to.

The deployment history endpoint (``GET /api/deployments``) lists the deployments,
newest first, with their version, time and status. When the target has an
``app_repo``, ``git log --oneline -10`` of it is listed too, as the runbook's first
step does, but only versions from the deployment history can be chosen, because only
those can be checked against the running version afterwards.

``veerunbook.approllback_choice`` chooses the version to roll back to from this
history.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from veerunbook.changes import GIT_TIMEOUT_SECONDS, parse_time
from veerunbook.text import clipped, counted

if TYPE_CHECKING:
    from veerunbook.session import Session

# A version as deploy tools name them: 1.4.2, v2.0.0-rc.1, 2024.06.01+build.7, or a
# commit hash. Nothing a shell or a URL would read specially.
VERSION_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]{0,63}")
# Deployments requested from the history endpoint.
HISTORY_LIMIT = 20
# The runbook's first step: git log --oneline -10.
GIT_LOG_COUNT = 10
# A deployment with one of these statuses never ran as a good version.
NOT_GOOD_STATUSES = frozenset({"rolled_back", "failed"})
# Characters kept of a deployment's note. Its other fields keep ``ITEM_CHARS``, as
# many as ``VERSION_PATTERN`` allows, so a version that can be chosen is never cut.
NOTE_CHARS = 200


@dataclass(frozen=True)
class Deployment:
    """One entry of the deployment history."""

    version: str
    time: datetime | None
    status: str
    commit: str = ""
    note: str = ""

    def to_row(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "deployed at": self.time.isoformat() if self.time else None,
            "status": self.status,
            "commit": self.commit,
            "note": self.note,
        }


@dataclass
class VersionHistory:
    """The deployments newest first, the running version, and the git log.

    ``problem`` is why the deployment history could not be read, else None.
    """

    deployments: list[Deployment] = field(default_factory=list)
    current: str | None = None
    problem: str | None = None
    commits: list[tuple[str, str]] = field(default_factory=list)

    @property
    def read(self) -> bool:
        """Whether the deployment history was read."""
        return self.problem is None

    def known(self) -> list[str]:
        """Return every version of the history once, newest deployment first."""
        return list(dict.fromkeys(item.version for item in self.deployments))

    def redeployed(self, version: str) -> bool:
        """Whether ``version`` runs again after another version was deployed over it.

        That is what a rollback to ``version`` leaves in the history.
        """
        if self.current != version:
            return False
        times = [item.time for item in self.deployments if item.version == version]
        first = min((time for time in times if time), default=None)
        return first is not None and any(
            item.version != version and item.time and item.time > first
            for item in self.deployments
        )


def parse_deployments(body: Any) -> tuple[list[Deployment], str | None] | None:
    """Read a deployment history body: a list, or ``{"deployments": [...]}``.

    Returns the deployments newest first and the running version: the body's
    ``current``, else the newest deployment whose status is not rolled back or
    failed. Returns None for a body without a deployment list. Text fields are
    clipped (``veerunbook.text.clipped``), so a hostile history cannot make a
    message or a journal field of unbounded size.
    """
    items = body.get("deployments") if isinstance(body, dict) else body
    if not isinstance(items, list):
        return None
    deployments = [_deployment(item) for item in items if isinstance(item, dict)]
    deployments = [item for item in deployments if item.version]
    deployments.sort(key=_newest_first)
    current = body.get("current") if isinstance(body, dict) else None
    if not isinstance(current, str) or not current:
        running = [d for d in deployments if d.status not in NOT_GOOD_STATUSES]
        current = running[0].version if running else None
    return deployments, clipped(current) if current else None


def _deployment(item: dict[str, Any]) -> Deployment:
    return Deployment(
        version=clipped(str(item.get("version") or "")),
        time=parse_time(item.get("deployedAt") or item.get("time")),
        status=clipped(str(item.get("status") or "")),
        commit=clipped(str(item.get("commitSha") or item.get("commit") or "")),
        note=clipped(str(item.get("note") or ""), NOTE_CHARS),
    )


def _newest_first(item: Deployment) -> float:
    return -item.time.timestamp() if item.time else float("inf")


def read_history(session: Session) -> VersionHistory:
    """Read the deployment history and, with an ``app_repo``, the git log.

    Journals the checks ``deployment history`` and ``git history``.
    """
    history = VersionHistory()
    query = f"limit={HISTORY_LIMIT}"
    result = session.probe(
        "deployments",
        name="deployment history",
        expect="json",
        query=query,
        record=False,
    )
    parsed = parse_deployments(result.json) if result.status == "pass" else None
    if result.status != "pass":
        history.problem = result.summary()
        session.run.record_probe(result)
    elif parsed is None:
        history.problem = "the response contains no deployment list"
        session.run.check("deployment history", "error", summary=history.problem)
    else:
        history.deployments, history.current = parsed
        session.run.check(
            "deployment history",
            "pass",
            observed=len(history.deployments),
            unit="deployments",
            evidence={"url": result.url, "current": history.current},
            summary=f"{counted(len(history.deployments), 'deployment')} listed;"
            f" running: {history.current or 'unknown'}",
        )
    repo = session.target.app_repo
    if repo:
        history.commits = _git_log(session, repo)
    else:
        summary = f"target {session.target.name!r} has no app_repo configured"
        session.run.check("git history", "skip", summary=summary)
    return history


def _git_log(session: Session, repo: str) -> list[tuple[str, str]]:
    command = ["git", "-C", repo, "log", "--oneline", f"-{GIT_LOG_COUNT}"]
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
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        session.run.check("git history", "error", summary=f"git log: {reason}")
        return []
    commits = []
    for line in done.stdout.splitlines():
        sha, _, subject = line.partition(" ")
        commits.append((sha, subject))
    session.run.check(
        "git history",
        "pass",
        observed=len(commits),
        unit="commits",
        evidence=[{"commit": sha, "subject": subject} for sha, subject in commits],
        summary=f"the last {len(commits)} commits of {repo}",
    )
    return commits
