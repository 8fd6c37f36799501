"""One-line texts of timeline events: incident changes, runs, checks, actions, notes.

``timeline.build_timeline`` writes these into ``TimelineEvent.summary``; they are
re-exported from ``veerunbook.timeline``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CHECK_ORDER = ("fail", "error", "warn", "pass", "skip")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def incident_changes(record: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """Return (kind, summary, status) for each change an incident event records."""
    changes: list[tuple[str, str, str | None]] = []
    if "title" in record:
        changes.append(("incident", f"title set to {record['title']}", None))
    if "severity" in record:
        previous = record.get("previous_severity")
        was = f" (was {previous})" if previous else ""
        text = f"class set to {record['severity']}{was}"
        changes.append(("severity", text, _text(record["severity"])))
    if "acknowledged_at" in record:
        by = record.get("acknowledged_by")
        changes.append(("acknowledged", "acknowledged" + _by(by), None))
    if "escalated_to" in record:
        text = f"escalated to {record['escalated_to']}" + _by(
            record.get("escalated_by")
        )
        changes.append(("escalated", text, _text(record["escalated_to"])))
    if "resolved_at" in record:
        changes.append(("resolved", "resolved", None))
    if "reopened_at" in record:
        before = record.get("previous_resolved_at")
        text = "reopened" + (f" (resolved at {before})" if before else "")
        changes.append(("reopened", text, None))
    return changes


def run_summary_text(end: Mapping[str, Any], start: Mapping[str, Any] | None) -> str:
    """Describe a finished run: procedure, status, start and duration, counts."""
    text = f"{end.get('procedure')} {end.get('status')}"
    if start is not None:
        text += f", started {start.get('time')}"
    duration = end.get("duration_s")
    if isinstance(duration, int | float):
        text += f", {duration:.1f} s"
    counts = end.get("counts")
    if isinstance(counts, dict):
        nonzero = [f"{counts[key]} {key}" for key in CHECK_ORDER if counts.get(key)]
        text += f" ({', '.join(nonzero)})" if nonzero else ""
    reason = end.get("reason")
    return text + (f": {reason}" if reason else "")


def check_summary(record: Mapping[str, Any], previous: str | None) -> str:
    """Describe a check: name, observed value with unit, change and summary."""
    text = str(record.get("name"))
    observed = record.get("observed")
    if observed is not None and not isinstance(observed, dict | list):
        unit = record.get("unit")
        text += f": {observed}" + (f" {unit}" if unit else "")
    if previous is not None and previous != record.get("status"):
        text += f" (was {previous})"
    summary = record.get("summary")
    return text + (f"; {summary}" if summary else "")


def action_summary(
    record: Mapping[str, Any],
    intent: Mapping[str, Any] | None,
    *,
    unfinished: bool = False,
) -> str:
    """Describe an action's end, or an intent that never recorded one."""
    name = record.get("name")
    if unfinished:
        return f"{name}: {record.get('intent')} (no end recorded)"
    detail = record.get("detail") or (intent or {}).get("intent") or ""
    return f"{name}: {detail}" if detail else str(name)


def note_summary(record: Mapping[str, Any]) -> str:
    """Return a note's text, on one line."""
    return " ".join(str(record.get("text", "")).split())


def _by(person: Any) -> str:
    return f" by {person}" if isinstance(person, str) and person else ""
