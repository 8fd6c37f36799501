"""Timelines of real drills equal the events derived by hand from their journals.

``expected_rows`` restates the timeline's rules over the raw journal lines, without
the module, so a change of either shows up here. The drills are spread over three
files (this one, ``test_timeline_drills_db.py`` and ``test_timeline_drills_app.py``)
because pytest-xdist's loadfile gives each file to one worker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from veerunbook.drill import run_drill
from veerunbook.redact import Redactor
from veerunbook.reports import default_report_path, write_report
from veerunbook.timeline import build_timeline
from veerunbook.timeline_render import render_html
from veerunbook.verify import verify

# The smallest window the drill command accepts (--window 1 to 3600 s).
WINDOW_SECONDS = 1.0
INCIDENT_FIELDS = [
    ("title", "incident"),
    ("severity", "severity"),
    ("acknowledged_at", "acknowledged"),
    ("escalated_to", "escalated"),
    ("resolved_at", "resolved"),
    ("reopened_at", "reopened"),
]


def expected_rows(journal: Path) -> list[tuple[int, str, str | None]]:
    """Derive (seq, kind, status) of each timeline event from the journal lines."""
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    finished = {r["run"] for r in records if r["event"] == "run.finished"}
    rows: list[tuple[int, str, str | None]] = []
    last_status: dict[str, str] = {}
    open_intent: dict[str, dict[str, Any]] = {}

    for record in records:
        seq, event = record["seq"], record["event"]
        if event == "incident.opened":
            rows.append((seq, "incident", None))
        if event.startswith("incident."):
            for name, kind in INCIDENT_FIELDS:
                if name not in record:
                    continue
                if name == "title" and event == "incident.opened":
                    continue
                status = record[name] if name in ("severity", "escalated_to") else None
                rows.append((seq, kind, status))
        elif event == "run.started" and record["run"] not in finished:
            rows.append((seq, "run", "unfinished"))
        elif event == "run.finished":
            intent = open_intent.pop(record["run"], None)
            if intent is not None:
                rows.append((intent["seq"], "action", "unfinished"))
            rows.append((seq, "run", record["status"]))
        elif event == "check":
            before = last_status.get(record["name"])
            last_status[record["name"]] = record["status"]
            changed = before is not None and before != record["status"]
            if record["status"] in ("fail", "error", "warn") or changed:
                rows.append((seq, "check", record["status"]))
        elif event == "action":
            intent = open_intent.pop(record["run"], None)
            if record["mode"] == "intent":
                if intent is not None:
                    rows.append((intent["seq"], "action", "unfinished"))
                open_intent[record["run"]] = record
            else:
                if intent is not None and intent["name"] != record["name"]:
                    rows.append((intent["seq"], "action", "unfinished"))
                rows.append((seq, "action", record["mode"]))
        elif event == "note":
            if "alert" in record and "transition" in record:
                rows.append((seq, "alert", record["transition"]))
            elif (
                "alert" in record
                and record.get("source") == "alertmanager"
                and record.get("run") != "dropped"
            ):
                rows.append((seq, "alert", record["status"]))
            else:
                rows.append((seq, "note", None))
        elif event == "report.written":
            rows.append((seq, "report", record["format"]))
    for intent in open_intent.values():
        rows.append((intent["seq"], "action", "unfinished"))
    return sorted(rows, key=lambda row: row[0])


Rows = list[tuple[int, str, str | None]]


def drill_rows(scenario: str, archive: Path) -> tuple[Rows, Rows, Path]:
    """Run the drill; return the timeline rows, the derived rows and the folder."""
    report = run_drill(
        scenario, archive=archive, redactor=Redactor(), window_seconds=WINDOW_SECONDS
    )
    timeline = build_timeline(report.folder)
    actual = [(event.seq, event.kind, event.status) for event in timeline.events]
    return actual, expected_rows(report.folder / "journal.jsonl"), report.folder


@pytest.mark.parametrize("scenario", ["error-spike", "attack", "healthy", "slow"])
def test_drill_timeline_matches_journal(scenario: str, tmp_path: Path) -> None:
    actual, expected, folder = drill_rows(scenario, tmp_path)
    assert len(actual) == len(expected)
    assert actual == expected
    assert actual[0] == (1, "incident", None)

    # A report written into the drill's incident keeps the journal verifiable.
    timeline = build_timeline(folder)
    page = render_html(timeline, folder).encode()
    path = write_report(
        folder, default_report_path(folder, "timeline.html"), page,
        report="timeline", fmt="html",
    )  # fmt: skip
    assert verify(folder).ok
    assert build_timeline(folder).events[-1].kind == "report"
    path.write_bytes(page.replace(b"</body>", b"<p>edited</p></body>"))
    assert not verify(folder).ok
