"""The steps of the post-incident notebook: review one incident from its archive.

``PostIncident`` first verifies the incident's journal as ``veerunbook verify`` does,
then reads ``incident.json`` and ``journal.jsonl`` and shows the header, the timeline,
the metrics figure, the response-time compliance and the post-mortem draft. It writes
into the archive only in ``write_reports`` and, when ``veerunbook run`` started the
kernel, two checks in the run record: ``journal integrity`` (failing when the journal
or a file it records was changed) and ``post-incident review``.

Under ``veerunbook run`` the incident reviewed is the one named with ``--incident``
(``-p incident`` is rejected, because the runner sets it). The runner journals its
own run into that incident before the kernel starts, so the review leaves that run,
still unfinished, out of every table. Without ``--incident`` the runner opens a new,
empty incident: the review then finds nothing to review, lists the incidents of the
archive and records a failing check, so the run ends with findings.

An empty ``incident`` (the notebook's default, as when pytest runs it through nbval)
or an unknown one is not an exception: every step then shows one line saying why
there is nothing to show.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veerunbook.compliance import Compliance, assess, time_text
from veerunbook.errors import VeerunbookError
from veerunbook.incident import archive_root, incident_dir, load_incident
from veerunbook.record import INCIDENT_ENV, RUN_ID_ENV, RunContext, start_run
from veerunbook.redact import Redactor
from veerunbook.reports import default_report_path, write_report
from veerunbook.timeline import Timeline, build_timeline
from veerunbook.timeline_render import header_rows
from veerunbook.triage_tables import Nothing, frame
from veerunbook.verify import VerifyResult, verify

if TYPE_CHECKING:
    import pandas as pd
    from IPython.display import Image, Markdown

PROCEDURE = "post-incident"
REVIEW_CHECK = "post-incident review"
INTEGRITY_CHECK = "journal integrity"

_log = logging.getLogger("veerunbook.post_incident")


class PostIncident:
    """One incident under review. ``problem`` is the reason when there is nothing to
    review, else None."""

    def __init__(self, incident: str, archive: str = "") -> None:
        self.incident = incident.strip()
        self.root = archive_root(archive or None)
        self.own_run = _own_run(self.incident)
        self.run: RunContext | None = None
        if self.own_run is not None:
            self.run = start_run(PROCEDURE, incident=self.incident, archive=archive)
        self.timeline: Timeline | None = None
        self.verified = self._verify()
        self.problem = self._load()

    def _verify(self) -> VerifyResult | None:
        """Verify the incident's folder and journal the outcome as a check."""
        try:
            folder = incident_dir(self.root, self.incident) if self.incident else None
        except VeerunbookError:
            return None  # an invalid id: _load reports it
        if folder is None or not folder.is_dir():
            return None
        result = verify(folder)
        summary = _integrity_summary(result)
        if self.run is not None:
            status = "pass" if result.ok else "fail"
            self.run.check(
                INTEGRITY_CHECK,
                status,
                observed=result.events,
                unit="lines",
                summary=summary,
            )
        if not result.ok:
            _log.warning("journal of %s is broken: %s", self.incident, result.problem)
        return result

    def _load(self) -> str | None:
        if not self.incident:
            return (
                "No incident chosen: set the parameter incident to one of the ids "
                f"below (archive {self.root})."
            )
        try:
            timeline = build_timeline(incident_dir(self.root, self.incident))
        except VeerunbookError as exc:
            return str(exc)
        self.timeline = _without_run(timeline, self.own_run)
        if all(event.kind == "incident" for event in self.timeline.events):
            return (
                f"Incident {self.incident} has nothing to review: its journal holds "
                "no event besides its opening. Name an existing incident with "
                "--incident."
            )
        return None

    @property
    def ready(self) -> bool:
        """Tell whether an incident with events was loaded."""
        return self.problem is None

    def overview(self) -> pd.DataFrame | Nothing:
        """Return the incident header, or print the problem and list the incidents."""
        if self.timeline is not None and self.problem is None:
            return frame(
                [{"field": label, "value": value} for label, value in self.header()]
            )
        print(self.problem)
        return self.incidents()

    def integrity(self) -> pd.DataFrame | Nothing:
        """Return the outcome of verifying the journal, as ``veerunbook verify``."""
        result = self.verified
        if result is None:
            return Nothing("no journal verified: " + str(self.problem))
        if not result.ok:
            print(
                "The journal or a file it records was changed after it was written, "
                "so the steps below may show altered data."
            )
        row = {
            "check": INTEGRITY_CHECK,
            "status": "pass" if result.ok else "fail",
            "intact lines": result.events,
            "problem": result.problem or "",
            "line": result.line or "",
            "file": result.path or "",
        }
        return frame([row])

    def header(self) -> list[tuple[str, str]]:
        """Return the header rows: id, title, class, opened, acknowledged, resolved."""
        return header_rows(self._timeline())

    def incidents(self) -> pd.DataFrame | Nothing:
        """List the incidents of the archive, newest first."""
        rows = []
        folders = sorted(self.root.iterdir()) if self.root.is_dir() else []
        for folder in reversed(folders):
            try:
                found = load_incident(folder)
            except VeerunbookError:
                continue  # not an incident folder, or one still being created
            rows.append(
                {
                    "incident": found.id,
                    "title": found.title or "untitled",
                    "class": found.severity or "-",
                    "opened": time_text(found.opened_at),
                    "resolved": time_text(found.resolved_at),
                }
            )
        return frame(rows, f"no incidents in {self.root}")

    def timeline_table(self) -> pd.DataFrame | Nothing:
        """Return one row per timeline event, in journal order."""
        if not self.ready:
            return Nothing("no timeline: " + str(self.problem))
        rows = [
            {
                "time (UTC)": event.time[:19].replace("T", " "),
                "kind": event.kind,
                "what": event.summary,
                "status": event.status or "",
                "procedure": event.procedure or "",
                "link": event.link or "",
            }
            for event in self._timeline().events
        ]
        return frame(rows, "no events")

    def figure(self) -> Image | Nothing:
        """Return the timeline figure: error rate, p95 and pool use over time."""
        if not self.ready:
            return Nothing("no figure: " + str(self.problem))
        from IPython.display import Image

        from veerunbook.timeline_plot import plot_png

        png = plot_png(self._timeline())
        return Image(data=png, format="png")  # type: ignore[no-untyped-call]

    def compliance(self) -> Compliance:
        """Assess acknowledgement and escalation against the runbook's targets."""
        return assess(self._timeline())

    def compliance_table(self) -> pd.DataFrame | Nothing:
        """Return the acknowledgement and each escalation step with its status."""
        if not self.ready:
            return Nothing("no compliance: " + str(self.problem))
        result = self.compliance()
        ack = result.acknowledgement
        target = f"{ack.target_minutes} min" if ack.target_minutes is not None else "-"
        rows: list[dict[str, Any]] = [
            {
                "step": f"acknowledgement ({target})",
                "due": time_text(ack.due_at) if ack.due_at else "-",
                "reached": time_text(ack.acknowledged_at),
                "by": ack.acknowledged_by or "-",
                "status": ack.status,
            }
        ]
        for step in result.escalation:
            window = (
                f"{step.start_minute}-{step.end_minute} min"
                if step.end_minute is not None
                else f"from {step.start_minute} min"
            )
            rows.append(
                {
                    "step": f"escalation {window}: {step.who}",
                    "due": time_text(step.due_at),
                    "reached": time_text(step.reached_at),
                    "by": step.reached_by or "-",
                    "status": step.status,
                }
            )
        return frame(rows)

    def postmortem(self) -> Markdown | Nothing:
        """Return the post-mortem draft as Markdown, masked by the redactor."""
        if not self.ready:
            return Nothing("no post-mortem draft: " + str(self.problem))
        from IPython.display import Markdown

        from veerunbook.postmortem import draft

        text = _redactor().mask(draft(self._timeline(), self.compliance()))
        return Markdown(text)  # type: ignore[no-untyped-call]

    def write_reports(self, write: bool) -> pd.DataFrame | Nothing:
        """Write the timeline page with run notebook copies and the post-mortem."""
        if not write:
            return Nothing("no reports written: write_reports is False")
        if not self.ready:
            return Nothing("no reports written: " + str(self.problem))
        return frame(self._write_all(_redactor()))

    def close(self) -> pd.DataFrame | Nothing:
        """Record the review's outcome in the run record and return the checks."""
        status = "pass" if self.ready else "fail"
        summary = "reviewed" if self.ready else str(self.problem)
        if self.run is not None:
            self.run.check(
                REVIEW_CHECK, status, observed=self.incident, summary=summary
            )
        _log.info("review of %r: %s", self.incident, summary)
        rows = [{"check": REVIEW_CHECK, "status": status, "summary": summary}]
        if self.verified is not None:
            integrity = "pass" if self.verified.ok else "fail"
            text = _integrity_summary(self.verified)
            rows.insert(
                0, {"check": INTEGRITY_CHECK, "status": integrity, "summary": text}
            )
        return frame(rows)

    def _write_all(self, redactor: Redactor) -> list[dict[str, str]]:
        """Write as ``timeline --format html --notebooks`` and ``postmortem`` do,
        without the review's own unfinished run."""
        from veerunbook.postmortem import POSTMORTEM_FILE, draft
        from veerunbook.report_html import render_run_notebooks
        from veerunbook.timeline_render import render_html

        folder = incident_dir(self.root, self.incident)
        rows = [
            {"report": "notebook", "file": page.html, "status": page.status}
            for page in render_run_notebooks(folder, redactor)
        ]
        # Built again so that the page lists and links the copies just written.
        timeline = _without_run(build_timeline(folder), self.own_run)
        page = default_report_path(folder, "timeline.html")
        text = render_html(timeline, folder, output=page).encode("utf-8")
        write_report(folder, page, text, report="timeline", fmt="html")
        rows.append({"report": "timeline", "file": _relative(folder, page)})
        notes = redactor.mask(draft(timeline, assess(timeline))).encode("utf-8")
        path = default_report_path(folder, POSTMORTEM_FILE)
        write_report(folder, path, notes, report="postmortem", fmt="md")
        rows.append({"report": "postmortem", "file": _relative(folder, path)})
        for row in rows[-2:]:
            row["status"] = "written"
        return rows

    def _timeline(self) -> Timeline:
        if self.timeline is None:
            raise VeerunbookError(f"no incident loaded: {self.problem}")
        return self.timeline


def _own_run(incident: str) -> str | None:
    """Return the runner's run id when the runner runs this review in ``incident``."""
    run = os.environ.get(RUN_ID_ENV)
    if run and os.environ.get(INCIDENT_ENV) == incident:
        return run
    return None


def _without_run(timeline: Timeline, run: str | None) -> Timeline:
    if run is None:
        return timeline
    return replace(
        timeline,
        events=[event for event in timeline.events if event.run != run],
        runs=[summary for summary in timeline.runs if summary.run != run],
        samples=[sample for sample in timeline.samples if sample.run != run],
    )


def _integrity_summary(result: VerifyResult) -> str:
    if result.ok:
        return f"journal intact: {result.events} lines"
    problem = str(result.problem)
    if result.path and result.path not in problem:
        return f"journal broken in {result.path}: {problem}"
    return f"journal broken: {problem}"


def _relative(folder: Path, path: Path) -> str:
    return path.relative_to(folder).as_posix()


def _redactor() -> Redactor:
    from veerunbook.config import load_config

    return load_config().redactor()
