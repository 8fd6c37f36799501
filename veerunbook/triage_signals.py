"""Reduction of triage observations to the signals the incident classes use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from veerunbook import metrics
from veerunbook.probe import ProbeResult
from veerunbook.severity import Signals
from veerunbook.triage_tables import slowest_route

if TYPE_CHECKING:
    from veerunbook.triage import Triage

_DATABASE_WORDS = ("database", "db", "postgres", "mysql", "mongo", "sql")
BAD_GATEWAY = 502
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
        worst = slowest_route(window.latency)
        if worst is not None:
            signals.p95_route, quantile = worst
            signals.p95_seconds = quantile.value
    if window.pool is not None:
        signals.pool_utilisation = window.pool.utilisation
    if window.after is not None:
        signals.memory_fraction = heap_fraction(window.after)
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
    # Readiness is the arbiter: a failing liveness or health endpoint while readiness
    # passes means the monitoring endpoint is broken, not the service.
    signals.service_unhealthy = ready_failed and (live_failed or health_failed)
    for name, result in (("healthz", liveness), ("health", overall)):
        if result is not None and not ready_failed and _misbehaves(result):
            signals.broken_health_endpoints.append(f"/{name}: {_why(result)}")
    signals.health_degraded = any(result.status == "warn" for result in health.values())
    signals.database_down = _database_down(health)
    corruption = data_corruption(health)
    if corruption is not None:
        signals.data_corruption = True
        signals.corruption_detail = corruption
    for result in health.values():
        for component in result.health.failing() if result.health else []:
            for word, label in _INTEGRATIONS.items():
                if (
                    word in component.name.lower()
                    and label not in signals.integrations_down
                ):
                    signals.integrations_down.append(label)


def _misbehaves(result: ProbeResult) -> bool:
    """True when an endpoint gave no usable health response, not merely "unhealthy"."""
    if result.status == "error":
        return True
    verdict = result.health
    return result.status == "fail" and (verdict is None or verdict.overall == "unknown")


def _why(result: ProbeResult) -> str:
    return result.error or (result.reasons[0] if result.reasons else result.status)


def data_corruption(health: dict[str, ProbeResult]) -> str | None:
    """Return the integrity failure the database health response reports, or None."""
    database = health.get("database")
    body = database.json if database is not None else None
    integrity = body.get("integrity") if isinstance(body, dict) else None
    if isinstance(integrity, dict) and str(integrity.get("status")).lower() == "fail":
        return str(integrity.get("detail") or "integrity check failed")
    for result in health.values():
        for component in result.health.failing() if result.health else []:
            if "integrity" in component.name.lower():
                return component.detail or f"{component.name} fails"
    return None


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
        # Only a gateway error blames the upstream: a 500 from the publishing route is
        # the application's own defect, not Instagram being down.
        if flow.result.http_status != BAD_GATEWAY:
            continue
        for word, label in _INTEGRATIONS.items():
            if (
                word in flow.flow.path.lower()
                and label not in signals.integrations_down
            ):
                signals.integrations_down.append(label)


def heap_fraction(scrape: metrics.Scrape) -> float | None:
    """Return heap used over the heap limit, when the scrape carries the limit.

    Heap used over heap *total* does not measure pressure, because V8 grows the total
    on demand. Only the limit (``--max-old-space-size``) is fixed.
    """
    used = metrics.gauge(scrape, "nodejs_heap_size_used_bytes")
    limit = metrics.gauge(scrape, "nodejs_heap_size_limit_bytes")
    if used is None or not limit:
        return None
    return used / limit
