"""Decisions of the Alertmanager webhook receiver, one per alert.

Every alert is decided from its own ``status``, never from the notification's, because
Alertmanager reports a group as firing while any of its alerts fires. An alert is
identified by its fingerprint and belongs to the incident
``alert-<fingerprint>-<startsAt as YYYYMMDDTHHMMSS>``:

- firing: open or update the incident, journal a note (alert, labels, summary, start,
  rule expression, how the procedure was chosen) and queue a run of the procedure;
- resolved: journal a note with how long the alert fired, mark the incident resolved
  and start no run;
- the same fingerprint, status and start again within the dedupe window: drop it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from veerunbook.errors import VeerunbookError
from veerunbook.incident import INCIDENT_FILE, incident_dir, load_incident
from veerunbook.incident import open_or_update as update_incident
from veerunbook.journal import Journal
from veerunbook.receive_payload import Alert, Notification
from veerunbook.receive_rules import (
    Deduplicator,
    choose_procedure,
    format_duration,
    format_time,
    incident_id_for,
    severity_from_labels,
)
from veerunbook.receive_runs import RunQueue, RunRequest
from veerunbook.redact import Redactor

_log = logging.getLogger("veerunbook.receive")

MAX_TITLE_CHARS = 200


@dataclass(frozen=True)
class AlertDecision:
    """The receiver's decision on one alert.

    ``outcome`` is ``opened``, ``updated``, ``resolved``, ``duplicate`` or ``error``.
    ``run`` is ``queued``, ``not run: ...`` with the reason, or None for no run.
    """

    alert: str
    fingerprint: str
    status: str
    incident: str
    outcome: str
    procedure: str | None = None
    mapping: str | None = None
    run: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Receipt:
    """The summary of one notification that the webhook response carries."""

    decisions: tuple[AlertDecision, ...]
    truncated: str | None

    @property
    def failed(self) -> bool:
        """Whether any alert could not be recorded, so Alertmanager should retry."""
        return any(d.outcome == "error" for d in self.decisions)

    def to_dict(self) -> dict[str, Any]:
        """Convert to the JSON object of the webhook response."""
        runs = [d.run for d in self.decisions if d.run]
        return {
            "accepted": sum(
                d.outcome not in ("duplicate", "error") for d in self.decisions
            ),
            "duplicates": sum(d.outcome == "duplicate" for d in self.decisions),
            "errors": sum(d.outcome == "error" for d in self.decisions),
            "runs_queued": runs.count("queued"),
            "runs_not_run": sum(run.startswith("not run") for run in runs),
            "truncated": self.truncated,
            "alerts": [asdict(d) for d in self.decisions],
        }


class Receiver:
    """Decide, journal and queue the alerts of each notification, one at a time."""

    def __init__(
        self,
        archive: Path,
        runs: RunQueue | None,
        *,
        known_procedures: frozenset[str],
        parameters: dict[str, tuple[tuple[str, str], ...]] | None = None,
        dedupe_seconds: float = 300.0,
        redactor: Redactor | None = None,
        run_disabled_reason: str = "the receiver runs with --no-run",
    ) -> None:
        self.archive = archive
        self.runs = runs
        self.known_procedures = known_procedures
        # Parameters per procedure, already limited to the ones it declares.
        self.parameters = parameters or {}
        self.dedupe = Deduplicator(dedupe_seconds)
        self.redactor = redactor or Redactor()
        self._no_run_reason = run_disabled_reason
        self._lock = threading.Lock()

    def handle(self, notification: Notification) -> Receipt:
        """Decide every alert of ``notification`` and return the receipt."""
        truncated = notification.truncation_text()
        if truncated:
            _log.warning("notification %s: %s", notification.group_key, truncated)
        with self._lock:
            decisions = tuple(
                self._decide(alert, truncated) for alert in notification.alerts
            )
        return Receipt(decisions, truncated)

    def _decide(self, alert: Alert, truncated: str | None) -> AlertDecision:
        incident = incident_id_for(alert)
        if self.dedupe.is_duplicate(alert):
            _log.info(
                "alert %s (%s) %s dropped as a duplicate",
                alert.name,
                alert.fingerprint,
                alert.status,
            )
            return AlertDecision(
                alert.name, alert.fingerprint, alert.status, incident, "duplicate"
            )
        try:
            if alert.status == "firing":
                decision = self._fire(alert, incident, truncated)
            else:
                decision = self._resolve(alert, incident, truncated)
        except (VeerunbookError, OSError) as exc:
            _log.error(
                "alert %s (%s) for incident %s not recorded: %s",
                alert.name,
                alert.fingerprint,
                incident,
                exc,
            )
            return AlertDecision(
                alert.name,
                alert.fingerprint,
                alert.status,
                incident,
                "error",
                error=str(exc),
            )
        self.dedupe.remember(alert)
        return decision

    def _fire(
        self, alert: Alert, incident: str, truncated: str | None
    ) -> AlertDecision:
        # Open the incident; title and severity are only set while they are empty,
        # so a later classification by a procedure or a person is kept.
        folder = incident_dir(self.archive, incident)
        existed = (folder / INCIDENT_FILE).exists()
        state = load_incident(folder) if existed else None
        title = None if state and state.title else _title(alert)
        severity = severity_from_labels(alert.labels)
        if state and state.severity:
            severity = None
        update_incident(
            self.archive,
            incident,
            title=title,
            severity=severity,
            reopen=True,
            redactor=self.redactor,
        )

        # Choose the procedure and queue its run.
        procedure, mapping = choose_procedure(alert, self.known_procedures)
        run = self._queue(procedure, incident)

        # Journal what came in and what was decided.
        summary = alert.annotations.get("summary", "")
        since = format_time(alert.starts_at)
        text = f"Alert {alert.name} firing since {since}"
        text += f": {summary}." if summary else "."
        if state and state.resolved_at:
            text += (
                f" The incident was resolved at {state.resolved_at} and is reopened"
                " because the alert fires again."
            )
        text += f" Procedure {procedure} chosen by {mapping}; run {run}."
        if truncated:
            text += f" {truncated}."
        Journal(folder, self.redactor).append(
            "note",
            text=text,
            source="alertmanager",
            alert=alert.name,
            status="firing",
            fingerprint=alert.fingerprint,
            labels=alert.labels,
            summary=summary,
            since=since,
            expression=alert.expression,
            procedure=procedure,
            mapping=mapping,
            run=run,
            truncated=truncated,
        )
        _log.info(
            "alert %s (%s) firing: incident %s %s, %s %s",
            alert.name,
            alert.fingerprint,
            incident,
            "updated" if existed else "opened",
            procedure,
            run,
        )
        return AlertDecision(
            alert.name,
            alert.fingerprint,
            "firing",
            incident,
            "updated" if existed else "opened",
            procedure,
            mapping,
            run,
        )

    def _queue(self, procedure: str, incident: str) -> str:
        if self.runs is None:
            return f"not run: {self._no_run_reason}"
        request = RunRequest(procedure, incident, self.parameters.get(procedure, ()))
        if self.runs.submit(request):
            return "queued"
        _log.warning(
            "run of %s for incident %s not queued: the run queue is full (%d runs)",
            procedure,
            incident,
            self.runs.maxsize,
        )
        return f"not run: the run queue is full ({self.runs.maxsize} runs waiting)"

    def _resolve(
        self, alert: Alert, incident: str, truncated: str | None
    ) -> AlertDecision:
        folder = incident_dir(self.archive, incident)
        if not (folder / INCIDENT_FILE).exists():
            update_incident(
                self.archive, incident, title=_title(alert), redactor=self.redactor
            )
        duration = alert.duration_seconds
        span = f"{format_time(alert.starts_at)} to "
        span += format_time(alert.ends_at) if alert.ends_at else "an unknown end"
        if duration is None:
            lasted = f"resolved, duration unknown ({span})"
        else:
            lasted = f"resolved after {format_duration(duration)} ({span})"
        text = f"Alert {alert.name} {lasted}. No run started."
        if truncated:
            text += f" {truncated}."
        Journal(folder, self.redactor).append(
            "note",
            text=text,
            source="alertmanager",
            alert=alert.name,
            status="resolved",
            fingerprint=alert.fingerprint,
            labels=alert.labels,
            since=format_time(alert.starts_at),
            ended=format_time(alert.ends_at) if alert.ends_at else None,
            duration_s=duration,
            truncated=truncated,
        )
        update_incident(self.archive, incident, resolve=True, redactor=self.redactor)
        _log.info(
            "alert %s (%s) %s: incident %s marked resolved",
            alert.name,
            alert.fingerprint,
            lasted,
            incident,
        )
        return AlertDecision(
            alert.name, alert.fingerprint, "resolved", incident, "resolved"
        )


def _title(alert: Alert) -> str:
    """Build a one-line incident title from the alert name and summary."""
    summary = alert.annotations.get("summary", "")
    text = f"{alert.name}: {summary}" if summary else alert.name or "Alertmanager alert"
    line = "".join(c if ord(c) >= 32 else " " for c in text).strip()
    return line[:MAX_TITLE_CHARS]
