"""Audit and deployment endpoints of the simulated service."""

from __future__ import annotations

import statistics

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from veerunbook.simulator.responses import (
    apply_scenario,
    context_of,
    error_response,
    query_int,
)
from veerunbook.simulator.security import (
    LOGIN_LIMIT,
    LOGIN_WINDOW_SECONDS,
    SEVERITY_RANK,
)

PERFORMANCE_WINDOW_SECONDS = 300.0


async def security_audit(request: Request) -> Response:
    """``GET /api/audit/security?severity=low|medium|high``: events at or above it."""
    context = context_of(request)
    severity = request.query_params.get("severity", "low").lower()
    try:
        if severity not in SEVERITY_RANK:
            raise ValueError(f"invalid severity {severity!r}: use low, medium or high")
        limit = query_int(request, "limit", default=100, maximum=1000)
    except ValueError as exc:
        return error_response(context, 400, str(exc))

    security = context.service.security
    body = {
        "events": [event.to_json() for event in security.events(severity, limit)],
        "blockedIps": [entry.to_json() for entry in security.blocked()],
        "rateLimiting": {
            "enabled": True,
            "limit": LOGIN_LIMIT,
            "windowSeconds": LOGIN_WINDOW_SECONDS,
            "hits": security.rate_limit_hits(),
        },
    }
    return JSONResponse(body)


async def performance_audit(request: Request) -> Response:
    """``GET /api/audit/performance``: web vitals and API latency, 75th/95th/99th.

    API percentiles come from the user flow requests of the last 5 minutes.
    """
    service = context_of(request).service
    latencies = sorted(service.stats.api_latencies(PERFORMANCE_WINDOW_SECONDS))
    if len(latencies) >= 2:
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        p75, p95, p99 = (cuts[i - 1] * 1000 for i in (75, 95, 99))
    else:
        p75 = p95 = p99 = latencies[0] * 1000 if latencies else 0.0
    # NOTE: the browser figures are a model, not field measurements. They add a
    # fixed render time to the API time a page waits for, so only API latency
    # moves them.
    body = {
        "webVitals": {
            "lcpMs": round(1200 + 4 * p75),
            "cls": 0.05,
            "inpMs": round(60 + 0.5 * p75),
        },
        "api": {"p75Ms": round(p75, 1), "p95Ms": round(p95, 1), "p99Ms": round(p99, 1)},
        "sampleSize": len(latencies),
        "windowSeconds": PERFORMANCE_WINDOW_SECONDS,
    }
    return JSONResponse(body)


async def deployments(request: Request) -> Response:
    """``GET /api/deployments?limit=10``: recent deploys, newest first."""
    context = context_of(request)
    try:
        limit = query_int(request, "limit", default=10, maximum=100)
    except ValueError as exc:
        return error_response(context, 400, str(exc))
    fault = await apply_scenario(request)
    if fault is not None:
        return fault
    deploys = context.service.store.recent_deploys(limit)
    return JSONResponse({"current": context.service.version, "deployments": deploys})
