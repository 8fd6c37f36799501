"""The database-rollback procedure's steps, one method each.

``DatabaseRollback`` follows the runbook's "Database Rollback (EXTREME CAUTION)".
It gathers the evidence of corruption and chooses the backup to restore. It stops
the traffic and measures that it stopped, takes and verifies an emergency backup,
restores, validates, and resumes the traffic in stages. Every change goes through
``veerunbook.actions.perform``, so a run is a dry-run unless its ``confirm``
parameter equals its incident id. Each method journals what it did and returns a
table or ``Nothing``. A dead target, a missing database or a failing command ends in
``refused`` or ``failed`` actions and ``error`` checks, never in an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from veerunbook.actions import Action, ActionResult, Guard, actions_frame, perform
from veerunbook.backup_manifest import emergency_name, parse_time
from veerunbook.dbrollback_actions import (
    emergency_backup,
    restore,
    resume,
    stop_traffic,
    validate_data,
)
from veerunbook.dbrollback_backups import Choice, backup_folder, list_candidates
from veerunbook.dbrollback_checks import evidence_rows, gather_evidence
from veerunbook.dbrollback_db import open_database
from veerunbook.dbrollback_impact import age_text, assumption_line, count_impact
from veerunbook.dbrollback_plan import DONE, RollbackFacts, RollbackParams
from veerunbook.dbrollback_text import (
    diagnosis_line,
    manifest_rows,
    recovery_options,
)
from veerunbook.dbrollback_traffic import STAGES, measure
from veerunbook.session import Session
from veerunbook.triage_tables import Nothing, frame

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class DatabaseRollback:
    """State of one database-rollback run, filled in step by step."""

    session: Session
    confirm: str = ""
    params: RollbackParams = field(default_factory=RollbackParams)

    def __post_init__(self) -> None:
        self.guard = Guard.for_session(self.session, self.confirm)
        self.facts = RollbackFacts(self.params)
        self.order: list[str] = []

    def banner(self) -> str:
        """Return the dry-run or confirmed line the notebook shows first."""
        return self.guard.banner()

    # Step 1: evidence of corruption.
    def gather_evidence(
        self, progress: Callable[[str], None] | None = print
    ) -> pd.DataFrame | Nothing:
        """Read the database URL and run every integrity check on the current data."""
        facts = self.facts
        facts.database, facts.database_problem = open_database(self.session)
        facts.folder = backup_folder(self.params.backup_dir, facts.database)
        if facts.database is None:
            self.session.run.check(
                "database URL",
                "warn",
                summary=f"no direct database access: {facts.database_problem}",
            )
        timeout = self.params.command_timeout_seconds
        facts.evidence = gather_evidence(
            self.session, facts.database, timeout, progress
        )
        return frame(evidence_rows(self.session), "no integrity check ran")

    # Step 2: the backups and the one to restore.
    def list_backups(self) -> pd.DataFrame | Nothing:
        """List the backups with their manifests and choose the one to restore."""
        facts = self.facts
        if facts.folder is None:
            reason = "no backup folder: run with -p backup_dir DIR"
            self.session.run.check("backups", "error", summary=reason)
            return Nothing(reason)

        since = self._corrupted_since()
        if since is None:
            reason = (
                f"invalid corrupted_since {self.params.corrupted_since!r}: give an "
                "ISO 8601 time such as 2026-01-31T14:05:00Z"
            )
            facts.choice = Choice(reason=reason)
            self.session.run.check("backups", "error", summary=reason)
            return Nothing(reason)

        facts.choice = list_candidates(
            self.session,
            facts.folder,
            corrupted_since=since,
            requested=self.params.backup,
            timeout_s=self.params.command_timeout_seconds,
        )
        rows = [candidate.row() for candidate in facts.choice.candidates]
        chosen = facts.chosen
        summary = (
            f"chosen: {chosen.name}, made {chosen.created_at}"
            if chosen
            else f"no backup to restore: {facts.choice.reason}"
        )

        # Without a backup to restore, corruption cannot be repaired, so it is a
        # finding. Without corruption it is a warning: nothing needs the backup now.
        corrupted = facts.evidence is not None and facts.evidence.corrupted
        missing = "fail" if corrupted else "warn"
        self.session.run.check(
            "backups",
            "pass" if chosen else missing,
            observed=len(rows),
            unit="backups",
            evidence={"backups": rows, "unreadable": facts.choice.unreadable},
            summary=summary,
        )
        return frame(rows, f"no backups in {facts.folder}: {facts.choice.reason}")

    def restore_impact(self) -> pd.DataFrame | Nothing:
        """Show what the restore would replace: per table, live rows against backup.

        Journals the assumed start of the corruption, the backup's age and the
        tables that the restore changes, and keeps them for the dry-run diagnosis.
        """
        facts = self.facts
        chosen = facts.chosen
        since = self._corrupted_since()
        if chosen is None or since is None:
            return Nothing("no backup was chosen, so nothing would be restored")
        age = age_text(chosen.created_at, facts.started)
        lines = [
            assumption_line(self.params.corrupted_since, since),
            f"backup {chosen.name} is {age} old (made {chosen.created_at})",
        ]
        facts.impact_rows, line = count_impact(
            facts.database,
            chosen,
            self.params.command_timeout_seconds,
            self.session.redactor,
        )
        lines.append(line)
        facts.impact = "; ".join(lines)
        self.session.run.note(
            f"restore impact: {facts.impact}", restore_impact=facts.impact_rows
        )
        for line in lines:
            print(line)
        return frame(facts.impact_rows, "the live rows were not counted")

    # Step 3: stop the traffic, then measure that it stopped.
    def stop_traffic(self) -> pd.DataFrame:
        """Stop all application traffic (an action)."""
        return self._perform(stop_traffic(self.session, self.facts))

    def check_traffic(
        self, window_seconds: float, progress: Callable[[str], None] | None = print
    ) -> pd.DataFrame | Nothing:
        """Measure the user requests over ``window_seconds`` after stop-traffic."""
        mode = self.facts.mode_of("stop-traffic")
        if mode not in ("executed", "already-done", "failed"):
            reason = (
                "not measured in a dry-run: a confirmed run measures the user "
                "requests after stopping the traffic"
                if mode == "dry-run"
                else f"not measured: stop-traffic ended {mode}"
            )
            self.session.run.check("traffic stopped", "skip", summary=reason)
            return Nothing(reason)
        reading = measure(self.session, window_seconds, progress)
        self.facts.reading = reading
        status = "pass" if reading.stopped else "fail"
        if not reading.stopped and reading.requests is None:
            status = "error"
        self.session.run.check(
            "traffic stopped",
            status,
            observed=reading.requests,
            unit="user requests",
            expected=0,
            evidence={"mode": reading.mode, "routes": reading.routes},
            summary=reading.summary(),
        )
        rows = [{"route": r, "requests": n} for r, n in reading.routes.items()]
        return frame(rows, reading.summary())

    # Step 4: the emergency backup.
    def emergency_backup(self) -> pd.DataFrame:
        """Back up the current state as ``emergency_<UTC time>`` and verify it."""
        self.facts.emergency_name = emergency_name()
        action = emergency_backup(self.session, self.facts, self.facts.emergency_name)
        return self._perform(action)

    def emergency_manifest(self) -> pd.DataFrame | Nothing:
        """Show the emergency backup's manifest, per table."""
        manifest = self.facts.emergency
        if manifest is None:
            mode = self.facts.mode_of("emergency-backup")
            return Nothing(f"no emergency backup was written (it ended {mode})")
        return frame(manifest_rows(manifest))

    # Step 5: the restore.
    def restore(self) -> pd.DataFrame:
        """Restore the chosen backup (an action)."""
        return self._perform(restore(self.session, self.facts))

    # Step 6: validation of the restored data.
    def validate(self) -> pd.DataFrame:
        """Validate the restored data (a guarded step, so a dry-run plans it)."""
        return self._perform(validate_data(self.session, self.facts))

    # Step 7: resume the traffic in stages.
    def resume(self) -> pd.DataFrame:
        """Resume health checks, then reads, then writes; stop at a failing stage."""
        for stage in STAGES:
            self._perform(resume(self.session, self.facts, stage))
        names = [f"resume-{stage}" for stage in STAGES]
        return actions_frame([self.facts.results[name] for name in names])

    # Step 8: the plan, the recovery option, the diagnosis and the summary.
    def actions(self) -> pd.DataFrame:
        """Return every action of the run in order: name, mode, detail, verified."""
        return actions_frame([self.facts.results[name] for name in self.order])

    def recovery_options(self) -> pd.DataFrame:
        """Rank the restore by the evidence of corruption, journal it and show it."""
        import pandas as pd

        options = recovery_options(self.facts)
        ranked = [option for option in options if option["rank"] is not None]
        if ranked:
            text = f"recovery options ranked: 1. {ranked[0]['action']}"
        else:
            text = "no recovery option ranked: no source found corruption"
        self.session.run.note(text, recovery_options=options)
        print(text)
        return pd.DataFrame(options).astype({"rank": "Int64"})

    def diagnosis(self) -> str:
        """Return the diagnosis line and journal it."""
        line = diagnosis_line(self.session, self.facts, self.guard.confirmed)
        self.session.run.note(f"diagnosis: {line}", diagnosis=line)
        return f"diagnosis: {line}"

    def run_status(self) -> str | None:
        """Return the run's status from the state the restore left, or None.

        ``ok`` for a restore that executed, validated and resumed the traffic to
        full, although the readings before the restore failed. ``findings`` for a
        confirmed run that was asked for a restore (``backup`` or ``force`` given)
        whose restore did not execute, even when every check passed. None leaves
        the status to the checks.
        """
        restored = self.facts.mode_of("restore") == "executed"
        resumed = self.facts.mode_of(f"resume-{STAGES[-1]}") in DONE
        validated = self.facts.mode_of("validate") == "executed"
        if restored and validated and resumed:
            return "ok"
        requested = bool(self.params.backup) or self.params.force
        if self.guard.confirmed and requested and not restored:
            already = self.facts.mode_of("restore") == "already-done"
            return None if already else "findings"
        return None

    def summary(self) -> pd.DataFrame:
        """Return every check of the run as a table, worst first, with "" for a
        missing value."""
        from veerunbook.approllback_report import checks_table

        return checks_table(self.session.run)

    def _perform(self, action: Action) -> pd.DataFrame:
        result: ActionResult = perform(self.session, self.guard, action)
        self.facts.results[action.name] = result
        if action.name not in self.order:
            self.order.append(action.name)
        return actions_frame([result])

    def _corrupted_since(self) -> datetime | None:
        """Return the time the corruption began: the parameter, else the run's start.

        Returns None when the parameter is no ISO 8601 time.
        """
        text = self.params.corrupted_since
        return parse_time(text) if text else self.facts.started
