"""Drills: rehearse an incident against the embedded target with a fault injected.

A drill starts the simulated service with one scenario, runs triage against it, then
runs each procedure triage recommends (in their default dry-run mode) and reports the
class, the findings, each follow-up's diagnosis and top-ranked recovery action, and
where the record is. Every run goes through the same runner as
``veerunbook run``, so a drill leaves an archive that ``veerunbook verify`` accepts.
The procedures reach the drill's target through ``VEERUNBOOK_DEMO_URL``; none of them
starts a second one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veerunbook.errors import UsageError
from veerunbook.incident import incident_dir, load_incident, open_or_update
from veerunbook.journal import JOURNAL_FILE, new_incident_id
from veerunbook.params import read_parameters
from veerunbook.procedures import Procedure, list_procedures
from veerunbook.redact import Redactor
from veerunbook.run_actions import action_lines
from veerunbook.run_summary import (
    by_hand,
    diagnosis_lines,
    finding_line,
    reason_lines,
    recommended,
    run_events,
)
from veerunbook.target import DEMO_DATA_DIR_ENV, DEMO_URL_ENV, GENERATED_TOKENS
from veerunbook.verify import verify

# The runner loads papermill and the Jupyter client, which ``describe`` does not need.
if TYPE_CHECKING:
    from veerunbook.runner import RunOutcome

_log = logging.getLogger("veerunbook.drill")

DEFAULT_WINDOW_SECONDS = 10.0


@dataclass
class DrillReport:
    """Outcome of one drill: its runs, class, findings and verification."""

    scenario: str
    incident: str
    folder: Path
    severity: str | None = None
    reasons: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    recommended: list[str] = field(default_factory=list)
    runs: list[RunOutcome] = field(default_factory=list)
    # Diagnosis, top recovery action and guarded actions of each run, by run id,
    # indented.
    details: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    verified: bool = False
    verify_problem: str | None = None
    base_url: str = ""

    @property
    def exit_code(self) -> int:
        """0 when triage found no incident, 1 when it found one, 3 if a run failed."""
        if any(run.status in ("failed", "aborted") for run in self.runs):
            return 3
        return 1 if self.severity in ("P0", "P1", "P2") else 0

    @property
    def remaining(self) -> list[str]:
        """The recommended procedures that the drill did not run."""
        ran = {run.procedure for run in self.runs}
        return [name for name in self.recommended if name not in ran]

    def lines(self) -> list[str]:
        """Return the report as lines for the terminal."""
        lines = [
            f"drill {self.scenario}: {self._class()}",
            f"incident:  {self.incident}",
        ]
        lines += self.reasons
        lines += [f"  finding: {finding}" for finding in self.findings]
        for run in self.runs:
            lines.append(
                f"  ran {run.procedure}: {run.status} in {run.duration_s:.1f} s"
            )
            lines += self.details.get(run.run_id, [])
            if run.reason:
                lines.append(f"    reason:    {run.reason}")
        lines += [
            f"  skipped {name}: not built yet; {by_hand(name)}" for name in self.skipped
        ]
        if self.remaining:
            lines.append(f"next:      {', '.join(self.remaining)}")
        verdict = (
            "verified" if self.verified else f"NOT verified: {self.verify_problem}"
        )
        lines.append(f"journal:   {self.folder / JOURNAL_FILE} ({verdict})")
        lines.append(f"notebooks: {self.folder / 'runs'}")
        return lines

    def _class(self) -> str:
        if self.severity:
            return self.severity
        triage = self.runs[0] if self.runs else None
        if triage is None or triage.status in ("failed", "aborted"):
            return "class not determined: triage did not complete"
        return "no incident"


def describe() -> list[str]:
    """Return one line per scenario: name, summary and the expected diagnosis."""
    from veerunbook.simulator import SCENARIOS

    lines = []
    for name in sorted(SCENARIOS):
        scenario = SCENARIOS[name]
        lines.append(f"{name}: {scenario.summary}")
        lines.append(f"    diagnosis: {scenario.diagnosis}")
    return lines


def run_drill(
    scenario: str,
    *,
    archive: Path,
    redactor: Redactor,
    incident: str | None = None,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
    keep_running: bool = False,
    on_report: Callable[[DrillReport], None] | None = None,
) -> DrillReport:
    """Run triage and the procedures it recommends against a faulty demo target.

    ``on_report`` receives the report as soon as it is complete; with
    ``keep_running`` the target then serves until Ctrl-C.
    """
    from veerunbook.simulator import SCENARIOS

    if scenario not in SCENARIOS:
        names = ", ".join(sorted(SCENARIOS))
        raise UsageError(f"unknown scenario {scenario!r}; choose one of {names}")
    incident_id = incident or new_incident_id()
    folder = incident_dir(archive, incident_id)
    open_or_update(archive, incident_id, title=f"drill: {scenario}", redactor=redactor)

    with _demo_target(scenario, folder / "drill-target", redactor) as base_url:
        report = DrillReport(scenario, incident_id, folder, base_url=base_url)
        _run(report, "triage", archive, redactor, {"window_seconds": window_seconds})
        triage = run_events(folder, report.runs[-1].run_id)
        report.recommended = [str(row["procedure"]) for row in recommended(triage)]
        available = {procedure.name: procedure for procedure in list_procedures()}
        for name in report.recommended:
            if name not in available:
                report.skipped.append(name)
                _log.info("skipped %s: the procedure is not built yet", name)
                continue
            params = _follow_up_params(available[name], window_seconds)
            _run(report, name, archive, redactor, params)
        _summarise(report)
        if on_report is not None:
            on_report(report)
        if keep_running:
            _serve_until_interrupted(base_url)
    return report


def _run(
    report: DrillReport,
    procedure: str,
    archive: Path,
    redactor: Redactor,
    params: dict[str, Any],
) -> None:
    from veerunbook.runner import run_procedure

    _log.info("drill %s: running %s", report.scenario, procedure)
    outcome = run_procedure(
        procedure,
        incident=report.incident,
        target=f"demo:{report.scenario}",
        params=params,
        archive=archive,
        redactor=redactor,
    )
    report.runs.append(outcome)


def _follow_up_params(procedure: Procedure, window_seconds: float) -> dict[str, Any]:
    """Pass the drill's sampling window to a procedure that samples one.

    A follow-up procedure's own default window (30 s or more) would make a drill
    several times longer without changing what it finds on the embedded target.
    """
    nb = json.loads(procedure.path.read_text(encoding="utf-8"))
    names = {spec.name for spec in read_parameters(nb)}
    return {"window_seconds": window_seconds} if "window_seconds" in names else {}


def _summarise(report: DrillReport) -> None:
    report.severity = load_incident(report.folder).severity
    triage = run_events(report.folder, report.runs[0].run_id)
    report.reasons = reason_lines(triage)
    for event in triage:
        if event.get("event") != "check":
            continue
        if event.get("status") in ("fail", "error"):
            report.findings.append(finding_line(event))
    for run in report.runs:
        events = run_events(report.folder, run.run_id)
        details = diagnosis_lines(events, indent="    ")
        details += action_lines(
            events, report.incident, indent="    ", archive=report.folder.parent
        )
        report.details[run.run_id] = details
    result = verify(report.folder)
    report.verified = result.ok
    report.verify_problem = result.problem


@contextmanager
def _demo_target(scenario: str, data_dir: Path, redactor: Redactor) -> Iterator[str]:
    """Start the demo target for the drill and point procedure kernels at it."""
    import secrets

    from veerunbook.simulator import start_target

    token_env = "VEEFORE_ADMIN_TOKEN"
    if not os.environ.get(token_env):
        os.environ[token_env] = secrets.token_urlsafe(24)
        GENERATED_TOKENS.add(token_env)
    redactor.add(os.environ[token_env])
    data_dir.mkdir(parents=True, exist_ok=True)
    running = start_target(scenario, data_dir=data_dir)
    saved = {name: os.environ.get(name) for name in (DEMO_URL_ENV, DEMO_DATA_DIR_ENV)}
    os.environ[DEMO_URL_ENV] = running.base_url
    os.environ[DEMO_DATA_DIR_ENV] = str(data_dir)
    try:
        yield running.base_url
    finally:
        running.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _serve_until_interrupted(base_url: str) -> None:
    data_dir = os.environ.get(DEMO_DATA_DIR_ENV, "")
    print(f"target running at {base_url}; press Ctrl-C to stop it", flush=True)
    print(f"its operations: python -m veerunbook.simulator.ops --data-dir {data_dir}")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("stopping the target")
