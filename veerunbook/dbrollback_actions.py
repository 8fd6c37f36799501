"""The guarded actions of the database-rollback procedure, in the runbook's order.

Each builder returns an ``Action`` for ``veerunbook.actions.perform``: stop the
traffic, take the emergency backup, restore the chosen backup, validate the restored
data, and resume the traffic in three stages. Every action needs evidence of
corruption (or ``force``), and each later one needs the earlier ones done, as
``RollbackFacts`` checks. The configured command of a role is used when there is
one, else the direct way: the admin endpoint for the traffic, the SQLite backup API
or pg_dump and pg_restore for the data.
"""

from __future__ import annotations

from typing import Any

from veerunbook.actions import Action, Outcome, Verification
from veerunbook.dbrollback_backups import make_backup
from veerunbook.dbrollback_checks import validate
from veerunbook.dbrollback_db import verify_emergency_backup
from veerunbook.dbrollback_plan import RollbackFacts
from veerunbook.dbrollback_traffic import (
    STAGES,
    STOPPED,
    TRAFFIC_PATH,
    check_stage,
    read_mode,
    set_mode,
)
from veerunbook.session import Session
from veerunbook.shell import configured_command, run_command

_STAGE_CHECKS = {
    "health-only": "the health and readiness endpoints return 2xx",
    "read-only": "the GET user flows return 2xx after the login",
    "full": "a POST user flow returns 2xx",
}


def stop_traffic(session: Session, facts: RollbackFacts) -> Action:
    """Switch the traffic mode to ``stopped`` before anything touches the data."""
    timeout = facts.params.command_timeout_seconds
    return Action(
        timeout_s=timeout,
        name="stop-traffic",
        intent=(
            f"Stop all application traffic (mode stopped) with "
            f"{_traffic_method(session)}, so that nothing writes during the restore."
        ),
        params={"mode": STOPPED},
        read_state=lambda: read_mode(session),
        execute=lambda: set_mode(session, STOPPED, timeout),
        verify=lambda before, after, outcome: _mode_verified(STOPPED, after),
        preconditions=(
            facts.corruption_evidence,
            facts.backup_to_restore,
            facts.backup_folder,
        ),
        already_done=lambda before: before.get("mode") == STOPPED,
    )


def emergency_backup(session: Session, facts: RollbackFacts, name: str) -> Action:
    """Back up the current, damaged state before the restore overwrites it."""
    folder = facts.folder
    where = folder or "(no backup folder)"
    timeout = facts.params.command_timeout_seconds
    corrupted = facts.evidence is not None and facts.evidence.corrupted

    def execute() -> Outcome:
        assert folder is not None  # the backup folder precondition passed
        manifest, detail = make_backup(
            session,
            facts.database,
            folder,
            name,
            timeout_s=timeout,
            data_valid=False if corrupted else None,
        )
        facts.emergency = manifest
        return Outcome(True, detail, {"manifest": manifest.to_json()})

    def verify(before: Any, after: Any, outcome: Outcome) -> Verification:
        manifest = facts.emergency
        if folder is None or manifest is None:
            return Verification(False, "no backup was written")
        verified, detail = verify_emergency_backup(
            facts.database,
            folder,
            manifest,
            timeout_s=timeout,
            redactor=session.redactor,
        )
        return Verification(verified, detail)

    return Action(
        timeout_s=timeout,
        name="emergency-backup",
        intent=(
            f"Back up the current database as {name} into {where} with "
            f"{_backup_method(session, facts)}, then verify its size, SHA-256, "
            "manifest and restorability, and that its tables match the live "
            "database."
        ),
        params={"backup": name, "folder": str(where)},
        read_state=lambda: {"backups": _listing(facts)},
        execute=execute,
        verify=verify,
        # The runbook backs up only once traffic has stopped, and a backup taken
        # when nothing can be restored would only leave a file behind.
        preconditions=(
            facts.corruption_evidence,
            facts.backup_to_restore,
            facts.backup_folder,
            facts.traffic_stopped,
        ),
    )


def restore(session: Session, facts: RollbackFacts) -> Action:
    """Restore the chosen backup once traffic stopped and the backup verified."""
    chosen = facts.chosen
    name = chosen.name if chosen else "-"
    created = chosen.created_at if chosen else "-"
    return Action(
        name="restore",
        timeout_s=facts.params.command_timeout_seconds,
        intent=(
            f"Restore backup {name} (made {created}) over the live database with "
            f"{_restore_method(session, facts)}; the emergency backup keeps the "
            "current state."
        ),
        params={"backup": name, "folder": str(facts.folder or "-")},
        read_state=lambda: {"tables": _tables(facts)},
        execute=lambda: _restore(session, facts),
        verify=lambda before, after, outcome: _restored(facts, after, outcome),
        preconditions=(
            facts.corruption_evidence,
            facts.backup_to_restore,
            facts.traffic_stopped,
            lambda: facts.after("emergency-backup", "verified"),
        ),
        already_done=lambda before: (
            chosen is not None and before.get("tables") == chosen.tables
        ),
    )


def validate_data(session: Session, facts: RollbackFacts) -> Action:
    """Validate the restored data; a failed validation ends the run's changes."""
    timeout = facts.params.command_timeout_seconds

    def execute() -> Outcome:
        chosen = facts.chosen
        assert chosen is not None  # the restore needed a chosen backup
        outcome = validate(session, facts.database, chosen, timeout)
        facts.validation_failures = list(outcome.data.get("failed", []))
        return outcome

    return Action(
        timeout_s=timeout,
        name="validate",
        intent=(
            "Validate the restored data: every table's rows and digest against the "
            "backup's manifest, the database's own integrity check, the db_validate "
            "command and the health endpoint's integrity check."
        ),
        params={"backup": facts.chosen.name if facts.chosen else "-"},
        read_state=lambda: {"backup": facts.chosen.name if facts.chosen else None},
        execute=execute,
        verify=lambda before, after, outcome: Verification(
            outcome.ok, "all checks pass" if outcome.ok else "a check failed"
        ),
        preconditions=(
            facts.corruption_evidence,
            lambda: facts.after("restore", "done"),
        ),
    )


def resume(session: Session, facts: RollbackFacts, stage: str) -> Action:
    """Open one more stage of traffic, and check that it works."""
    timeout = facts.params.command_timeout_seconds
    index = STAGES.index(stage)
    earlier = "validate" if index == 0 else f"resume-{STAGES[index - 1]}"

    def verify(before: Any, after: Any, outcome: Outcome) -> Verification:
        mode = _mode_verified(stage, after)
        if not mode.ok:
            return mode
        return check_stage(session, stage)

    return Action(
        timeout_s=timeout,
        name=f"resume-{stage}",
        intent=(
            f"Switch the traffic mode to {stage} with {_traffic_method(session)} "
            f"and check that {_STAGE_CHECKS[stage]}."
        ),
        params={"mode": stage},
        read_state=lambda: read_mode(session),
        execute=lambda: set_mode(session, stage, timeout),
        verify=verify,
        preconditions=(
            facts.corruption_evidence,
            lambda: facts.after(earlier, "passed", facts.traffic_left()),
        ),
        # In a dry-run the traffic was never stopped, so a target in full mode
        # has not resumed anything yet.
        already_done=lambda before: (
            facts.mode_of("stop-traffic") != "dry-run" and before.get("mode") == stage
        ),
    )


def _restore(session: Session, facts: RollbackFacts) -> Outcome:
    chosen = facts.chosen
    assert chosen is not None and facts.folder is not None  # checked beforehand
    template = configured_command(session, "db_restore")
    timeout = facts.params.command_timeout_seconds
    if template:
        result = run_command(
            template,
            values={"backup": chosen.name},
            timeout_s=timeout,
            redactor=session.redactor,
        )
        last = result.stderr.strip().splitlines()[-1:] or [""]
        detail = f"db_restore command {result.summary()}"
        if not result.ok and last[0]:
            detail += f": {last[0]}"
        return Outcome(result.ok, detail, {"command": result.to_dict()})
    if facts.database is None:
        return Outcome(False, "no db_restore command and no usable database URL")
    detail = facts.database.restore(
        facts.folder, chosen, timeout_s=timeout, redactor=session.redactor
    )
    return Outcome(True, detail)


def _restored(facts: RollbackFacts, after: Any, outcome: Outcome) -> Verification:
    chosen = facts.chosen
    tables = after.get("tables")
    if chosen is None:
        return Verification(False, "no backup was chosen")
    if tables is None:
        detail = "no usable database URL, so the tables were not compared"
        return Verification(outcome.ok, detail)
    if tables == chosen.tables:
        return Verification(True, f"{len(tables)} tables equal backup {chosen.name}")
    return Verification(False, f"the tables differ from backup {chosen.name}")


def _mode_verified(mode: str, after: Any) -> Verification:
    reported = after.get("mode")
    if reported is None:
        return Verification(
            True, "the target does not report its traffic mode; the checks decide"
        )
    if reported == mode:
        return Verification(True, f"the target reports traffic mode {mode}")
    return Verification(False, f"the target reports traffic mode {reported}")


def _tables(facts: RollbackFacts) -> Any:
    if facts.database is None:
        return None
    return facts.database.digests(facts.params.command_timeout_seconds)


def _listing(facts: RollbackFacts) -> list[str]:
    if facts.folder is None or not facts.folder.is_dir():
        return []
    return sorted(path.stem for path in facts.folder.glob("*.json"))


def _traffic_method(session: Session) -> str:
    if configured_command(session, "traffic"):
        return "the traffic command"
    return f"POST {session.target.endpoints.get('traffic', TRAFFIC_PATH)}"


def _backup_method(session: Session, facts: RollbackFacts) -> str:
    if configured_command(session, "db_backup"):
        return "the db_backup command"
    if facts.database is not None and facts.database.engine == "postgresql":
        return "pg_dump -Fc"
    return "the SQLite online backup API"


def _restore_method(session: Session, facts: RollbackFacts) -> str:
    if configured_command(session, "db_restore"):
        return "the db_restore command"
    if facts.database is not None and facts.database.engine == "postgresql":
        return "pg_restore --clean --if-exists --single-transaction"
    return "the SQLite backup API"
