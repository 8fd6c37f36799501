"""The timeline's rules, event by event, and its Markdown, CSV and HTML renderings.

Every journal here is written with the Journal API into a temporary archive, so the
sequence numbers below are the journal's line numbers.
"""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest

from veerunbook.errors import UsageError
from veerunbook.incident import escalate, load_incident, open_or_update
from veerunbook.journal import Journal
from veerunbook.timeline import Timeline, TimelineEvent, build_timeline
from veerunbook.timeline_plot import plot_png
from veerunbook.timeline_render import (
    CSV_COLUMNS,
    render_csv,
    render_html,
    render_markdown,
)

INCIDENT = "INC-TIMELINE-1"


def opened(archive: Path) -> Journal:
    open_or_update(archive, INCIDENT, title="checkout fails")
    return Journal(archive / INCIDENT)


def rows(archive: Path) -> list[tuple[int, str, str | None]]:
    timeline = build_timeline(archive / INCIDENT)
    return [(event.seq, event.kind, event.status) for event in timeline.events]


def start(journal: Journal, run: str = "RUN-1", procedure: str = "triage") -> None:
    journal.append("run.started", run=run, procedure=procedure)


def finish(journal: Journal, run: str = "RUN-1", procedure: str = "triage") -> None:
    journal.append(
        "run.finished",
        run=run,
        procedure=procedure,
        status="findings",
        duration_s=2.5,
        notebook=f"runs/{run}-{procedure}.ipynb",
        counts={"fail": 1, "pass": 2},
    )


def check(journal: Journal, name: str, status: str, run: str = "RUN-1") -> None:
    journal.append("check", run=run, name=name, status=status)


def test_opened_incident_event(tmp_path: Path) -> None:
    opened(tmp_path)
    assert rows(tmp_path) == [(1, "incident", None)]


def test_missing_incident_raises(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        build_timeline(tmp_path / "INC-NONE")


def test_updates_split_by_change(tmp_path: Path) -> None:
    opened(tmp_path)
    open_or_update(tmp_path, INCIDENT, severity="P1", acknowledge=True)
    escalate(tmp_path, INCIDENT, "engineering_manager", by="alice")
    open_or_update(tmp_path, INCIDENT, title="checkout down", resolve=True)
    open_or_update(tmp_path, INCIDENT, reopen=True)
    assert rows(tmp_path) == [
        (1, "incident", None),
        (2, "severity", "P1"),
        (2, "acknowledged", None),
        (3, "escalated", "engineering_manager"),
        (4, "incident", None),
        (4, "resolved", None),
        (5, "reopened", None),
    ]


def test_severity_summary_names_previous(tmp_path: Path) -> None:
    opened(tmp_path)
    open_or_update(tmp_path, INCIDENT, severity="P2")
    open_or_update(tmp_path, INCIDENT, severity="P0")
    last = build_timeline(tmp_path / INCIDENT).events[-1]
    assert last.summary == "class set to P0 (was P2)"


def test_run_folded_into_finish(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    finish(journal)
    assert rows(tmp_path) == [(1, "incident", None), (3, "run", "findings")]


def test_run_event_fields(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    finish(journal)
    timeline = build_timeline(tmp_path / INCIDENT)
    event = timeline.events[-1]
    started = journal.events()[1]["time"]
    assert event.run == "RUN-1"
    assert event.procedure == "triage"
    assert event.link == "runs/RUN-1-triage.ipynb"
    assert f"started {started}" in event.summary
    assert "2.5 s" in event.summary
    assert event.fields["counts"] == {"fail": 1, "pass": 2}
    assert "prev" not in event.fields


def test_unfinished_run_event(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    check(journal, "health", "fail")
    assert rows(tmp_path) == [
        (1, "incident", None),
        (2, "run", "unfinished"),
        (3, "check", "fail"),
    ]


def test_run_summaries(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    finish(journal)
    start(journal, "RUN-2", "high-error-rate")
    runs = build_timeline(tmp_path / INCIDENT).runs
    assert [run.run for run in runs] == ["RUN-1", "RUN-2"]
    assert runs[0].status == "findings"
    assert runs[0].duration_s == 2.5
    assert runs[0].notebook == "runs/RUN-1-triage.ipynb"
    assert runs[1].status == "unfinished"
    assert runs[1].finished is None
    assert runs[1].procedure == "high-error-rate"


def test_checks_kept_when_failing_or_changed(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    check(journal, "health", "pass")  # 3: first, passing: dropped
    check(journal, "pool", "warn")  # 4: kept
    check(journal, "rate", "fail")  # 5: kept
    check(journal, "db", "error")  # 6: kept
    check(journal, "health", "pass")  # 7: unchanged: dropped
    check(journal, "rate", "pass")  # 8: changed from fail: kept
    check(journal, "health", "skip")  # 9: changed from pass: kept
    check(journal, "flags", "skip")  # 10: first, skipped: dropped
    assert rows(tmp_path)[2:] == [
        (4, "check", "warn"),
        (5, "check", "fail"),
        (6, "check", "error"),
        (8, "check", "pass"),
        (9, "check", "skip"),
    ]


def test_check_change_across_runs(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    check(journal, "5xx error rate", "fail")
    finish(journal)
    start(journal, "RUN-2")
    check(journal, "5xx error rate", "pass", run="RUN-2")
    event = build_timeline(tmp_path / INCIDENT).events[-1]
    assert (event.seq, event.kind, event.status) == (6, "check", "pass")
    assert event.summary == "5xx error rate (was fail)"
    assert event.run == "RUN-2"


def action(journal: Journal, mode: str, name: str = "block-ip", **fields: Any) -> None:
    journal.append("action", run="RUN-1", name=name, mode=mode, **fields)


def test_intent_folded_into_end(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    action(journal, "intent", intent="Block 203.0.113.9.")
    action(journal, "executed", detail="blocked 203.0.113.9")
    finish(journal)
    assert rows(tmp_path)[1:] == [(4, "action", "executed"), (5, "run", "findings")]


def test_action_summary_uses_detail(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    action(journal, "intent", intent="Block 203.0.113.9.")
    action(journal, "refused", detail="not on the allow-list")
    event = build_timeline(tmp_path / INCIDENT).events[-1]
    assert event.summary == "block-ip: not on the allow-list"


def test_every_end_mode_kept(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    modes = ["dry-run", "refused", "already-done", "executed", "failed"]
    for mode in modes:
        action(journal, "intent", intent="x")
        action(journal, mode)
    statuses = [status for _, kind, status in rows(tmp_path) if kind == "action"]
    assert statuses == modes


def test_intent_without_end_unfinished(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    action(journal, "intent", intent="Restore the backup.", name="restore")
    assert rows(tmp_path)[1:] == [(2, "run", "unfinished"), (3, "action", "unfinished")]


def test_intent_then_intent_unfinished(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    action(journal, "intent", intent="Restore.", name="restore")
    action(journal, "intent", intent="Restore.", name="restore")
    action(journal, "failed", name="restore", detail="restore failed")
    finish(journal)
    assert rows(tmp_path)[1:] == [
        (3, "action", "unfinished"),
        (5, "action", "failed"),
        (6, "run", "findings"),
    ]


def test_intent_open_at_run_end_unfinished(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    action(journal, "intent", intent="Stop traffic.", name="stop-traffic")
    finish(journal)
    events = build_timeline(tmp_path / INCIDENT).events
    assert [(e.seq, e.kind, e.status) for e in events[1:]] == [
        (3, "action", "unfinished"),
        (4, "run", "findings"),
    ]
    assert events[1].summary == "stop-traffic: Stop traffic. (no end recorded)"


def test_notes_and_alerts(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    journal.append("note", run="RUN-1", text="classified as P1")
    journal.append(
        "note",
        run="RUN-1",
        text="ErrorRateP0 firing",
        alert="ErrorRateP0",
        tier="P0",
        transition="firing",
    )
    journal.append(
        "note",
        text="Alert HighErrorRate resolved",
        source="alertmanager",
        alert="HighErrorRate",
        status="resolved",
    )
    journal.append(
        "note",
        text="queued run of triage dropped: the alert resolved",
        source="alertmanager",
        alert="HighErrorRate",
        status="resolved",
        run="dropped",
    )
    assert rows(tmp_path)[2:] == [
        (3, "note", None),
        (4, "alert", "firing"),
        (5, "alert", "resolved"),
        (6, "note", None),
    ]


def test_note_without_run_has_none(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    journal.append("note", text="queued", run="queued", source="alertmanager")
    event = build_timeline(tmp_path / INCIDENT).events[-1]
    assert event.run is None


def test_report_event(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    journal.append(
        "report.written",
        report="timeline",
        format="md",
        files={"reports/timeline.md": "0" * 64},
    )
    event = build_timeline(tmp_path / INCIDENT).events[-1]
    assert (event.seq, event.kind, event.status) == (2, "report", "md")
    assert event.link == "reports/timeline.md"


def test_unknown_events_left_out(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    journal.append("receiver.started", port=9095)
    assert rows(tmp_path) == [(1, "incident", None)]


def test_events_in_journal_order(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    check(journal, "rate", "fail")
    action(journal, "intent", intent="x")
    open_or_update(tmp_path, INCIDENT, severity="P1")
    action(journal, "dry-run")
    finish(journal)
    seqs = [seq for seq, _, _ in rows(tmp_path)]
    assert seqs == [1, 3, 5, 6, 7]


def test_samples_from_checks(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    start(journal)
    for name, observed, unit in [
        ("5xx error rate", 12.5, "%"),
        ("p95 latency", 2400.0, "ms"),
        ("connection pool", 85, "%"),
        ("5xx error rate before the rollback", 30.0, "%"),
        ("heap memory", 40.0, "%"),
        ("p95 latency", None, "ms"),
    ]:
        journal.append(
            "check", run="RUN-1", name=name, status="pass", observed=observed, unit=unit
        )
    samples = build_timeline(tmp_path / INCIDENT).samples
    assert [(s.series, s.value) for s in samples] == [
        ("error rate", 12.5),
        ("p95", 2400.0),
        ("pool", 85.0),
        ("error rate", 30.0),
    ]


# Renderers, on a timeline built by hand so that dates and texts are chosen.


def event(seq: int, time: str, kind: str, summary: str, **extra: Any) -> TimelineEvent:
    return TimelineEvent(
        seq=seq,
        time=time,
        kind=kind,
        summary=summary,
        run=extra.get("run"),
        procedure=extra.get("procedure"),
        status=extra.get("status"),
        link=extra.get("link"),
        fields={},
    )


def hand_timeline(tmp_path: Path) -> Timeline:
    open_or_update(tmp_path, INCIDENT, title="checkout <b>fails</b>", severity="P1")
    incident = load_incident(tmp_path / INCIDENT)
    return Timeline(
        incident,
        [
            event(1, "2026-03-01T23:59:58.100Z", "incident", "incident opened"),
            event(
                4,
                "2026-03-02T00:00:05.000Z",
                "check",
                "rate | 35 % <script>alert(1)</script>\nsecond line",
                run="RUN-1",
                procedure="triage",
                status="fail",
            ),
            event(
                9,
                "2026-03-02T00:01:00.000Z",
                "run",
                "triage findings",
                run="RUN-1",
                procedure="triage",
                status="findings",
                link="runs/RUN-1-triage.ipynb",
            ),
        ],
    )


def test_markdown_header(tmp_path: Path) -> None:
    text = render_markdown(hand_timeline(tmp_path))
    assert f"- incident: {INCIDENT}" in text
    assert "- class: P1" in text
    assert "- acknowledged: not acknowledged" in text
    assert "- resolved: not resolved" in text


def _acknowledged_line(archive: Path) -> str:
    text = render_markdown(build_timeline(archive / INCIDENT))
    return next(line for line in text.splitlines() if line.startswith("- acknowledged"))


def test_header_automatic_acknowledgement_apart(tmp_path: Path) -> None:
    # Triage acknowledges without a name; the person's acknowledgement comes later.
    open_or_update(tmp_path, INCIDENT, severity="P1", acknowledge=True)
    automatic = load_incident(tmp_path / INCIDENT).acknowledged_at
    assert _acknowledged_line(tmp_path) == (
        f"- acknowledged: only automatically, at {automatic} by a triage run"
    )
    open_or_update(tmp_path, INCIDENT, acknowledge=True, acknowledged_by="alice")
    line = _acknowledged_line(tmp_path)
    assert line.endswith(f"by alice (automatically at {automatic} by a triage run)")
    assert not line.startswith(f"- acknowledged: {automatic} by alice")


def test_header_person_acknowledgement(tmp_path: Path) -> None:
    open_or_update(tmp_path, INCIDENT, acknowledge=True, acknowledged_by="bob")
    acked = next(
        event.time
        for event in build_timeline(tmp_path / INCIDENT).events
        if event.kind == "acknowledged"
    )
    assert _acknowledged_line(tmp_path) == f"- acknowledged: {acked} by bob"


def test_markdown_date_headings(tmp_path: Path) -> None:
    lines = render_markdown(hand_timeline(tmp_path)).splitlines()
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## 2026-03-01", "## 2026-03-02"]


def test_markdown_table_rows(tmp_path: Path) -> None:
    lines = render_markdown(hand_timeline(tmp_path)).splitlines()
    table = [
        line for line in lines if line.startswith("| ") and "time (UTC)" not in line
    ]
    assert table == [
        "| 23:59:58 | incident | incident opened |  |  |",
        "| 00:00:05 | check | rate \\| 35 % <script>alert(1)</script> second line "
        "| fail |  |",
        "| 00:01:00 | run | triage findings | findings | runs/RUN-1-triage.ipynb |",
    ]


def test_csv_parses_back(tmp_path: Path) -> None:
    timeline = hand_timeline(tmp_path)
    parsed = list(csv.DictReader(io.StringIO(render_csv(timeline))))
    assert tuple(parsed[0]) == CSV_COLUMNS
    assert len(parsed) == 3
    assert parsed[1]["summary"] == timeline.events[1].summary
    assert parsed[1]["seq"] == "4"
    assert parsed[1]["run"] == "RUN-1"
    assert parsed[2]["link"] == "runs/RUN-1-triage.ipynb"
    assert parsed[0]["status"] == ""


class Page(HTMLParser):
    """Collects the tags, attributes and text of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.hrefs: list[str] = []
        self.sources: list[str] = []
        self.text: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "a":
            self.hrefs.append(values["href"] or "")
        if tag in ("img", "script", "link"):
            self.sources.append(values.get("src") or values.get("href") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed_html(tmp_path: Path, *, plots: bool = False) -> Page:
    timeline = hand_timeline(tmp_path)
    page = Page()
    page.feed(render_html(timeline, tmp_path / INCIDENT, plots=plots))
    return page


def test_html_escapes_journal_text(tmp_path: Path) -> None:
    page = parsed_html(tmp_path)
    assert "script" not in page.tags
    assert "b" not in page.tags
    assert any("<script>alert(1)</script>" in text for text in page.text)
    assert any("checkout <b>fails</b>" in text for text in page.text)


def test_html_is_html5(tmp_path: Path) -> None:
    page = parsed_html(tmp_path)
    assert page.doctype == "DOCTYPE html"
    assert "link" not in page.tags


def test_html_links_notebook(tmp_path: Path) -> None:
    page = parsed_html(tmp_path)
    assert page.hrefs == ["../runs/RUN-1-triage.ipynb"]


def test_html_links_notebook_copy(tmp_path: Path) -> None:
    timeline = hand_timeline(tmp_path)
    (tmp_path / INCIDENT / "runs" / "RUN-1-triage.html").write_text("<html></html>")
    page = Page()
    page.feed(render_html(timeline, tmp_path / INCIDENT, plots=False))
    assert page.hrefs == ["../runs/RUN-1-triage.ipynb", "../runs/RUN-1-triage.html"]


def test_html_links_from_other_folder(tmp_path: Path) -> None:
    timeline = hand_timeline(tmp_path)
    output = tmp_path / "exports" / "t.html"
    page = Page()
    page.feed(render_html(timeline, tmp_path / INCIDENT, output=output, plots=False))
    assert page.hrefs == [f"../{INCIDENT}/runs/RUN-1-triage.ipynb"]


def test_html_embeds_plot(tmp_path: Path) -> None:
    page = parsed_html(tmp_path, plots=True)
    assert len(page.sources) == 1
    assert page.sources[0].startswith("data:image/png;base64,")


def test_plot_png_closes_figure(tmp_path: Path) -> None:
    data = plot_png(hand_timeline(tmp_path))
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert plt.get_fignums() == []
