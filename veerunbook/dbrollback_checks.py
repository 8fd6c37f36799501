"""The checks of data integrity before and after a restore, each journaled.

The runbook restores a backup only when data corruption is detected, and validates
the data afterwards. Both use the same sources:

- the integrity that the database health endpoint reports;
- the target's ``db_validate`` command: exit code 0 means valid data, 1 means
  findings (the exit code of the demo's ``db-validate`` and of a failed npm
  script), any other code or a timeout means the command could not tell;
- the database's own check: SQLite's ``PRAGMA integrity_check``, or amcheck's B-tree
  check on PostgreSQL when the extension is installed.

After a restore, ``validate`` also compares every table's row count and digest with
the manifest of the restored backup. Each check's name ends in ``BEFORE`` or
``AFTER``, so that the summary of a run that restored separates the two readings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from veerunbook.actions import Outcome
from veerunbook.backup_manifest import Manifest, compare_tables
from veerunbook.dbconn_endpoint import integrity_word, probe_endpoint
from veerunbook.dbrollback_db import Database
from veerunbook.probe import ProbeResult
from veerunbook.session import Session
from veerunbook.shell import configured_command, run_command
from veerunbook.triage_signals import data_corruption

# Exit code of db_validate that reports invalid data rather than a failure to run.
FINDINGS_EXIT_CODE = 1

# The ends of the check names, for the readings before and after the restore.
BEFORE = "before the restore"
AFTER = "after the restore"
ENDPOINT_CHECK = "data integrity (endpoint)"
VALIDATE_CHECK = "db_validate command"
OWN_CHECK = "database integrity check"


@dataclass(frozen=True)
class Finding:
    """The result of one integrity source: a check status and what it found."""

    status: str
    source: str
    detail: str

    @property
    def line(self) -> str:
        """The finding in one line, led by its source."""
        return f"{self.source}: {self.detail}"


@dataclass
class Evidence:
    """The findings of the integrity sources, sorted by verdict."""

    found: list[Finding] = field(default_factory=list)
    passed: list[Finding] = field(default_factory=list)
    unknown: list[Finding] = field(default_factory=list)
    unreachable: str | None = None

    @property
    def corrupted(self) -> bool:
        """Whether any source found corruption."""
        return bool(self.found)

    def add(self, finding: Finding) -> None:
        """Sort ``finding`` in by its status."""
        if finding.status == "fail":
            self.found.append(finding)
        elif finding.status == "pass":
            self.passed.append(finding)
        else:
            self.unknown.append(finding)

    def line(self) -> str:
        """Return the evidence in one line, or why there is none."""
        if self.found:
            sources = " and ".join(finding.source for finding in self.found)
            return f"{self.found[0].detail} (found by {sources})"
        if self.passed:
            lines = "; ".join(finding.line for finding in self.passed)
            return f"no evidence of corruption ({lines})"
        lines = "; ".join(finding.line for finding in self.unknown) or "no source"
        return f"no evidence either way ({lines})"


def gather_evidence(
    session: Session,
    database: Database | None,
    timeout_s: float,
    progress: Callable[[str], None] | None = print,
) -> Evidence:
    """Run every integrity source on the current data and collect the evidence."""
    evidence = Evidence()
    endpoint = probe_endpoint(session, progress)
    if endpoint.unreachable:
        evidence.unreachable = endpoint.unreachable
        evidence.add(Finding("error", "target", f"unreachable: {endpoint.unreachable}"))
    else:
        evidence.add(endpoint_check(session, endpoint.probe, BEFORE))
    evidence.add(run_validate(session, timeout_s, BEFORE))
    if database is not None:
        evidence.add(database_check(session, database, timeout_s, BEFORE))
    return evidence


def validate(
    session: Session, database: Database | None, manifest: Manifest, timeout_s: float
) -> Outcome:
    """Check the restored data against the backup's manifest and every source."""
    results = [compare_with_manifest(session, database, manifest, timeout_s)]
    results.append(run_validate(session, timeout_s, AFTER))
    if database is not None:
        results.append(database_check(session, database, timeout_s, AFTER))
    endpoint = probe_endpoint(session, progress=None)
    if not endpoint.unreachable:
        results.append(endpoint_check(session, endpoint.probe, AFTER))
    failed = [found.line for found in results if found.status in ("fail", "error")]
    if failed:
        return Outcome(False, "; ".join(failed), {"failed": failed})
    passed = [found.line for found in results if found.status == "pass"]
    return Outcome(True, "; ".join(passed), {"passed": passed})


def compare_with_manifest(
    session: Session, database: Database | None, manifest: Manifest, timeout_s: float
) -> Finding:
    """Compare every table's rows and digest with the manifest; journal it."""
    name = "tables match the backup"
    if database is None:
        line = "not compared: no database URL is usable"
        session.run.check(name, "skip", summary=line)
        return Finding("skip", "tables", line)
    try:
        differences = compare_tables(database.digests(timeout_s), manifest.tables)
    except Exception as exc:
        # Any failure to read the database is a finding of this check, not a crash.
        line = session.redactor.mask(f"not read: {type(exc).__name__}: {exc}")
        session.run.check(name, "error", summary=line)
        return Finding("error", "tables", line)
    status = "fail" if differences else "pass"
    line = (
        f"{len(manifest.tables)} tables match backup {manifest.name}"
        if not differences
        else f"tables differ from backup {manifest.name}: {'; '.join(differences[:5])}"
    )
    session.run.check(
        name,
        status,
        observed=len(differences),
        unit="differing tables",
        expected=0,
        evidence={"differences": differences, "backup": manifest.name},
        summary=line,
    )
    return Finding(status, "tables", line)


def endpoint_check(session: Session, probe: ProbeResult, when: str) -> Finding:
    """Journal the integrity that the database endpoint reports; return it.

    Only an integrity check that ran and passed is a pass. One that the endpoint
    skipped (its database unreachable) or reported without a status is a skip, and
    a body without an integrity field journals nothing.
    """
    source = "the database endpoint"
    body = probe.json if isinstance(probe.json, dict) else {}
    integrity = body.get("integrity")
    problem = data_corruption({"database": probe})
    if integrity is None and problem is None:
        return Finding("skip", source, "reports no integrity check")
    word = integrity_word(body)
    if problem:
        status, summary, found = "fail", problem, problem
    elif word == "pass":
        status, found = "pass", "integrity pass"
        summary = "the database endpoint reports its data valid"
    else:
        detail = integrity.get("detail") if isinstance(integrity, dict) else None
        status, found = "skip", "reports no integrity check"
        summary = f"the database endpoint did not check integrity ({word or '-'})"
        if detail:
            summary += f": {detail}"
    name = f"{ENDPOINT_CHECK} {when}"
    session.run.check(name, status, evidence=integrity, summary=summary)
    return Finding(status, source, found)


def run_validate(session: Session, timeout_s: float, when: str) -> Finding:
    """Run the ``db_validate`` command when configured; journal and return it."""
    name = f"{VALIDATE_CHECK} {when}"
    template = configured_command(session, "db_validate")
    if not template:
        line = "no db_validate command is configured"
        session.run.check(name, "skip", summary=line)
        return Finding("skip", "db_validate", "not configured")
    result = run_command(template, timeout_s=timeout_s, redactor=session.redactor)
    if result.ok:
        status = "pass"
    elif result.exit_code == FINDINGS_EXIT_CODE:
        status = "fail"
    else:
        status = "error"
    reported = _failure_line(result.stdout)
    line = f"db_validate {result.summary()}: {reported}".rstrip(": ")
    session.run.check(
        name,
        status,
        observed=result.exit_code,
        unit="exit code",
        expected=0,
        evidence=result.to_dict(),
        summary=line,
    )
    return Finding(status, "db_validate", reported or result.summary())


def database_check(
    session: Session, database: Database, timeout_s: float, when: str
) -> Finding:
    """Run the database's own integrity check; journal and return it."""
    try:
        status, line = database.own_check(timeout_s)
    except Exception as exc:
        # A database that cannot be read is a finding of this check, not a crash.
        status = "error"
        line = session.redactor.mask(f"not run: {type(exc).__name__}: {exc}")
    session.run.check(f"{OWN_CHECK} {when}", status, summary=line)
    return Finding(status, "the database's own check", line)


def evidence_rows(session: Session) -> list[dict[str, Any]]:
    """Return the integrity checks journaled before the restore as table rows."""
    names = [f"{name} {BEFORE}" for name in (ENDPOINT_CHECK, VALIDATE_CHECK, OWN_CHECK)]
    names.append("target")
    return [
        {"source": check.name, "status": check.status, "finding": check.summary}
        for check in session.run.checks
        if check.name in names
    ]


def _failure_line(output: str) -> str:
    """Return the first output line that reports a failure, else the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    failing = [line for line in lines if "fail" in line.lower()]
    return (failing or lines[-1:] or [""])[0]
