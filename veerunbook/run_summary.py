"""The lines that ``veerunbook run`` and drills print about a finished run.

Every line is read from the incident's journal. Triage journals the class reasons
(note field ``classification``) and the next procedures (``recommended``). A diagnostic
procedure journals two notes near its end: ``diagnosis``, one line of text, and
``recovery_options``, dicts with ``action``, ``evidence`` and ``rank``. Only options
with evidence have a rank, counted from 1. The lines about guarded actions are in
``veerunbook.run_actions``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from veerunbook.journal import JOURNAL_FILE, readable_events
from veerunbook.severity import FIRST_RESPONSE

Event = dict[str, Any]

# The section of the written runbook that each procedure implements, for the steps
# a responder follows by hand while a procedure is not built yet.
RUNBOOK_SECTIONS: dict[str, str] = {
    "triage": "Initial Response",
    "database-connection": "Database Connection Issues",
    "high-error-rate": "High Error Rates",
    "performance-degradation": "Performance Degradation",
    "security-incident": "Security Incidents",
    "application-rollback": "Application Rollback",
    "database-rollback": "Database Rollback",
    "alert-check": "Alerting Configuration",
    "post-incident": "Post-Incident Procedures",
}

# Width of the labels ("diagnosis: ", "action:    ") that the values line up after.
LABEL_WIDTH = 11

COMPLETED = ("ok", "findings")


def run_events(folder: Path, run_id: str) -> list[Event]:
    """Return the journal events of one run, in journal order."""
    events = readable_events(folder / JOURNAL_FILE)
    return [event for event in events if event.get("run") == run_id]


def triage_completed(folder: Path) -> bool:
    """Return whether a triage run of the incident in ``folder`` completed."""
    return any(
        event.get("event") == "run.finished"
        and event.get("procedure") == "triage"
        and event.get("status") in COMPLETED
        for event in readable_events(folder / JOURNAL_FILE)
    )


def class_text(
    severity: str | None,
    *,
    procedure: str,
    status: str,
    triage_done: bool,
    incident: str,
) -> str:
    """Return the incident class as the summary shows it.

    Only triage classifies, so a class missing after another procedure means that
    triage has not run, unless a completed triage run found no incident.
    """
    if severity:
        return severity
    rerun = f"veerunbook run triage --incident {incident}"
    if procedure == "triage":
        if status in COMPLETED:
            return "no incident"
        return "not determined: the run did not complete"
    if triage_done:
        return f"no incident (triage found none; to classify again: {rerun})"
    return f"not set (triage sets it: {rerun})"


def reason_lines(events: list[Event], limit: int = 4) -> list[str]:
    """Return the classification's reasons and the first response, if classified."""
    notes = [e for e in events if e["event"] == "note" and e.get("classification")]
    if not notes:
        return []
    classification = notes[-1]["classification"]
    lines = [
        f"  why:     {reason['rule']} ({reason['evidence']})"
        for reason in classification.get("reasons", [])[:limit]
    ]
    severity = classification.get("severity")
    if severity in FIRST_RESPONSE:
        lines.append(
            f"respond:   within {classification.get('response_time')}: "
            f"{FIRST_RESPONSE[severity]}"
        )
    return lines


def finding_line(check: Event) -> str:
    """Return one line for a check: status, name and summary, each once.

    A probe's summary repeats the check's name and status ("database  WARN  HTTP
    200  12 ms"), so both are cut from the front of the summary.
    """
    status = str(check["status"]).upper()
    name = str(check.get("name", ""))
    summary = str(check.get("summary") or "").strip()
    if name and summary.startswith(name):
        summary = summary[len(name) :].strip()
    if summary.split(" ", 1)[0] == status:
        summary = summary[len(status) :].strip()
    return f"{status:<5} {name}: {summary}".rstrip()


def problem_lines(events: list[Event], limit: int = 12) -> list[str]:
    """Return the failed, errored and warning checks, worst first, at most ``limit``."""
    order = {"fail": 0, "error": 1, "warn": 2}
    checks = [e for e in events if e["event"] == "check" and e.get("status") in order]
    checks.sort(key=lambda event: order[event["status"]])
    lines = [f"  {finding_line(check)}" for check in checks[:limit]]
    if len(checks) > limit:
        lines.append(f"  ... {len(checks) - limit} more in the notebook")
    return lines


def diagnosis_lines(events: list[Event], indent: str = "") -> list[str]:
    """Return the run's diagnosis, its top-ranked recovery action and what was done.

    Returns no lines for a run that journaled neither a diagnosis nor recovery
    options, such as triage or a run that stopped early.
    """
    lines = []
    diagnosis = _last_field(events, "diagnosis")
    if isinstance(diagnosis, str) and diagnosis:
        lines.append(f"{indent}{'diagnosis:':<{LABEL_WIDTH}}{diagnosis}")
    options = _last_field(events, "recovery_options")
    if isinstance(options, list):
        lines += _action_lines(events, options, indent)
    return lines


def _action_lines(events: list[Event], options: list[Any], indent: str) -> list[str]:
    label = f"{indent}{'action:':<{LABEL_WIDTH}}"
    ranked = [option for option in options if _rank(option) is not None]
    if not ranked:
        return [f"{label}none ranked: no recovery option has evidence for it"]
    top = min(ranked, key=lambda option: _rank(option) or 0)
    evidence = top.get("evidence")
    if isinstance(evidence, list):
        evidence = "; ".join(str(item) for item in evidence)
    because = f" (because {evidence})" if evidence else ""
    lines = [f"{label}{_rank(top)}. {top.get('action')}{because}"]

    # The diagnostic procedures only recommend, but the journal is what shows it.
    # A run with guarded actions lists them in ``run_actions.action_lines`` instead.
    if any(e["event"] == "action" and e.get("mode") != "intent" for e in events):
        return lines
    continued = indent + " " * LABEL_WIDTH
    executed = [
        str(event.get("name"))
        for event in events
        if event["event"] == "action" and event.get("mode") == "executed"
    ]
    if executed:
        lines.append(f"{continued}carried out: {', '.join(executed)}")
    else:
        lines.append(f"{continued}none of the recovery options was carried out")
    return lines


def _rank(option: Any) -> int | None:
    """Return an option's rank, or None unless it is a whole number from 1."""
    if not isinstance(option, dict):
        return None
    rank = option.get("rank")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        return None
    return rank


def _last_field(events: list[Event], name: str) -> Any:
    notes = [e for e in events if e["event"] == "note" and name in e]
    return notes[-1][name] if notes else None


def recommended(events: list[Event]) -> list[Event]:
    """Return the rows of the run's last ``recommended`` note (none if absent)."""
    rows = _last_field(events, "recommended")
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, dict) and row.get("procedure")]


def by_hand(procedure: str) -> str:
    """Return the instruction for a procedure that is not built yet."""
    section = RUNBOOK_SECTIONS.get(procedure)
    if section is None:
        return f"follow the runbook's steps for {procedure} by hand"
    return f"follow the runbook's {section} steps by hand"


def procedure_step(procedure: str) -> str:
    """Return "run the NAME procedure", or the runbook section while it is not built."""
    from veerunbook.procedures import list_procedures

    if procedure in {found.name for found in list_procedures()}:
        return f"run the {procedure} procedure"
    return f"{by_hand(procedure)} (no {procedure} procedure yet)"


def next_lines(events: list[Event], incident: str) -> list[str]:
    """Return one ``next:`` line per recommended procedure, with how to run it."""
    started = [e for e in events if e["event"] == "run.started"]
    target = started[-1].get("target") if started else None
    option = f" --target {target}" if target else ""
    lines = []
    for row in recommended(events):
        name = str(row["procedure"])
        evidence = f" ({row['evidence']})" if row.get("evidence") else ""
        if row.get("status") == "available":
            instruction = f"veerunbook run {name} --incident {incident}{option}"
        else:
            instruction = f"not built yet; {by_hand(name)}"
        lines.append(f"{'next:':<{LABEL_WIDTH}}{name}{evidence}: {instruction}")
    return lines
