"""The words of the database-rollback procedure: its diagnosis, options and tables.

``diagnosis_line`` returns in one line what was found and what was done, or would
be done in a dry-run, in the order of the runbook's steps. A confirmed run that stopped
early names the action it stopped at and the traffic mode the target reports now,
because a database left with traffic stopped needs the operator's attention. A run
whose validation failed leads with that end state and the way to resume the traffic,
and a run that restored gives the emergency backup's file and how to restore it.
``recovery_options`` returns the procedure's one recovery option, the restore of a
backup, ranked 1 only when a source found corruption.
"""

from __future__ import annotations

from typing import Any

from veerunbook.backup_manifest import Manifest
from veerunbook.dbrollback_plan import DONE, RollbackFacts
from veerunbook.dbrollback_traffic import STAGES, read_mode, resume_command
from veerunbook.metrics_series import unreachable_line
from veerunbook.session import Session

_RESUMED = f"resume-{STAGES[-1]}"


def diagnosis_line(session: Session, facts: RollbackFacts, confirmed: bool) -> str:
    """Return what was found and what was done (or would be done) in one line."""
    evidence = facts.evidence
    if evidence is None:
        return "the integrity checks did not run, so nothing was changed"
    if evidence.unreachable and not evidence.corrupted:
        url = session.redactor.mask(session.target.base_url or "-")
        return unreachable_line(evidence.unreachable, url)

    head = (
        f"data corruption: {evidence.line()}" if evidence.corrupted else evidence.line()
    )
    results = list(facts.results.values())
    refused = [result for result in results if result.mode == "refused"]
    if results and len(refused) == len(results):
        if not evidence.corrupted and not facts.params.force:
            return (
                f"{head}; nothing was changed, because the runbook restores a backup "
                "only when data corruption is detected (-p force True acts anyway)"
            )
        return f"{head}; nothing was changed: {refused[0].detail}"

    if not evidence.corrupted and facts.params.force:
        head = f"{head}; force is set"
    if not confirmed:
        return f"{head}; {_planned(facts, refused)}"

    if facts.mode_of(_RESUMED) in DONE:
        return (
            f"{head}; {_restored(facts)}; validation passed; traffic back to full"
            f"{_undo(session, facts)}"
        )
    if facts.mode_of("validate") == "failed":
        return _validation_failed(session, facts, head)
    return f"{head}; {_stopped_at(session, facts)}"


def recovery_options(facts: RollbackFacts) -> list[dict[str, Any]]:
    """Return the restore of a backup as a recovery option, with its evidence.

    The option gets rank 1 when a source found corruption and no rank otherwise,
    because the runbook restores a backup only when corruption is detected.
    """
    chosen = facts.chosen
    if chosen is not None:
        action = f"restore backup {chosen.name} (made {chosen.created_at})"
    else:
        reason = facts.choice.reason if facts.choice else "the backups were not listed"
        action = f"restore a backup from before the corruption (none chosen: {reason})"
    evidence = facts.evidence
    if evidence is not None and evidence.corrupted:
        return [
            {"key": "restore", "action": action, "evidence": evidence.line(), "rank": 1}
        ]
    line = evidence.line() if evidence else "the integrity checks did not run"
    return [{"key": "restore", "action": action, "evidence": line, "rank": None}]


def manifest_rows(manifest: Manifest) -> list[dict[str, Any]]:
    """Return one row per table of a manifest: rows and digest."""
    return [
        {"table": table, "rows": digest.get("rows"), "SHA-256": digest.get("sha256")}
        for table, digest in sorted(manifest.tables.items())
    ]


def _planned(facts: RollbackFacts, refused: list[Any]) -> str:
    if refused:
        first = refused[0]
        return f"dry-run, and {first.name} would be refused: {first.detail}"
    if facts.mode_of("restore") == "already-done":
        restore = f"skip the restore (the tables already match {_chosen(facts)})"
    else:
        restore = f"restore {_chosen(facts)}"
    planned = (
        f"dry-run: would stop traffic, take emergency backup "
        f"{facts.emergency_name or '-'}, {restore}, validate and resume traffic "
        f"in {len(STAGES)} stages"
    )
    return f"{planned}; {facts.impact}" if facts.impact else planned


def _restored(facts: RollbackFacts) -> str:
    emergency = _emergency(facts)
    if facts.mode_of("restore") == "already-done":
        return (
            f"the tables already matched {_chosen(facts)}, so nothing was restored "
            f"(emergency backup {emergency} was taken first)"
        )
    return f"restored {_chosen(facts)} after emergency backup {emergency}"


def _validation_failed(session: Session, facts: RollbackFacts, head: str) -> str:
    """Describe a run whose validation failed: the end state first, then the cause."""
    failures = "; ".join(facts.validation_failures) or "a check failed"
    return (
        f"validation failed after restoring {_chosen(facts)}: {failures}; "
        f"{facts.traffic_left()} (traffic mode now {_mode_now(session)}); "
        f"to resume traffic: {resume_command(session)}; "
        f"emergency backup {_emergency(facts)}; before the restore: {head}"
    )


def _undo(session: Session, facts: RollbackFacts) -> str:
    """Return how to restore the emergency backup, after an executed restore."""
    if facts.mode_of("restore") != "executed" or facts.emergency is None:
        return ""
    incident = session.run.incident_id
    fresh = ""
    if session.target.embedded:
        # Every demo:SCENARIO run starts a new copy, without this run's backups.
        fresh = (
            " (on a target kept with veerunbook simulate --data-dir; a demo target"
            " is gone after its run)"
        )
    return (
        "; to undo, restore the emergency backup: veerunbook run database-rollback "
        f"--target {session.target.name} --incident {incident} -p confirm {incident} "
        f"-p backup {facts.emergency.name} -p force True{fresh}"
    )


def _mode_now(session: Session) -> str:
    try:
        return str(read_mode(session).get("mode") or "not reported")
    except ConnectionError:
        return "unknown (no response)"


def _stopped_at(session: Session, facts: RollbackFacts) -> str:
    failed = next(
        (
            facts.results[name]
            for name in facts.results
            if facts.results[name].mode not in DONE
        ),
        None,
    )
    where = (
        f"stopped at {failed.name} ({failed.mode}): {failed.detail}"
        if failed is not None
        else "stopped before the last stage"
    )
    return f"{where}; traffic mode now {_mode_now(session)}"


def _chosen(facts: RollbackFacts) -> str:
    chosen = facts.chosen
    return f"{chosen.name} (made {chosen.created_at})" if chosen else "-"


def _emergency(facts: RollbackFacts) -> str:
    """Return the emergency backup's name and file, the file for a manual restore."""
    emergency = facts.emergency
    if emergency is None:
        return "-"
    if facts.folder is None:
        return emergency.name
    return f"{emergency.name} ({facts.folder / emergency.file})"
