"""Reduction of triage observations to the signals the incident classes use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from veerunbook.probe import ProbeResult
from veerunbook.severity import Signals

if TYPE_CHECKING:
    from veerunbook.triage import Triage

_DATABASE_WORDS = ("database", "db", "postgres", "mysql", "mongo", "sql")
_INTEGRATIONS = {"instagram": "Instagram integration", "payment": "payment processing"}


def collect_signals(triage: Triage) -> Signals:
    """Build the classification signals from every step that has run."""
    signals = Signals()
    _health_signals(triage.health, signals)
    _flow_signals(triage, signals)
    window = triage.window
    if window.errors is not None:
        signals.error_rate = window.errors.rate
        signals.window_seconds = window.errors.window_seconds
    if window.latency is not None:
        from veerunbook.triage import slowest_route

        worst = slowest_route(window.latency)
        if worst is not None:
            signals.p95_route, quantile = worst
            signals.p95_seconds = quantile.value
    if window.pool is not None:
        signals.pool_utilisation = window.pool.utilisation
    # NOTE: memory is not classified: a scrape carries no memory limit, so the
    # runbook's "memory above 85 %" cannot be computed from it.
    for scrape in (window.before, window.after):
        if scrape is not None and not scrape.valid:
            signals.maintenance_notes.append("the metrics exposition is invalid")
            break
    if triage.security is not None:
        signals.blocked_ips_per_minute = float(triage.security.blocked_last_minute)
        signals.breach_indicators = list(triage.security.breach_indicators)
    return signals


def _health_signals(health: dict[str, ProbeResult], signals: Signals) -> None:
    if not health:
        return
    service = [
        health[name] for name in ("health", "healthz", "readyz") if name in health
    ]
    signals.service_unreachable = all(result.status == "error" for result in service)
    liveness = health.get("healthz")
    readiness = health.get("readyz")
    overall = health.get("health")
    live_failed = liveness is not None and liveness.status in ("fail", "error")
    ready_failed = readiness is not None and readiness.status in ("fail", "error")
    health_failed = overall is not None and overall.status in ("fail", "error")
    signals.service_unhealthy = live_failed or (ready_failed and health_failed)
    signals.health_degraded = any(result.status == "warn" for result in health.values())
    signals.database_down = _database_down(health)
    for result in health.values():
        for component in result.health.failing() if result.health else []:
            for word, label in _INTEGRATIONS.items():
                if (
                    word in component.name.lower()
                    and label not in signals.integrations_down
                ):
                    signals.integrations_down.append(label)


def _database_down(health: dict[str, ProbeResult]) -> bool:
    database = health.get("database")
    answered = database is not None and database.http_status is not None
    if answered and database is not None and database.status == "fail":
        return True
    for result in health.values():
        verdict = result.health
        for component in verdict.failing() if verdict else []:
            name = component.name.lower()
            if any(word in name for word in _DATABASE_WORDS):
                return True
    return False


def _flow_signals(triage: Triage, signals: Signals) -> None:
    for flow in triage.flows:
        if flow.ok:
            continue
        name = flow.flow.name
        if flow.is_auth:
            signals.auth_failed = True
        elif flow.flow.critical:
            signals.critical_flows_failed.append(name)
        else:
            signals.other_flows_failed.append(name)
        for word, label in _INTEGRATIONS.items():
            if (
                word in flow.flow.path.lower()
                and label not in signals.integrations_down
            ):
                signals.integrations_down.append(label)
