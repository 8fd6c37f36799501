"""Checks that the high-error-rate steps journal, and the one-line diagnosis.

The thresholds come from the runbook's alerting section, shared with triage:

- 5xx rate: above 5 % is the critical alert (P0), above 0.5 % the information alert.
- Heap above 85 % of its limit is the warning alert.
- Pool use above 80 % is the information alert.
- Blocked IPs: more than 10 in a minute is the warning alert, more than 50 the
  critical alert.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from veerunbook import metrics
from veerunbook.errorrate_evidence import application_frame, error_type
from veerunbook.errorrate_recovery import (
    BLOCKED_P0_PER_MINUTE,
    CPU_BUSY_CORES,
    EVENT_LOOP_LAG_S,
    FAILED_LOGIN_BURST,
)
from veerunbook.errorrate_resources import Resources
from veerunbook.metrics_series import Sample
from veerunbook.security import BLOCKED_P1_PER_MINUTE, SecuritySummary
from veerunbook.triage import ERROR_RATE_FAIL, ERROR_RATE_WARN, MEMORY_FAIL, POOL_WARN

if TYPE_CHECKING:
    from veerunbook.errorrate import HighErrorRate
    from veerunbook.record import RunContext

# The critical alert's duration: a shorter window cannot confirm it.
P0_ALERT_SECONDS = 120.0


def check_scrapes(run: RunContext, series: list[Sample]) -> None:
    """Journal how many scrapes succeeded, and any exposition defects."""
    failed = [sample for sample in series if sample.scrape is None]
    done = len(series) - len(failed)
    status = "pass"
    if failed:
        status = "warn" if done >= 2 else "error"
    summary = f"{done} of {len(series)} metrics scrapes succeeded"
    if failed:
        summary += f"; first failure: {failed[0].problem}"
    run.check(
        "metrics scrapes",
        status,
        observed=done,
        unit="scrapes",
        expected=len(series),
        evidence=[{"at": s.at.isoformat(), "problem": s.problem} for s in failed][:20],
        summary=summary,
    )
    defective = [s.scrape for s in series if s.scrape is not None and s.scrape.warnings]
    if defective:
        warnings = defective[0].warnings
        run.check(
            "metrics exposition format",
            "warn",
            observed=len(defective),
            unit="scrapes with defects",
            expected=0,
            evidence=[warning.to_dict() for warning in warnings[:20]],
            summary=warnings[0].message,
        )


def check_error_rate(run: RunContext, window: metrics.ErrorRate) -> None:
    """Journal the user 5xx rate over the window, probe traffic kept apart."""
    rate = window.rate
    if rate is None:
        status = "skip"
    elif rate > ERROR_RATE_FAIL:
        status = "fail"
    else:
        status = "warn" if rate > ERROR_RATE_WARN else "pass"
    seconds = window.window_seconds or 0.0
    shown = "no user requests" if rate is None else f"{rate:.2%}"
    summary = (
        f"{shown} of {window.requests:.0f} user requests over {seconds:.0f} s;"
        f" probe traffic {window.probe_errors:.0f} 5xx of"
        f" {window.probe_requests:.0f} requests, counted apart"
    )
    if seconds < P0_ALERT_SECONDS:
        summary += "; the window is shorter than the critical alert's 2 minutes"
    run.check(
        "5xx error rate",
        status,
        observed=None if rate is None else round(rate * 100, 3),
        unit="%",
        expected="<= 5 % (critical alert), <= 0.5 % (information alert)",
        evidence={
            "requests": window.requests,
            "errors": window.errors,
            "probe_requests": window.probe_requests,
            "probe_errors": window.probe_errors,
            "window_seconds": window.window_seconds,
            "notes": window.notes,
            "routes": [item.to_dict() for item in window.routes if not item.probe][:10],
        },
        summary=" ".join([summary, *(window.notes if window.partial else [])]),
    )


def check_resources(run: RunContext, resources: Resources) -> None:
    """Journal heap, pool, CPU and event loop lag against their limits."""
    heap = resources.heap_fraction
    if heap is None:
        run.check("heap memory", "skip", summary="no heap limit gauge in the metrics")
    else:
        run.check(
            "heap memory",
            "fail" if heap > MEMORY_FAIL else "pass",
            observed=round(heap * 100, 1),
            unit="%",
            expected="<= 85 % of the heap limit (warning alert)",
            summary=f"heap {heap:.0%} of its limit",
        )
    pool = resources.pool
    if pool is None or pool.utilisation is None:
        run.check("connection pool", "skip", summary="no pool gauges in the metrics")
    else:
        waiting = pool.waiting or 0
        status = "warn" if pool.utilisation > POOL_WARN else "pass"
        if pool.utilisation >= 1.0 and waiting > 0:
            status = "fail"
        run.check(
            "connection pool",
            status,
            observed=round(pool.utilisation * 100, 1),
            unit="%",
            expected="<= 80 % (information alert)",
            evidence=pool.to_dict(),
            summary=f"{pool.active:g} of {pool.max:g} connections in use,"
            f" {waiting:g} requests waiting",
        )
    _check_optional(run, "CPU", resources.cpu_cores, CPU_BUSY_CORES, "cores")
    lag = resources.event_loop_lag_seconds
    lag_ms = None if lag is None else lag * 1000
    _check_optional(run, "event loop lag", lag_ms, EVENT_LOOP_LAG_S * 1000, "ms")


def _check_optional(
    run: RunContext, name: str, value: float | None, limit: float, unit: str
) -> None:
    if value is None:
        run.check(name, "skip", summary=f"the metrics export no {name} figure")
        return
    run.check(
        name,
        "warn" if value >= limit else "pass",
        observed=round(value, 3),
        unit=unit,
        expected=f"< {limit:g} {unit}",
        summary=f"{name} {value:.2f} {unit}",
    )


def check_security(run: RunContext, summary: SecuritySummary, failed: int) -> None:
    """Journal blocked IPs per minute, the rate limiter and failed logins."""
    blocked = summary.blocked_last_minute
    level = "P0" if blocked > BLOCKED_P0_PER_MINUTE else "P1"
    run.check(
        "blocked IPs in the last minute",
        "fail" if blocked > BLOCKED_P1_PER_MINUTE else "pass",
        observed=blocked,
        unit="IPs",
        expected="<= 10 (warning alert), <= 50 (critical alert)",
        evidence=summary.to_dict(),
        summary=summary.headline()
        + (f"; above the {level} threshold" if blocked > BLOCKED_P1_PER_MINUTE else ""),
    )
    enabled = summary.rate_limiting.get("enabled")
    if enabled is None:
        status, state = "skip", "in an unknown state"
    elif enabled:
        status, state = "pass", "on"
    else:
        status, state = "warn", "off"
    run.check(
        "rate limiting",
        status,
        evidence=summary.rate_limiting,
        summary=f"the rate limiter is {state}",
    )
    run.check(
        "failed logins in the last minute",
        "warn" if failed >= FAILED_LOGIN_BURST else "pass",
        observed=failed,
        unit="logins",
        expected=f"< {FAILED_LOGIN_BURST}",
        summary=f"{failed} failed logins in the last minute",
    )


def diagnosis(procedure: HighErrorRate) -> str:
    """Describe the rate, the main errors, the deployment and the first action."""
    window = procedure.window
    if window is None and not procedure.logs_read:
        failed = [sample.problem for sample in procedure.series if sample.problem]
        reason = f" (first failure: {failed[0]})" if failed else ""
        return f"the target could not be observed: no metrics and no error logs{reason}"

    parts = _rate_findings(window)
    groups = procedure.error_groups[:2]
    if groups:
        described = [
            f"{error_type(group) or group.signature[:40]} in {application_frame(group)}"
            for group in groups
        ]
        parts.append("errors: " + ", ".join(described))
    security = procedure.security
    logins = procedure.failed_logins_minute or 0
    if security is not None and (
        security.blocked_last_minute > BLOCKED_P1_PER_MINUTE
        or logins >= FAILED_LOGIN_BURST
    ):
        parts.append(
            f"{logins} failed logins and {security.blocked_last_minute} IPs blocked"
            " in the last minute"
        )
    if procedure.alignment is not None:
        parts.append(procedure.alignment.reason)

    first = [option for option in procedure.options if option.rank == 1]
    if first:
        parts.append(f"first action: {first[0].action} ({first[0].confidence})")
    elif procedure.options and window is not None:
        parts.append("no recovery needed")
    return "; ".join(parts)


def _rate_findings(window: metrics.ErrorRate | None) -> list[str]:
    if window is None or window.rate is None:
        return ["5xx rate unknown"]
    if window.rate > ERROR_RATE_FAIL:
        level = "above the 5 % critical alert"
    elif window.rate > ERROR_RATE_WARN:
        level = "above the 0.5 % information alert"
    else:
        level = "within the alerts"
    findings = [f"5xx {window.rate:.1%} of user requests ({level})"]
    worst = [item for item in window.routes if not item.probe and item.errors][:2]
    if worst:
        routes = ", ".join(f"{item.method} {item.route}" for item in worst)
        findings.append(f"most on {routes}")
    return findings
