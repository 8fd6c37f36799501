"""The triage procedure's steps: observe the target, classify, plan the response.

Each method of ``Triage`` is one step of the runbook's initial response and
investigation. It journals what it checked and keeps the facts that ``classify()``
turns into a P0-P3 class. A step that cannot reach its endpoint records an ``error``
check and leaves its facts unknown; it never stops the procedure.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from veerunbook.changes import Change, recent_changes
from veerunbook.flows import FlowResult, run_user_flows
from veerunbook.probe import ProbeResult
from veerunbook.security import SecuritySummary, summarise_security
from veerunbook.session import Session
from veerunbook.severity import Classification, Signals, classify
from veerunbook.text import counted
from veerunbook.triage_tables import Nothing, frame, group_row, probe_row
from veerunbook.triage_window import (
    ERROR_RATE_FAIL,
    ERROR_RATE_WARN,
    MEMORY_FAIL,
    P95_FAIL_S,
    P95_WARN_S,
    POOL_WARN,
    MetricsWindow,
    close_window,
    open_window,
)

if TYPE_CHECKING:
    import pandas as pd

    from veerunbook.logs import ErrorGroup

# The alert thresholds live with the metrics checks in triage_window. Other procedures
# import them from this module, which re-exports them.
__all__ = [
    "ERROR_RATE_FAIL",
    "ERROR_RATE_WARN",
    "HEALTH_ENDPOINTS",
    "MEMORY_FAIL",
    "P95_FAIL_S",
    "P95_WARN_S",
    "POOL_WARN",
    "MetricsWindow",
    "Triage",
]

HEALTH_ENDPOINTS = ("health", "healthz", "readyz", "database")


@dataclass
class Triage:
    """State of one triage run, filled in step by step."""

    session: Session
    health: dict[str, ProbeResult] = field(default_factory=dict)
    window: MetricsWindow = field(default_factory=MetricsWindow)
    error_groups: list[ErrorGroup] = field(default_factory=list)
    security: SecuritySummary | None = None
    flows: list[FlowResult] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    classification: Classification | None = None

    # Step 2.1: health endpoints.
    def probe_health(self) -> pd.DataFrame | Nothing:
        """Probe liveness, health, readiness and the database health endpoint.

        The four requests run at the same time, so a hanging target costs one probe
        timeout instead of four. Their results are journaled in the fixed order.
        """
        with ThreadPoolExecutor(max_workers=len(HEALTH_ENDPOINTS)) as pool:
            results = list(pool.map(self._probe_unrecorded, HEALTH_ENDPOINTS))
        for endpoint, result in zip(HEALTH_ENDPOINTS, results, strict=True):
            self.session.run.record_probe(result)
            self.health[endpoint] = result
        self._check_integrity()
        return frame([probe_row(result) for result in self.health.values()])

    # Step 2.2: metrics over a window. The first scrape opens it, the error logs are
    # read while it is open, and finish_window() takes the second scrape.
    # NOTE: a target that configures its logs endpoint outside the health routes
    # (metrics.DEFAULT_EXCLUDE) counts that one log request as user traffic.
    def start_window(self, progress: Callable[[str], None] | None = print) -> None:
        """Take the first metrics scrape, which opens the sampling window."""
        opened = open_window(self.session, self.window)
        if progress is not None:
            progress(opened)

    def finish_window(
        self,
        window_seconds: float,
        progress: Callable[[str], None] | None = print,
        while_waiting: Callable[[], object] | None = None,
    ) -> pd.DataFrame | Nothing:
        """Take the second scrape, ``window_seconds`` after the first, and check rates.

        Waits only for the rest of the window. ``while_waiting`` runs once at the
        start of that rest, when some is left. Raises ValueError when
        ``start_window()`` has not run.
        """
        if self.window.opened is None:
            raise ValueError(
                "the metrics window is not open: call start_window() first."
            )
        return close_window(
            self.session, self.window, window_seconds, progress, while_waiting
        )

    def _probe_unrecorded(self, endpoint: str) -> ProbeResult:
        return self.session.probe(endpoint, name=endpoint, record=False)

    def _check_integrity(self) -> None:
        """Record the data integrity that the database health check reports."""
        from veerunbook.triage_signals import data_corruption

        database = self.health.get("database")
        body = database.json if database is not None else None
        if not isinstance(body, dict) or "integrity" not in body:
            return
        problem = data_corruption(self.health)
        self.session.run.check(
            "data integrity",
            "fail" if problem else "pass",
            evidence=body.get("integrity"),
            summary=problem or "the database reports its data valid",
        )

    # Step 2.3: error logs.
    def read_error_logs(self, last: str = "1h") -> pd.DataFrame | Nothing:
        """Read the target's recent error logs and group them by fingerprint."""
        from veerunbook.logs import LIMIT_REACHED, LOG_LIMIT, entry_limit

        query = f"level=error&last={last}&limit={LOG_LIMIT}"
        result = self.session.probe(
            "logs", name="error logs", expect="json", query=query
        )
        body = result.json
        entries = _log_entries(body)
        if result.status != "pass" or not isinstance(entries, list):
            return frame([], f"error logs could not be read: {result.summary()}")
        from veerunbook.logs import group_errors, normalise_entries

        self.error_groups = group_errors(normalise_entries(entries))
        total = sum(group.count for group in self.error_groups)
        cut = LIMIT_REACHED if len(entries) >= entry_limit(body) else ""
        self.session.run.check(
            "error log entries",
            "warn" if total else "pass",
            observed=total,
            unit="entries",
            expected=f"none in the last {last}",
            evidence=[group.to_dict() for group in self.error_groups[:10]],
            summary=(
                f"{counted(total, 'error')} in"
                f" {counted(len(self.error_groups), 'group')}{cut}"
            ),
        )
        rows = [group_row(group) for group in self.error_groups]
        return frame(rows, f"no error entries in the last {last}")

    # Step 2.3: security events.
    def read_security_events(self) -> pd.DataFrame | Nothing:
        """Read high-severity security events, blocked IPs and rate limiting."""
        result = self.session.probe(
            "audit_security",
            name="security events",
            expect="json",
            query="severity=high",
        )
        if result.status != "pass":
            return frame([], f"security events could not be read: {result.summary()}")
        self.security = summarise_security(result.json)
        self.session.run.check(
            "high-severity security events",
            self.security.status,
            observed=self.security.high_events,
            unit="events",
            evidence=self.security.to_dict(),
            summary=self.security.headline(),
        )
        return frame(self.security.top_sources(), "no high-severity security events")

    # Step 2.4: critical user flows.
    def check_user_flows(self) -> pd.DataFrame | Nothing:
        """Run the synthetic requests for the target's critical user flows."""
        self.flows = run_user_flows(self.session)
        rows = [flow.to_row() for flow in self.flows]
        return frame(rows, "no user flows are configured for this target")

    # Step 2.2: recent deployments and configuration changes.
    def recent_changes(self, hours: float = 6.0) -> pd.DataFrame | Nothing:
        """List deployments and configuration changes of the last ``hours``."""
        self.changes = recent_changes(self.session, hours)
        rows = [change.to_row() for change in self.changes]
        return frame(rows, f"no deployment or commit in the last {hours:g} h")

    # Step 1.2: assess and classify.
    def classify(self) -> Classification:
        """Classify the incident from every fact gathered so far."""
        self.classification = classify(self.signals())
        return self.classification

    def signals(self) -> Signals:
        """Reduce the observations to the facts the classes are defined by."""
        from veerunbook.triage_signals import collect_signals

        return collect_signals(self)


def _log_entries(body: Any) -> Any:
    """Return the entry list of a log endpoint's body (a list, or under a key)."""
    if isinstance(body, dict):
        for key in ("logs", "entries", "items", "data"):
            if isinstance(body.get(key), list):
                return body[key]
    return body
