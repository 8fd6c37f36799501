"""The response plan that triage ends with: record the class, escalate, notify,
recommend the next procedures, and summarise every check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veerunbook.incident import (
    INCIDENT_FILE,
    archive_root,
    load_incident,
    open_or_update,
)
from veerunbook.severity import FIRST_RESPONSE, escalation_plan
from veerunbook.text import percent
from veerunbook.triage import (
    ERROR_RATE_FAIL,
    ERROR_RATE_WARN,
    P95_WARN_S,
    POOL_WARN,
)

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.triage import Triage

# Follow-up procedures with the finding that calls for each, in the runbook's order.
_PROCEDURES = (
    ("database-connection", "the database is unreachable or its pool is strained"),
    ("high-error-rate", "5xx responses are above the alert thresholds"),
    ("performance-degradation", "p95 latency is above 1500 ms"),
    ("security-incident", "high-severity security events or blocked-IP bursts"),
    ("application-rollback", "a deployment in the window precedes the errors"),
    ("database-rollback", "data corruption was detected"),
)


def record_class(triage: Triage, title: str = "") -> dict[str, Any]:
    """Write the class into ``incident.json`` and journal the reasons.

    A non-empty ``title`` replaces the incident's title. Without one, an existing
    title, such as the alert name that the webhook receiver set, is kept, and an
    untitled incident gets one derived from the main finding.
    """
    classification = triage.classification or triage.classify()
    run = triage.session.run
    if not title and not _existing_title(run.incident_dir):
        title = _title(triage)
    incident = open_or_update(
        archive_root_of(triage),
        run.incident_id,
        title=title or None,
        severity=classification.severity,
        redactor=triage.session.redactor,
    )
    run.note(
        f"classified as {classification.severity or 'no incident'}",
        classification=classification.to_dict(),
    )
    return incident.to_dict()


def archive_root_of(triage: Triage) -> Any:
    """Return the archive root that contains this run's incident folder."""
    return triage.session.run.incident_dir.parent or archive_root(None)


def _existing_title(folder: Path) -> str:
    if not (folder / INCIDENT_FILE).exists():
        return ""
    return load_incident(folder).title


def _title(triage: Triage) -> str:
    classification = triage.classification
    if classification is None or not classification.reasons:
        return f"{triage.session.target.name}: no incident found"
    return f"{triage.session.target.name}: {classification.reasons[0].rule}"


def escalation_table(triage: Triage, opened_at: str | None = None) -> pd.DataFrame:
    """Tabulate who is engaged at which elapsed time, marking the steps reached."""
    import pandas as pd

    severity = triage.classification.severity if triage.classification else None
    elapsed = _minutes_since(opened_at)
    rows = [
        {
            "elapsed": step.window(),
            "engaged": step.who,
            "contact": step.contact or "",
            "reached": elapsed is not None and step.start_minute <= elapsed,
        }
        for step in escalation_plan(severity, triage.session.config.contacts)
    ]
    return pd.DataFrame(rows)


def _minutes_since(stamp: str | None) -> float | None:
    if not stamp:
        return None
    opened = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (datetime.now(UTC) - opened).total_seconds() / 60


def prepare_notification(triage: Triage) -> dict[str, Any]:
    """Build the message for the teams the class calls for, as Slack-compatible JSON."""
    classification = triage.classification or triage.classify()
    severity = classification.severity
    run = triage.session.run
    if not classification.is_incident:
        name = triage.session.target.name
        text = f"{run.incident_id}: triage found no incident on {name}."
    else:
        reasons = "; ".join(
            f"{r.rule} ({r.evidence})" for r in classification.reasons[:4]
        )
        text = (
            f"[{severity}] {run.incident_id} on {triage.session.target.name}: "
            f"{reasons}. "
            f"Response time {classification.response_time}: "
            f"{FIRST_RESPONSE.get(severity or '', '')}."
        )
    return {"channel": triage.session.config.notify_channel, "text": text}


def send_notification(triage: Triage, message: dict[str, Any], send: bool) -> str:
    """Send the message through the configured webhook when ``send`` is true.

    Returns what happened in one line. The webhook URL is a secret: it is read from
    the environment variable the configuration names and never shown.
    """
    from veerunbook.notify import deliver

    variable = triage.session.config.notify_webhook_env
    delivery = deliver(message, variable=variable, send=send, run=triage.session.run)
    return delivery.outcome


def recommend(triage: Triage) -> pd.DataFrame:
    """Rank the next procedures by the findings, naming the evidence for each."""
    import pandas as pd

    from veerunbook.procedures import notebooks_dir

    # Only whether each notebook exists matters here, so no notebook is read.
    folder = notebooks_dir()
    rows = []
    for name, why in _PROCEDURES:
        evidence = _evidence_for(triage, name)
        if evidence:
            notebook = folder / f"{name}.ipynb"
            ready = "available" if notebook.is_file() else "not built yet"
            rows.append(
                {
                    "procedure": name,
                    "because": why,
                    "evidence": evidence,
                    "status": ready,
                }
            )
    triage.session.run.note(
        "recommended procedures: "
        + (", ".join(row["procedure"] for row in rows) or "none"),
        recommended=rows,
    )
    return pd.DataFrame(rows, columns=["procedure", "because", "evidence", "status"])


def _evidence_for(triage: Triage, procedure: str) -> str:
    """Return the finding that calls for ``procedure``, or "" when none does."""
    signals = triage.signals()
    rate = signals.error_rate or 0.0
    pool = signals.pool_utilisation or 0.0
    p95 = signals.p95_seconds or 0.0
    security = triage.security
    if procedure == "database-connection" and signals.database_down:
        return "database health check failing"
    if procedure == "database-connection" and pool > POOL_WARN:
        return f"pool {percent(pool)} in use"
    if procedure == "high-error-rate" and rate > ERROR_RATE_WARN:
        window = signals.window_seconds or 0.0
        return f"{percent(rate, 2)} 5xx over {window:.0f} s"
    if procedure == "performance-degradation" and p95 > P95_WARN_S:
        return f"p95 {p95:.2f} s on {signals.p95_route}"
    if procedure == "security-incident" and security and security.status != "pass":
        return security.headline()
    if (
        procedure == "application-rollback"
        and triage.changes
        and rate > ERROR_RATE_FAIL
    ):
        latest = triage.changes[0]
        return f"{latest.kind} {latest.version} in the lookback window"
    if procedure == "database-rollback" and signals.data_corruption:
        return "data validation failed"
    return ""


def summary(triage: Triage) -> pd.DataFrame:
    """Return every check of the run as a table, worst first."""
    frame = triage.session.run.checks_frame()
    order = {"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}
    if frame.empty:
        return frame
    frame = frame.assign(_order=frame["status"].map(order)).sort_values(
        ["_order", "time"]
    )
    return frame.drop(columns="_order").reset_index(drop=True)
