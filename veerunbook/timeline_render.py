"""The timeline as Markdown, CSV and a self-contained HTML page.

Every text from the journal is escaped for its format: ``|`` and line breaks in
Markdown cells, CSV quoting by the ``csv`` module, and ``html.escape`` in HTML. The
HTML page loads nothing: its style is inline and the figure is a base64 PNG.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from veerunbook.timeline import Timeline, TimelineEvent

FORMATS = ("md", "html", "csv")
CSV_COLUMNS = ("seq", "time", "kind", "run", "procedure", "status", "summary", "link")
_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left;
  vertical-align: top; font-size: 0.9em; }
th { background: #eee; }
td.when { white-space: nowrap; }
tr.fail td, tr.error td, tr.failed td, tr.unfinished td { background: #fde8e8; }
tr.warn td { background: #fff6da; }
img { max-width: 100%; }
dt { font-weight: bold; float: left; width: 10em; }
"""


def header_rows(timeline: Timeline) -> list[tuple[str, str]]:
    """Return the incident header as (label, value) pairs."""
    incident = timeline.incident
    return [
        ("incident", incident.id),
        ("title", incident.title or "untitled"),
        ("class", incident.severity or "not classified"),
        ("opened", incident.opened_at),
        ("acknowledged", _acknowledged(timeline)),
        ("resolved", incident.resolved_at or "not resolved"),
    ]


def _acknowledged(timeline: Timeline) -> str:
    """Describe the first acknowledgement by a person, and triage's automatic one."""
    from veerunbook.compliance import automatic_first, person_acknowledgement

    acked, by = person_acknowledgement(timeline.events)
    automatic = timeline.incident.acknowledged_at
    if not automatic_first(timeline.events):
        automatic = None
    if acked is None and automatic is None:
        return timeline.incident.acknowledged_at or "not acknowledged"
    if acked is None:
        return f"only automatically, at {automatic} by a triage run"
    if automatic is None:
        return f"{acked} by {by}"
    return f"{acked} by {by} (automatically at {automatic} by a triage run)"


def render_markdown(timeline: Timeline) -> str:
    """Render the header, then one table per UTC date with one row per event."""
    lines = [f"# Timeline of {_md(timeline.incident.id)}", ""]
    lines += [f"- {label}: {_md(value)}" for label, value in header_rows(timeline)]
    for day, events in _by_date(timeline.events):
        lines += ["", f"## {day}", ""]
        lines.append("| time (UTC) | kind | what | status | link |")
        lines.append("|---|---|---|---|---|")
        for event in events:
            cells = (
                _clock(event.time),
                event.kind,
                event.summary,
                event.status or "",
                event.link or "",
            )
            lines.append("| " + " | ".join(_md(cell) for cell in cells) + " |")
    if not timeline.events:
        lines += ["", "No events."]
    return "\n".join(lines) + "\n"


def render_csv(timeline: Timeline) -> str:
    """Render one row per event under the header row ``CSV_COLUMNS``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for event in timeline.events:
        writer.writerow(
            [
                event.seq,
                event.time,
                event.kind,
                event.run or "",
                event.procedure or "",
                event.status or "",
                event.summary,
                event.link or "",
            ]
        )
    return buffer.getvalue()


def render_html(
    timeline: Timeline,
    folder: Path,
    *,
    output: Path | None = None,
    plots: bool = True,
) -> str:
    """Render a self-contained HTML5 page.

    ``folder`` is the incident folder and ``output`` the file the page goes to
    (default ``<folder>/reports/timeline.html``), so that links to run notebooks and
    to their HTML copies (``<notebook stem>.html`` beside them, when present) are
    relative to the page.
    """
    from veerunbook.reports import default_report_path

    page = output or default_report_path(folder, "timeline.html")
    base = Path(os.path.relpath(Path(folder).absolute(), Path(page).absolute().parent))
    title = html.escape(f"Timeline of {timeline.incident.id}")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head><meta charset="utf-8"><title>{title}</title>',
        f"<style>{_STYLE}</style></head>",
        f"<body><h1>{title}</h1>",
        "<dl>",
    ]
    for label, value in header_rows(timeline):
        parts.append(f"<dt>{html.escape(label)}</dt><dd>{html.escape(value)}</dd>")
    parts.append("</dl>")
    if plots:
        from veerunbook.timeline_plot import plot_png

        encoded = base64.b64encode(plot_png(timeline)).decode("ascii")
        alt = "error rate, p95 latency and pool use across the incident"
        parts.append(f'<img alt="{alt}" src="data:image/png;base64,{encoded}">')
    parts.append(_html_table(timeline.events, Path(folder), base))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(events: list[TimelineEvent], folder: Path, base: Path) -> str:
    rows = [
        "<table><thead><tr><th>date (UTC)</th><th>time</th><th>kind</th>"
        "<th>what</th><th>status</th><th>link</th></tr></thead><tbody>"
    ]
    for event in events:
        status = event.status or ""
        css = html.escape(status, quote=True)
        rows.append(
            f'<tr class="{css}"><td class="when">{html.escape(event.time[:10])}</td>'
            f'<td class="when">{html.escape(_clock(event.time))}</td>'
            f"<td>{html.escape(event.kind)}</td>"
            f"<td>{html.escape(event.summary)}</td>"
            f"<td>{html.escape(status)}</td>"
            f"<td>{_html_links(event, folder, base)}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _html_links(event: TimelineEvent, folder: Path, base: Path) -> str:
    """Link the event's file and, for a notebook, its HTML copy when it exists."""
    if not event.link:
        return ""
    relative = PurePosixPath(event.link)
    if relative.suffix != ".ipynb":
        return _anchor(base, relative, relative.name)
    # A run notebook: short labels keep the column narrow, and the file names are
    # in the tooltips.
    links = [_anchor(base, relative, "ipynb", title=relative.name)]
    copy = relative.with_suffix(".html")
    if (folder / copy).is_file():
        links.append(_anchor(base, copy, "HTML", title=copy.name))
    return " ".join(links)


def _anchor(
    base: Path, relative: PurePosixPath, text: str, *, title: str | None = None
) -> str:
    href = (PurePosixPath(base.as_posix()) / relative).as_posix()
    tip = f' title="{html.escape(title)}"' if title else ""
    return f'<a href="{html.escape(href)}"{tip}>{html.escape(text)}</a>'


def _by_date(events: list[TimelineEvent]) -> Iterator[tuple[str, list[TimelineEvent]]]:
    """Group consecutive events by the date of their UTC time."""
    day, group = "", list[TimelineEvent]()
    for event in events:
        if event.time[:10] != day and group:
            yield day, group
            group = []
        day = event.time[:10]
        group.append(event)
    if group:
        yield day, group


def _clock(time: str) -> str:
    """Return HH:MM:SS of an ISO 8601 time such as 2026-03-01T12:34:56.789Z."""
    return time[11:19]


def _md(text: str) -> str:
    """Escape a Markdown table cell: backslashes, pipes and line breaks."""
    flat = " ".join(text.split())
    return flat.replace("\\", "\\\\").replace("|", "\\|")
