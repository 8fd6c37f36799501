"""The incident timeline: the journal reduced to the events a responder reads.

``build_timeline`` reads ``incident.json`` and ``journal.jsonl`` and keeps, in journal
order (``seq``, which is time order):

- ``incident.opened``: one event of kind ``incident``.
- ``incident.updated``: one event per change, in this order: ``incident`` for a new
  title, ``severity`` for a new class, ``acknowledged`` for ``acknowledged_at``,
  ``escalated`` for ``escalated_to``, ``resolved`` for ``resolved_at`` and
  ``reopened`` for ``reopened_at``. An update with none of these fields is dropped.
- ``run.finished``: one event of kind ``run`` at the finish time, with the start time
  of its ``run.started`` in its summary. A ``run.started`` without a ``run.finished``
  (a killed run) is a ``run`` event of its own at the start, with status
  ``unfinished``.
- ``check``: only a check whose status is ``fail``, ``error`` or ``warn``, or whose
  status differs from the previous check of the same name anywhere in the incident.
  The first check of a name that passed or was skipped is dropped.
- ``action``: every action whose mode is not ``intent``. An intent is folded into
  the next action of the same run, which is its end, because ``actions.perform``
  journals each intent's end before the next intent. An intent followed by another
  intent of its run, by its run's end, or by nothing is an ``action`` event of its
  own at the intent, with status ``unfinished``.
- ``note``: every note. A note with an ``alert`` field and a ``transition`` (alert
  check) or ``source`` "alertmanager" is of kind ``alert`` with that transition or
  status, except the notes of runs dropped because their alert resolved
  (``run`` "dropped"), which stay notes.
- ``report.written``: one event of kind ``report``.

Every other event (``run.started`` with its end, unknown names) is left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from veerunbook.incident import Incident, load_incident
from veerunbook.journal import JOURNAL_FILE, readable_events
from veerunbook.timeline_plot import Sample, sample_of

# The summary texts are re-exported: ``veerunbook.timeline`` is where callers look.
from veerunbook.timeline_text import CHECK_ORDER as CHECK_ORDER
from veerunbook.timeline_text import _text
from veerunbook.timeline_text import action_summary as action_summary
from veerunbook.timeline_text import check_summary as check_summary
from veerunbook.timeline_text import incident_changes as incident_changes
from veerunbook.timeline_text import note_summary as note_summary
from veerunbook.timeline_text import run_summary_text as run_summary_text

KINDS = (
    "incident",
    "severity",
    "acknowledged",
    "escalated",
    "resolved",
    "reopened",
    "run",
    "check",
    "action",
    "note",
    "alert",
    "report",
)
UNFINISHED = "unfinished"
NOTABLE_CHECK_STATUSES = frozenset({"fail", "error", "warn"})
_CHAIN_FIELDS = frozenset({"event", "seq", "time", "prev"})


@dataclass(frozen=True)
class TimelineEvent:
    """One line of the timeline.

    ``status`` is the run status, check status, action mode or alert transition.
    ``link`` is the archive-relative path of the run notebook or report file, and
    ``fields`` contains the journal event's own fields without the chain fields.
    """

    seq: int
    time: str
    kind: str
    summary: str
    run: str | None
    procedure: str | None
    status: str | None
    link: str | None
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class RunSummary:
    """One run: its procedure, start and finish (ISO UTC), status and files.

    ``finished`` and ``duration_s`` are None and ``status`` is ``unfinished`` for a
    run that journaled no end.
    """

    run: str
    procedure: str | None
    started: str | None
    finished: str | None
    status: str
    notebook: str | None
    counts: Mapping[str, int]
    duration_s: float | None


@dataclass
class Timeline:
    """An incident's state and its timeline events and runs in journal order.

    ``samples`` are the plotted values of every check, also of those the events
    leave out (see ``timeline_plot``).
    """

    incident: Incident
    events: list[TimelineEvent] = field(default_factory=list)
    runs: list[RunSummary] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


def build_timeline(folder: Path) -> Timeline:
    """Read an incident folder and build its timeline.

    Raises UsageError when the incident does not exist and JournalError when
    ``incident.json`` cannot be read. Journal lines that are not valid JSON are
    skipped (``veerunbook verify`` reports them).
    """
    folder = Path(folder)
    incident = load_incident(folder)
    path = folder / JOURNAL_FILE
    records = readable_events(path) if path.exists() else []
    samples = [
        sample
        for record in records
        if record.get("event") == "check" and (sample := sample_of(record))
    ]
    events = timeline_events(records)
    return Timeline(incident, events, run_summaries(records), samples)


def timeline_kinds(record: Mapping[str, Any]) -> tuple[str, ...]:
    """Return the kinds a journal event can become, before folding and filtering.

    Checks and actions depend on the events around them, so ``timeline_events``
    may still drop them; ``incident.updated`` gives one kind per change.
    """
    event = record.get("event")
    if event == "incident.opened":
        return ("incident",)
    if event == "incident.updated":
        return tuple(kind for kind, _, _ in incident_changes(record))
    if event in ("run.started", "run.finished"):
        return ("run",)
    if event == "note":
        return ("alert",) if alert_status(record) else ("note",)
    if event == "report.written":
        return ("report",)
    if event in ("check", "action"):
        return (str(event),)
    return ()


def alert_status(record: Mapping[str, Any]) -> str | None:
    """Return the transition or status of an alert note, None for other notes."""
    if not isinstance(record.get("alert"), str):
        return None
    transition = record.get("transition")
    if isinstance(transition, str):
        return transition
    status = record.get("status")
    from_receiver = record.get("source") == "alertmanager"
    if from_receiver and record.get("run") != "dropped" and isinstance(status, str):
        return status
    return None


def timeline_events(records: Iterable[Mapping[str, Any]]) -> list[TimelineEvent]:
    """Reduce journal records to timeline events by the rules of the module doc."""
    records = list(records)
    builder = _Builder(records)
    for record in records:
        builder.add(record)
    builder.close_all()
    return sorted(builder.events, key=lambda item: item.seq)


def run_summaries(records: Iterable[Mapping[str, Any]]) -> list[RunSummary]:
    """Return one summary per run, in the order the runs started."""
    starts: dict[str, Mapping[str, Any]] = {}
    finishes: dict[str, Mapping[str, Any]] = {}
    for record in records:
        run = record.get("run")
        if not isinstance(run, str):
            continue
        if record.get("event") == "run.started":
            starts.setdefault(run, record)
        elif record.get("event") == "run.finished":
            finishes.setdefault(run, record)
    order = list(starts) + [run for run in finishes if run not in starts]
    return [_run_summary(run, starts.get(run), finishes.get(run)) for run in order]


def _run_summary(
    run: str, start: Mapping[str, Any] | None, end: Mapping[str, Any] | None
) -> RunSummary:
    either = end or start or {}
    counts = end.get("counts") if end else None
    duration = end.get("duration_s") if end else None
    return RunSummary(
        run=run,
        procedure=_text(either.get("procedure")),
        started=_text(start.get("time")) if start else None,
        finished=_text(end.get("time")) if end else None,
        status=str(end.get("status")) if end else UNFINISHED,
        notebook=_text(end.get("notebook")) if end else None,
        counts=dict(counts) if isinstance(counts, dict) else {},
        duration_s=float(duration) if isinstance(duration, int | float) else None,
    )


class _Builder:
    """The state of one pass over the journal: open runs, intents and checks."""

    def __init__(self, records: list[Mapping[str, Any]]) -> None:
        self.events: list[TimelineEvent] = []
        self.procedures: dict[str, str | None] = {}
        self.starts: dict[str, Mapping[str, Any]] = {}
        self.finished = {
            str(record.get("run"))
            for record in records
            if record.get("event") == "run.finished"
        }
        self.intents: dict[str, Mapping[str, Any]] = {}
        self.last_check: dict[str, str] = {}

    def add(self, record: Mapping[str, Any]) -> None:
        handler = _HANDLERS.get(str(record.get("event")))
        if handler is not None:
            handler(self, record)

    def emit(
        self, record: Mapping[str, Any], kind: str, summary: str, **extra: Any
    ) -> None:
        run = _text(record.get("run"))
        if run is not None and run not in self.procedures:
            run = None
        procedure = _text(record.get("procedure")) or self.procedures.get(run or "")
        self.events.append(
            TimelineEvent(
                seq=int(record.get("seq", 0)),
                time=str(record.get("time", "")),
                kind=kind,
                summary=summary,
                run=run,
                procedure=procedure,
                status=extra.get("status"),
                link=extra.get("link"),
                fields=extra.get("fields", own_fields(record)),
            )
        )

    def incident(self, record: Mapping[str, Any]) -> None:
        if record.get("event") == "incident.opened":
            title = record.get("title") or "untitled"
            self.emit(record, "incident", f"incident opened: {title}")
        for kind, summary, status in incident_changes(record):
            if kind == "incident" and record.get("event") == "incident.opened":
                continue
            self.emit(record, kind, summary, status=status)

    def run_started(self, record: Mapping[str, Any]) -> None:
        run = str(record.get("run"))
        self.procedures[run] = _text(record.get("procedure"))
        self.starts[run] = record
        if run not in self.finished:
            text = f"{record.get('procedure')} started, no end recorded"
            self.emit(record, "run", text, status=UNFINISHED)

    def run_finished(self, record: Mapping[str, Any]) -> None:
        run = str(record.get("run"))
        self.procedures.setdefault(run, _text(record.get("procedure")))
        self.close_intent(run)
        start = self.starts.get(run)
        text = run_summary_text(record, start)
        link = _text(record.get("notebook"))
        status = _text(record.get("status"))
        self.emit(record, "run", text, status=status, link=link)

    def check(self, record: Mapping[str, Any]) -> None:
        name, status = str(record.get("name")), str(record.get("status"))
        previous = self.last_check.get(name)
        self.last_check[name] = status
        changed = previous is not None and previous != status
        if status in NOTABLE_CHECK_STATUSES or changed:
            self.emit(record, "check", check_summary(record, previous), status=status)

    def action(self, record: Mapping[str, Any]) -> None:
        run = str(record.get("run"))
        intent = self.intents.pop(run, None)
        if record.get("mode") == "intent":
            if intent is not None:
                self.unfinished(intent)
            self.intents[run] = record
            return
        if intent is not None and intent.get("name") != record.get("name"):
            self.unfinished(intent)
            intent = None
        text = action_summary(record, intent)
        self.emit(record, "action", text, status=_text(record.get("mode")))

    def close_intent(self, run: str) -> None:
        """Emit the run's open intent as unfinished, at its run's or the journal's
        end."""
        intent = self.intents.pop(run, None)
        if intent is not None:
            self.unfinished(intent)

    def unfinished(self, intent: Mapping[str, Any]) -> None:
        text = action_summary(intent, None, unfinished=True)
        self.emit(intent, "action", text, status=UNFINISHED)

    def close_all(self) -> None:
        for run in list(self.intents):
            self.close_intent(run)

    def note(self, record: Mapping[str, Any]) -> None:
        status = alert_status(record)
        kind = "alert" if status else "note"
        self.emit(record, kind, note_summary(record), status=status)

    def report(self, record: Mapping[str, Any]) -> None:
        files = record.get("files")
        names = ", ".join(sorted(files)) if isinstance(files, dict) else ""
        text = f"report written: {names or 'no files'}"
        link = min(files) if isinstance(files, dict) and files else None
        self.emit(record, "report", text, status=_text(record.get("format")), link=link)


_HANDLERS = {
    "incident.opened": _Builder.incident,
    "incident.updated": _Builder.incident,
    "run.started": _Builder.run_started,
    "run.finished": _Builder.run_finished,
    "check": _Builder.check,
    "action": _Builder.action,
    "note": _Builder.note,
    "report.written": _Builder.report,
}


def own_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return a journal record's fields without ``event``, ``seq``, ``time`` and
    ``prev``."""
    return {key: value for key, value in record.items() if key not in _CHAIN_FIELDS}
