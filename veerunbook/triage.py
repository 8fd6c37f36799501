"""The triage procedure's steps: observe the target, classify, plan the response.

Each method of ``Triage`` is one step of the runbook's initial response and
investigation. It journals what it checked and keeps the facts that ``classify()``
turns into a P0-P3 class. A step that cannot reach its endpoint records an ``error``
check and leaves its facts unknown; it never stops the procedure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from veerunbook import metrics
from veerunbook.changes import Change, recent_changes
from veerunbook.flows import FlowResult, run_user_flows
from veerunbook.logs import ErrorGroup, group_errors, normalise_entries
from veerunbook.probe import ProbeResult
from veerunbook.security import SecuritySummary, summarise_security
from veerunbook.session import Session
from veerunbook.severity import Classification, Signals, classify
from veerunbook.text import counted, percent
from veerunbook.triage_tables import (
    Nothing,
    frame,
    group_row,
    probe_row,
    route_table,
    slowest_route,
)

if TYPE_CHECKING:
    import pandas as pd

# Thresholds for the checks, from the runbook's alerting section.
ERROR_RATE_FAIL = 0.05  # critical alert: 5xx above 5 %
ERROR_RATE_WARN = 0.005  # information alert: 5xx above 0.5 %
P95_FAIL_S = 2.0  # warning alert: p95 above 2000 ms
P95_WARN_S = 1.5  # information alert: p95 above 1500 ms
POOL_WARN = 0.80  # information alert: pool utilisation above 80 %
MEMORY_FAIL = 0.85  # warning alert: memory above 85 %
HEALTH_ENDPOINTS = ("health", "healthz", "readyz", "database")


@dataclass
class MetricsWindow:
    """The two scrapes of the metrics endpoint and what was computed from them."""

    before: metrics.Scrape | None = None
    after: metrics.Scrape | None = None
    errors: metrics.ErrorRate | None = None
    latency: metrics.LatencyReport | None = None
    pool: metrics.PoolUsage | None = None
    memory: metrics.ProcessMemory | None = None
    problem: str | None = None


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
        """Probe liveness, health, readiness and the database health endpoint."""
        for endpoint in HEALTH_ENDPOINTS:
            self.health[endpoint] = self.session.probe(endpoint, name=endpoint)
        self._check_integrity()
        return frame([probe_row(result) for result in self.health.values()])

    # Step 2.2: metrics over a window.
    def sample_metrics(
        self, window_seconds: float, progress: Callable[[str], None] | None = print
    ) -> pd.DataFrame | Nothing:
        """Scrape metrics twice, ``window_seconds`` apart; check rates and latency."""
        window = self.window
        window.before = self._scrape("metrics (first scrape)")
        if window.before is None:
            window.problem = "the metrics endpoint gave no usable exposition"
            return frame([], "no metrics: the endpoint gave no usable exposition")
        _wait(window_seconds, progress)
        window.after = self._scrape("metrics (second scrape)")
        if window.after is None:
            window.problem = "the second scrape failed; rates are cumulative"
            window.after, window.before = window.before, None

        window.errors = metrics.error_rate(window.before, window.after)
        window.latency = metrics.latency_quantiles(window.before, window.after)
        window.pool = metrics.database_pool(window.after)
        window.memory = metrics.process_memory(window.after)
        self._check_error_rate(window.errors)
        self._check_latency(window.latency)
        self._check_pool(window.pool)
        self._check_memory(window.after)
        return route_table(window.errors, window.latency)

    def _scrape(self, name: str) -> metrics.Scrape | None:
        result = self.session.probe("metrics", name=name, expect="metrics")
        if result.status == "error" or result.http_status != 200:
            return None
        scrape = metrics.parse_exposition(result.text, scraped_at=time.time())
        if scrape.warnings:
            self.session.run.check(
                f"{name}: exposition format",
                "warn",
                observed=len(scrape.warnings),
                unit="defects",
                expected=0,
                evidence=[warning.to_dict() for warning in scrape.warnings[:20]],
                summary=scrape.warnings[0].message,
            )
        return scrape

    def _check_error_rate(self, errors: metrics.ErrorRate) -> None:
        rate = errors.rate
        status = (
            "skip" if rate is None else _grade(rate, ERROR_RATE_FAIL, ERROR_RATE_WARN)
        )
        shown = "no user requests" if rate is None else percent(rate, 2)
        self.session.run.check(
            "5xx error rate",
            status,
            observed=None if rate is None else round(rate * 100, 3),
            unit="%",
            expected="<= 5 % (critical alert), <= 0.5 % (information alert)",
            evidence={"requests": errors.requests, "errors": errors.errors},
            summary=f"{shown} of {errors.requests:.0f} requests; "
            + "; ".join(errors.notes),
        )

    def _check_latency(self, latency: metrics.LatencyReport) -> None:
        worst = slowest_route(latency)
        if worst is None:
            self.session.run.check("p95 latency", "skip", summary="no requests timed")
            return
        route, quantile = worst
        assert quantile.value is not None
        status = _grade(quantile.value, P95_FAIL_S, P95_WARN_S)
        prefix = ">= " if quantile.lower_bound else ""
        self.session.run.check(
            "p95 latency",
            status,
            observed=round(quantile.value * 1000, 1),
            unit="ms",
            expected="<= 2000 ms (warning alert), <= 1500 ms (information alert)",
            summary=f"slowest route {route}: "
            f"p95 {prefix}{quantile.value * 1000:.0f} ms",
        )

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

    def _check_pool(self, pool: metrics.PoolUsage) -> None:
        if pool.utilisation is None:
            self.session.run.check(
                "connection pool", "skip", summary="no pool gauges in the metrics"
            )
            return
        # A full pool with requests queueing is an outage in the making, not a hint.
        waiting = pool.waiting or 0
        status = "warn" if pool.utilisation > POOL_WARN else "pass"
        if pool.utilisation >= 1.0 and waiting > 0:
            status = "fail"
        self.session.run.check(
            "connection pool",
            status,
            observed=round(pool.utilisation * 100, 1),
            unit="%",
            expected="<= 80 % (information alert)",
            evidence=pool.to_dict(),
            summary=f"{pool.active:g} of {pool.max:g} connections in use, "
            f"{waiting:g} requests waiting",
        )

    def _check_memory(self, scrape: metrics.Scrape) -> None:
        from veerunbook.triage_signals import heap_fraction

        fraction = heap_fraction(scrape)
        if fraction is None:
            self.session.run.check(
                "heap memory", "skip", summary="no heap limit gauge in the metrics"
            )
            return
        self.session.run.check(
            "heap memory",
            "fail" if fraction > MEMORY_FAIL else "pass",
            observed=round(fraction * 100, 1),
            unit="%",
            expected="<= 85 % of the heap limit (warning alert)",
            summary=f"heap {percent(fraction)} of its limit",
        )

    # Step 2.3: error logs.
    def read_error_logs(self, last: str = "1h") -> pd.DataFrame | Nothing:
        """Read the target's recent error logs and group them by fingerprint."""
        result = self.session.probe(
            "logs", name="error logs", expect="json", query=f"level=error&last={last}"
        )
        body = result.json
        entries = _log_entries(body)
        if result.status != "pass" or not isinstance(entries, list):
            return frame([], f"error logs could not be read: {result.summary()}")
        self.error_groups = group_errors(normalise_entries(entries))
        total = sum(group.count for group in self.error_groups)
        self.session.run.check(
            "error log entries",
            "warn" if total else "pass",
            observed=total,
            unit="entries",
            expected=f"none in the last {last}",
            evidence=[group.to_dict() for group in self.error_groups[:10]],
            summary=(
                f"{counted(total, 'error')} in"
                f" {counted(len(self.error_groups), 'group')}"
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


def _grade(value: float, fail_above: float, warn_above: float) -> str:
    if value > fail_above:
        return "fail"
    return "warn" if value > warn_above else "pass"


def _wait(seconds: float, progress: Callable[[str], None] | None) -> None:
    """Sleep ``seconds`` in steps, reporting the time left about every 5 seconds."""
    deadline = time.monotonic() + max(0.0, seconds)
    while (left := deadline - time.monotonic()) > 0:
        if progress is not None:
            progress(f"waiting for the second scrape: {left:.0f} s left")
        time.sleep(min(5.0, left))
