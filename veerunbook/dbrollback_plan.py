"""The facts of one database-rollback run, and the preconditions its actions share.

``RollbackFacts`` collects the parameters and what the steps found: the database,
the backup folder, the evidence of corruption, the backup chosen, the traffic
measured and the end of every action so far.

A precondition that depends on an earlier action reads that action's result. In a
dry-run the earlier action ends as ``dry-run``, so the precondition passes with a
detail saying what a confirmed run requires there. That way the plan of a dry-run
lists every step as ``dry-run`` instead of refusing the restore only because the
traffic was not really stopped. The evidence of corruption and the backup to
restore are checked for real in every run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veerunbook.actions import ActionResult, Precondition
from veerunbook.backup_manifest import Manifest
from veerunbook.dbrollback_backups import Choice, folder_problem
from veerunbook.dbrollback_checks import Evidence
from veerunbook.dbrollback_db import Database
from veerunbook.dbrollback_traffic import TrafficReading

# Modes of an earlier action after which a later one may run.
DONE = ("executed", "already-done")


@dataclass(frozen=True)
class RollbackParams:
    """The procedure's parameters, as the notebook passes them."""

    backup: str = ""
    force: bool = False
    backup_dir: str = ""
    corrupted_since: str = ""
    command_timeout_seconds: float = 600.0


@dataclass
class RollbackFacts:
    """Everything a database-rollback run found so far, step by step."""

    params: RollbackParams
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    database: Database | None = None
    database_problem: str = ""
    folder: Path | None = None
    evidence: Evidence | None = None
    choice: Choice | None = None
    reading: TrafficReading | None = None
    emergency_name: str = ""
    emergency: Manifest | None = None
    # The plan's statement of what the restore replaces (``dbrollback_impact``).
    impact: str = ""
    impact_rows: list[dict[str, Any]] = field(default_factory=list)
    # The failed checks of the validation, each in one line.
    validation_failures: list[str] = field(default_factory=list)
    results: dict[str, ActionResult] = field(default_factory=dict)

    @property
    def chosen(self) -> Manifest | None:
        """The manifest of the backup to restore, if one was chosen."""
        if self.choice is None or self.choice.chosen is None:
            return None
        return self.choice.chosen.manifest

    def mode_of(self, name: str) -> str | None:
        """Return how action ``name`` ended, or None if it did not run."""
        result = self.results.get(name)
        return None if result is None else result.mode

    # The preconditions, each a method so that it reads the facts when it runs.
    def corruption_evidence(self) -> Precondition:
        """Check for evidence of corruption, or ``force``."""
        name = "corruption evidence"
        evidence = self.evidence
        line = evidence.line() if evidence else "the integrity checks did not run"
        if evidence is not None and evidence.corrupted:
            return Precondition(name, True, line)
        if self.params.force:
            return Precondition(name, True, f"force is set; {line}")
        return Precondition(
            name,
            False,
            f"{line}. The runbook restores a backup only when data corruption is "
            "detected; to act anyway, run with -p force True",
        )

    def backup_to_restore(self) -> Precondition:
        """Check that a backup matching its manifest was chosen."""
        chosen = self.chosen
        if chosen is not None:
            return Precondition("backup to restore", True, chosen.name)
        reason = self.choice.reason if self.choice else "the backups were not listed"
        return Precondition("backup to restore", False, f"nothing to restore: {reason}")

    def backup_folder(self) -> Precondition:
        """Check that the backup folder is known and writable."""
        name = "backup folder"
        if self.folder is None:
            return Precondition(
                name,
                False,
                "no backup folder: run with -p backup_dir DIR (PostgreSQL backups "
                "need one; SQLite ones default to backups/ beside the file)",
            )
        problem = folder_problem(self.folder)
        if problem:
            return Precondition(name, False, problem)
        return Precondition(name, True, str(self.folder))

    def traffic_stopped(self) -> Precondition:
        """Check that the traffic was measured as stopped (a dry-run passes).

        In a dry-run the detail states that a confirmed run measures it.
        """
        name = "traffic stopped"
        if self.mode_of("stop-traffic") == "dry-run":
            return Precondition(
                name,
                True,
                "dry-run: stop-traffic comes first, and a confirmed run measures "
                "the user requests and refuses the restore unless traffic stopped",
            )
        reading = self.reading
        if reading is None:
            return Precondition(name, False, "the traffic was not measured")
        if reading.stopped:
            return Precondition(name, True, reading.summary())
        return Precondition(name, False, f"traffic still flows: {reading.summary()}")

    def after(self, earlier: str, what: str, effect: str = "") -> Precondition:
        """Check that action ``earlier`` ended executed or already-done and verified.

        ``what`` names what it provides, such as ``verified``. When ``earlier`` was
        refused, or ``effect`` is given, the detail names only the first action that
        did not end done, because the refusals of the later ones repeat its detail.
        ``effect`` leads that detail, such as ``traffic stays stopped``.
        """
        name = f"{earlier} {what}"
        result = self.results.get(earlier)
        if result is None:
            return Precondition(name, False, f"{earlier} did not run")
        if result.mode == "dry-run":
            detail = f"dry-run: {earlier} comes first; a confirmed run requires it done"
            return Precondition(name, True, detail)
        if result.mode in DONE and _verified(result):
            return Precondition(name, True, f"{earlier} {result.mode}")
        if effect:
            return Precondition(name, False, f"{effect}: {self.first_cause()}")
        if result.mode == "refused":
            return Precondition(name, False, self.first_cause())
        return Precondition(
            name, False, f"{earlier} ended {result.mode}: {result.detail}"
        )

    def first_cause(self) -> str:
        """Return the first action that ended neither done nor dry-run, in words."""
        for name, result in self.results.items():
            if result.mode == "dry-run" or (result.mode in DONE and _verified(result)):
                continue
            if name == "validate" and result.mode == "failed":
                return "validation failed"
            if result.mode in DONE:
                return f"{name} was not verified"
            if result.mode == "refused":
                return f"{name} was refused"
            return f"{name} ended {result.mode}"
        return "no earlier action failed"

    def traffic_left(self) -> str:
        """Return the traffic mode the actions of this run left, in words."""
        if self.mode_of("stop-traffic") not in DONE:
            return "traffic is not stopped"
        resumed = [
            name
            for name, result in self.results.items()
            if name.startswith("resume-") and result.mode in DONE
        ]
        if resumed:
            return f"traffic stays {resumed[-1].removeprefix('resume-')}"
        return "traffic stays stopped"


def _verified(result: ActionResult) -> bool:
    return result.verification is None or result.verification.ok
