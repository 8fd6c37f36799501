"""Decisions of the Alertmanager webhook receiver, one per alert.

Every alert is decided from its own ``status``, never from the notification's, because
Alertmanager reports a group as firing while any of its alerts fires. An alert is
identified by its fingerprint and belongs to the incident
``alert-<fingerprint>-<startsAt as YYYYMMDDTHHMMSS>``:

- firing: open, update or reopen the incident, journal a note (alert, labels, tier,
  summary, start, rule expression, how the procedure was chosen) and queue a run of
  the procedure;
- resolved: journal a note with how long the alert fired, drop the incident's runs
  still waiting in the queue, mark the incident resolved and start no run;
- the same fingerprint, status and start again within the dedupe window: drop it.

The receiver never sets the incident's severity, because only triage classifies an
incident: the alert's tier is journaled beside it instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

from veerunbook.errors import VeerunbookError
from veerunbook.incident import INCIDENT_FILE, incident_dir, load_incident
from veerunbook.incident import open_or_update as update_incident
from veerunbook.journal import Journal
from veerunbook.receive_payload import Alert, Notification
from veerunbook.receive_receipt import AlertDecision, IncidentLocks, Receipt
from veerunbook.receive_rules import (
    Deduplicator,
    choose_procedure,
    format_duration,
    format_time,
    incident_id_for,
    tier_from_labels,
)
from veerunbook.receive_runs import RunQueue, RunRequest
from veerunbook.redact import Redactor

__all__ = ["AlertDecision", "Receipt", "Receiver"]

_log = logging.getLogger("veerunbook.receive")

MAX_TITLE_CHARS = 200


class Receiver:
    """Decide, journal and queue the alerts of each notification.

    Alerts of one incident are decided one at a time, and alerts of different
    incidents in parallel when notifications arrive on several threads.
    """

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
        self._locks = IncidentLocks()

    def handle(self, notification: Notification) -> Receipt:
        """Decide every alert of ``notification`` and return the receipt."""
        truncated = notification.truncation_text()
        if truncated:
            _log.warning("notification %s: %s", notification.group_key, truncated)
        decisions = []
        for alert in notification.alerts:
            incident = incident_id_for(alert)
            with self._locks.hold(incident):
                decisions.append(self._decide(alert, incident, truncated))
        return Receipt(tuple(decisions), truncated)

    def _decide(
        self, alert: Alert, incident: str, truncated: str | None
    ) -> AlertDecision:
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
        # Open the incident. The title is only set while it is empty, so a title
        # from a person is kept, and the severity is left to triage.
        folder = incident_dir(self.archive, incident)
        existed = (folder / INCIDENT_FILE).exists()
        state = load_incident(folder) if existed else None
        title = None if state and state.title else _title(alert)
        update_incident(
            self.archive, incident, title=title, reopen=True, redactor=self.redactor
        )
        outcome = "updated" if existed else "opened"
        if state is not None and state.resolved_at is not None:
            outcome = "reopened"
        tier = tier_from_labels(alert.labels)

        # Choose the procedure and queue its run.
        procedure, mapping = choose_procedure(alert, self.known_procedures)
        run = self._queue(procedure, incident)

        # Journal what came in and what was decided.
        summary = alert.annotations.get("summary", "")
        since = format_time(alert.starts_at)
        text = f"Alert {alert.name} firing since {since}"
        text += f": {summary}." if summary else "."
        if tier:
            text += f" Alert tier {tier}; triage sets the incident's class."
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
            alert_tier=tier,
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
            outcome,
            procedure,
            run,
        )
        return AlertDecision(
            alert.name,
            alert.fingerprint,
            "firing",
            incident,
            outcome,
            procedure,
            mapping,
            run,
            alert_tier=tier,
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
        # Runs still waiting would act on an alert that no longer fires.
        dropped = self.runs.drop_incident(incident) if self.runs else []
        tier = tier_from_labels(alert.labels)

        # Journal how long the alert fired and the runs dropped, then resolve.
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
            alert_tier=tier,
            since=format_time(alert.starts_at),
            ended=format_time(alert.ends_at) if alert.ends_at else None,
            duration_s=duration,
            truncated=truncated,
        )
        for request in dropped:
            self._journal_dropped(folder, alert, request)
        update_incident(self.archive, incident, resolve=True, redactor=self.redactor)
        _log.info(
            "alert %s (%s) %s: incident %s marked resolved",
            alert.name,
            alert.fingerprint,
            lasted,
            incident,
        )
        return AlertDecision(
            alert.name,
            alert.fingerprint,
            "resolved",
            incident,
            "resolved",
            alert_tier=tier,
            runs_dropped=len(dropped),
        )

    def _journal_dropped(self, folder: Path, alert: Alert, request: RunRequest) -> None:
        text = f"queued run of {request.procedure} dropped: the alert resolved"
        Journal(folder, self.redactor).append(
            "note",
            text=text,
            source="alertmanager",
            alert=alert.name,
            status="resolved",
            fingerprint=alert.fingerprint,
            procedure=request.procedure,
            run="dropped",
        )
        _log.info("incident %s: %s", request.incident, text)


def _title(alert: Alert) -> str:
    """Build a one-line incident title from the alert name and summary."""
    summary = alert.annotations.get("summary", "")
    text = f"{alert.name}: {summary}" if summary else alert.name or "Alertmanager alert"
    line = "".join(c if ord(c) >= 32 else " " for c in text).strip()
    return line[:MAX_TITLE_CHARS]
