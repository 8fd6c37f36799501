"""The post-mortem draft: a blameless Markdown review built from an incident's journal.

``draft`` fills in every fact the journal contains (summary, impact, key events,
detection, response targets, what went well or could go better, action items and the
follow-ups with due dates) and leaves the root cause and contributing factors to the
people who review it, seeded with the procedures' diagnoses and failing checks.
``write_postmortem`` writes the draft into ``<incident>/reports/postmortem.md`` and
journals ``report.written`` with the file's SHA-256.

The follow-ups are the runbook's post-incident steps: four due within 24 hours of the
resolution and five within one week.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from veerunbook import postmortem_sections as sections
from veerunbook.compliance import (
    AUTOMATIC,
    LATE,
    MET,
    MISSED,
    PENDING,
    Compliance,
    assess,
    elapsed_between,
    elapsed_text,
    parse_time,
    time_text,
)
from veerunbook.errors import UsageError
from veerunbook.incident import incident_dir
from veerunbook.journal import JOURNAL_FILE, readable_events, sha256_file, utc_timestamp
from veerunbook.redact import Redactor
from veerunbook.reports import (
    REPORT_EVENT,
    default_report_path,
    inside_incident,
    write_report,
)
from veerunbook.text import counted
from veerunbook.timeline import Timeline, build_timeline

UNSUCCESSFUL_ACTIONS = ("failed", "refused", "unfinished")
POSTMORTEM_FILE = "postmortem.md"

FOLLOW_UPS_24H = (
    "Write down the root cause and complete the timeline above.",
    "Put the immediate fixes in place and confirm they hold.",
    "Adjust monitoring and alert rules so that this failure is caught sooner.",
    "Tell the stakeholders that the incident is resolved and what changed.",
)
FOLLOW_UPS_WEEK = (
    "Hold the blameless review of this document with everyone involved.",
    "Agree on measures that prevent a recurrence.",
    "Revise the runbook and the procedure notebooks with what was learned.",
    "Carry out the long-term fixes.",
    "Rehearse the response, for example with `veerunbook drill`.",
)


def draft(timeline: Timeline, compliance: Compliance) -> str:
    """Build the post-mortem draft of ``timeline``'s incident as Markdown."""
    incident = timeline.incident
    lines = [f"# Post-mortem: {incident.title or incident.id}", ""]
    lines += [
        "_Draft built from the incident journal. This review is blameless: it looks "
        "at systems, signals and decisions, never at who is at fault._",
        "",
    ]
    for section in (
        summary(timeline, compliance),
        sections.impact(timeline),
        sections.key_events(timeline),
        sections.detection(timeline),
        response_targets(compliance),
        root_cause(timeline),
        went_well(timeline, compliance),
        could_go_better(timeline, compliance),
        sections.action_items(timeline),
        follow_ups(compliance),
    ):
        lines += [*section, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def summary(timeline: Timeline, compliance: Compliance) -> sections.Lines:
    """Describe the incident: id, title, class, opening, resolution and duration."""
    incident = timeline.incident
    resolved = compliance.resolved_at
    if resolved:
        duration = elapsed_between(incident.opened_at, resolved)
    else:
        duration = "still open at " + time_text(compliance.assessed_at)
    lines = [
        "## Summary",
        "",
        f"- Incident: {incident.id}",
        f"- Title: {incident.title or 'untitled'}",
        f"- Class: {compliance.severity or 'not classified'}",
        f"- Opened: {time_text(incident.opened_at)}",
        f"- Resolved: {time_text(resolved) if resolved else 'not yet'}",
        f"- Duration: {duration}",
    ]
    lines += [f"- {note}" for note in compliance.class_notes()]
    lines += [f"- Reason: {reason}" for reason in class_reasons(timeline)]
    return lines


def class_reasons(timeline: Timeline) -> list[str]:
    """Return the rules and evidence of the latest classification triage journaled."""
    reasons: list[str] = []
    for event in timeline.events:
        classification = event.fields.get("classification")
        if event.kind == "note" and isinstance(classification, dict):
            found = classification.get("reasons")
            reasons = [
                f"{reason.get('rule')} ({reason.get('evidence')})"
                for reason in (found if isinstance(found, list) else [])
                if isinstance(reason, dict)
            ]
    return reasons


def response_targets(compliance: Compliance) -> sections.Lines:
    """Tabulate the acknowledgement and each escalation step against its target."""
    ack = compliance.acknowledgement
    lines = ["## Response targets", ""]
    if ack.target_minutes is None:
        assessed = compliance.assessed_class or "none"
        lines.append(f"No response target applies to class {assessed}.")
        return lines
    delay = elapsed_text(ack.delay_s) if ack.delay_s is not None else "none recorded"
    who = f" by {ack.acknowledged_by}" if ack.acknowledged_by else " by a person"
    verdict = ack.status
    if ack.acknowledged_at is None and ack.status in (MISSED, PENDING):
        verdict = f"{ack.status}: not acknowledged by a person"
    lines.append(
        f"Acknowledgement{who}: {delay} after opening; the {compliance.assessed_class} "
        f"target is {ack.target_minutes} min: **{verdict}**."
    )
    if ack.automatic_at is not None:
        after = elapsed_between(compliance.opened_at, ack.automatic_at)
        lines.append(
            f"The first acknowledgement was {AUTOMATIC}, {after} after opening."
        )
    lines += [
        "",
        "| step | due | reached | status |",
        "|---|---|---|---|",
    ]
    for step in compliance.escalation:
        name = step.who + (f" ({step.role})" if step.role else "")
        reached = "not reached"
        if step.reached_at:
            after = elapsed_between(compliance.opened_at, step.reached_at)
            reached = f"{after}: {step.reached_by}"
        due = f"{step.start_minute} min ({time_text(step.due_at)})"
        lines.append(
            f"| {sections.cell(name)} | {due} | {sections.cell(reached)} "
            f"| {step.status} |"
        )
    return lines


def root_cause(timeline: Timeline) -> sections.Lines:
    """Leave the cause to the reviewers, with the journaled evidence to start from."""
    lines = [
        "## Root cause and contributing factors",
        "",
        "_To be written by the reviewers: what caused the incident, which conditions "
        "let it happen then, and why the safeguards did not stop it._",
        "",
    ]
    return lines + sections.cause_evidence(timeline)


def went_well(timeline: Timeline, compliance: Compliance) -> sections.Lines:
    """List the facts the journal shows went well."""
    ack = compliance.acknowledgement
    facts = []

    # Response targets met.
    if ack.status == MET and ack.delay_s is not None:
        facts.append(
            f"Acknowledged {elapsed_text(ack.delay_s)} after opening, within the "
            f"{ack.target_minutes} min target."
        )
    facts += [
        f"Escalation step '{step.who}' reached in time ({step.reached_by})."
        for step in compliance.escalation
        if step.status == MET
    ]

    # Actions, runs and diagnoses that succeeded.
    verified = [
        event.fields.get("name")
        for event in timeline.events
        if event.kind == "action"
        and event.status == "executed"
        and event.fields.get("verified") is True
    ]
    if verified:
        facts.append(f"Actions executed and verified: {', '.join(map(str, verified))}.")
    done = [run for run in timeline.runs if run.status in ("ok", "findings")]
    if done and len(done) == len(timeline.runs):
        facts.append(f"Every procedure run completed ({len(done)} runs).")
    diagnosed = sum(1 for e in timeline.events if "diagnosis" in e.fields)
    if diagnosed:
        found = counted(diagnosed, "diagnosis", "diagnoses")
        facts.append(f"The procedures recorded {found} to start from.")
    lines = ["## What went well", ""]
    return lines + ([f"- {fact}" for fact in facts] or ["- _Add what helped._"])


def could_go_better(timeline: Timeline, compliance: Compliance) -> sections.Lines:
    """List missed targets and failed runs, actions and checks, without blame."""
    ack = compliance.acknowledgement
    facts = []

    # Response targets missed or still open.
    if ack.status in (MISSED, PENDING):
        when = elapsed_text(ack.delay_s) if ack.delay_s is not None else "not recorded"
        facts.append(
            f"The acknowledgement by a person ({when}) is {ack.status} against the "
            f"{ack.target_minutes} min target."
        )
    facts += [
        f"Escalation step '{step.who}' is {step.status} (due at {step.start_minute} "
        "min)."
        for step in compliance.escalation
        if step.status in (MISSED, LATE)
    ]

    # Runs, actions and checks that did not succeed.
    facts += [
        f"Run of {run.procedure} ended {run.status}."
        for run in timeline.runs
        if run.status not in ("ok", "findings")
    ]
    facts += [
        f"Action {event.fields.get('name')} ended {event.status}."
        for event in timeline.events
        if event.kind == "action"
        and event.status in ("failed", "refused", "unfinished")
    ]
    unread = {
        str(event.fields.get("name"))
        for event in timeline.events
        if event.kind == "check" and event.status == "error"
    }
    if unread:
        facts.append(f"Checks that could not be read: {', '.join(sorted(unread))}.")
    if compliance.severity is None:
        facts.append("No class was recorded.")
    lines = ["## What could go better", ""]
    return lines + ([f"- {fact}" for fact in facts] or ["- _Add what slowed us._"])


def follow_ups(compliance: Compliance) -> sections.Lines:
    """List the post-incident follow-ups with due dates counted from the resolution."""
    lines = ["## Follow-ups", ""]
    resolved = compliance.resolved_at
    if resolved is None:
        lines += [
            "_Due dates count from the resolution, which is not recorded yet._",
            "",
        ]
    for label, delta, steps in (
        ("Within 24 hours", timedelta(hours=24), FOLLOW_UPS_24H),
        ("Within one week", timedelta(days=7), FOLLOW_UPS_WEEK),
    ):
        due = ""
        if resolved is not None:
            due = f", due {time_text(utc_timestamp(parse_time(resolved) + delta))}"
        lines += [f"### {label}{due}", ""]
        lines += [f"- [ ] {step}" for step in steps] + [""]
    return lines[:-1]


def write_postmortem(
    archive: Path,
    incident_id: str,
    *,
    output: Path | None = None,
    redactor: Redactor | None = None,
    force: bool = False,
) -> Path:
    """Write the draft of an incident and return the absolute path written.

    The default path is ``<incident>/reports/postmortem.md``, replaced atomically. A
    file inside the incident folder is journaled as ``report.written`` with its
    SHA-256, so ``veerunbook verify`` notices a later edit. Raises UsageError for an
    unknown incident, an unwritable output, or, unless ``force``, a file inside the
    incident whose SHA-256 differs from its last ``report.written`` record (a
    reviewer's edit that writing would lose).
    """
    folder = incident_dir(archive, incident_id)
    timeline = build_timeline(folder)
    text = (redactor or Redactor()).mask(draft(timeline, assess(timeline)))
    path = output or default_report_path(folder, POSTMORTEM_FILE)
    if not force:
        _reject_edited(folder, path)
    data = text.encode("utf-8")
    return write_report(
        folder, path, data, report="postmortem", fmt="md", redactor=redactor
    )


def _reject_edited(folder: Path, path: Path) -> None:
    """Raise UsageError when ``path`` is inside the incident and differs from its
    last ``report.written`` record, or exists without one."""
    relative = inside_incident(folder, path)
    if relative is None or not Path(path).exists():
        return
    recorded = None
    journal = folder / JOURNAL_FILE
    for record in readable_events(journal) if journal.exists() else []:
        files = record.get("files")
        if record.get("event") == REPORT_EVENT and isinstance(files, dict):
            recorded = files.get(relative, recorded)
    if recorded != sha256_file(path):
        raise UsageError(
            f"{Path(path).absolute()} was edited since it was last written: keep a "
            "copy of the edits, then run again with --force to replace it."
        )
