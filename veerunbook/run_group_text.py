"""Text of a group run: the final table and the report of a child that died."""

from __future__ import annotations

import signal
from multiprocessing.process import BaseProcess

from veerunbook.incident import incident_dir
from veerunbook.journal import JOURNAL_FILE, readable_events
from veerunbook.run_group_child import GroupSettings, RunReport
from veerunbook.run_group_plan import PlannedRun

__all__ = ["died_report", "table_lines"]

_HEADER = ("procedure", "status", "duration s", "checks", "notebook")


def table_lines(reports: list[RunReport]) -> list[str]:
    """Return a header and one aligned row per run."""
    from veerunbook.commands import counts_text

    rows = [_HEADER]
    for report in reports:
        rows.append(
            (
                report.procedure,
                report.status,
                f"{report.duration_s:.1f}" if report.notebook else "-",
                counts_text(report.counts) if report.counts else "-",
                report.notebook or "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = []
    for row in rows:
        cells = [
            row[0].ljust(widths[0]),
            row[1].ljust(widths[1]),
            row[2].rjust(widths[2]),
            row[3].ljust(widths[3]),
            row[4],
        ]
        lines.append("  ".join(cells))
    return lines


def died_report(
    planned: PlannedRun, process: BaseProcess, settings: GroupSettings
) -> RunReport:
    """Describe a child that ended without sending its report, as a failed run.

    The journal shows the run as started and never finished, so the run id comes
    from its ``run.started`` event, which carries the child's process id.
    """
    name = planned.procedure.name
    code = process.exitcode
    if code is not None and code < 0:
        ending = f"was killed by {signal.Signals(-code).name}"
    else:
        ending = f"exited with code {code}"
    reason = f"runner process {process.pid} {ending} before it reported"
    run_id = _started_run(settings, name, process.pid)
    if run_id:
        head = f"run:       {run_id} ({name}) failed"
        tail = f"journal:   {run_id} is recorded as started, with no run.finished"
    else:
        head = f"run:       {name} failed before its run started"
        tail = "journal:   no run.started event for this procedure"
    text = "\n".join([head, f"reason:    {reason}", tail])
    return RunReport(name, "failed", 3, 0.0, {}, run_id, None, text)


def _started_run(settings: GroupSettings, procedure: str, pid: int | None) -> str:
    """Return the id of the run that process ``pid`` journaled as started, or ''."""
    path = incident_dir(settings.archive, settings.incident) / JOURNAL_FILE
    for event in readable_events(path):
        if (
            event.get("event") == "run.started"
            and event.get("procedure") == procedure
            and event.get("pid") == pid
        ):
            return str(event.get("run", ""))
    return ""
