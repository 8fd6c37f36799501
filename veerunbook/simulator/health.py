"""Health, readiness, database, log and metrics endpoints of the simulated service."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from veerunbook.simulator.checks import (
    check_database,
    check_instagram,
    check_integrity,
    check_memory,
    overall_status,
)
from veerunbook.simulator.logs import LEVELS, parse_duration, parse_level
from veerunbook.simulator.responses import context_of, error_response, query_int
from veerunbook.simulator.seed import iso


def _now() -> str:
    return iso(datetime.now(UTC))


async def health(request: Request) -> Response:
    """``GET /health``: overall status with database, memory, Instagram and data checks.

    Returns 503 when the database or memory check fails and 200 otherwise, also
    while degraded. The ``maintenance`` field gives the traffic mode and when it was
    set. A scenario with a ``health_page`` gets that HTML instead.
    """
    context = context_of(request)
    if context.scenario.health_page is not None:
        return HTMLResponse(context.scenario.health_page)
    service = context.service
    figures = service.figures()
    checks = {
        "database": await check_database(context, figures.pool),
        "memory": check_memory(figures.memory),
        "instagram": check_instagram(context, service.rng),
        "dataIntegrity": check_integrity(context),
    }
    overall = overall_status(checks)
    body = {
        "status": overall,
        "timestamp": _now(),
        "uptime": round(service.uptime(), 3),
        "version": service.version,
        "environment": "production",
        "checks": checks,
        "maintenance": service.traffic.state().to_json(),
    }
    return JSONResponse(body, status_code=503 if overall == "unhealthy" else 200)


async def liveness(request: Request) -> Response:
    """``GET /healthz``: the process is up, whatever its dependencies do."""
    return JSONResponse({"status": "ok", "timestamp": _now()})


async def readiness(request: Request) -> Response:
    """``GET /readyz``: ready unless a database or memory check fails or traffic
    is stopped."""
    context = context_of(request)
    figures = context.service.figures()
    memory = check_memory(figures.memory)
    checks: dict[str, dict[str, Any]] = {
        "database": await check_database(context, figures.pool),
        "memory": {
            "status": memory["status"],
            "heapUsedPercent": memory["heapUsedPercent"],
        },
    }
    ready = all(check["status"] != "fail" for check in checks.values())
    # With traffic stopped the instance reports itself not ready, so that a load
    # balancer drains it.
    traffic = context.service.traffic.state()
    stopped = traffic.mode == "stopped"
    ready = ready and not stopped
    body: dict[str, Any] = {
        "status": "ready" if ready else "not_ready",
        "timestamp": _now(),
        "checks": checks,
    }
    if stopped:
        body["maintenance"] = traffic.to_json()
    return JSONResponse(body, status_code=200 if ready else 503)


async def database_health(request: Request) -> Response:
    """``GET /health/database``: connectivity, pool figures, latency and integrity.

    Degraded (200) when the pool is exhausted or payments fail validation,
    unhealthy (503) when the database cannot be reached.
    """
    context = context_of(request)
    pool = context.service.figures().pool
    database = await check_database(context, pool)
    integrity = check_integrity(context)
    status = overall_status({"database": database, "integrity": integrity})
    body: dict[str, Any] = {
        "status": status,
        "pool": {
            "total": pool.total,
            "idle": pool.idle,
            "waiting": pool.waiting,
            "max": pool.max,
        },
        "queryLatencyMs": database["latencyMs"],
        "integrity": integrity,
    }
    for key in ("error", "detail"):
        if key in database:
            body[key] = database[key]
    return JSONResponse(body, status_code=503 if status == "unhealthy" else 200)


async def recent_logs(request: Request) -> Response:
    """``GET /health/logs?level=error&last=1h&limit=200``: recent records, newest first.

    ``level`` takes a pino name or number (default info), ``last`` a duration such
    as ``300s``, ``15m`` or ``1h`` (default 1h), ``limit`` at most 1000 records.
    """
    context = context_of(request)
    params = request.query_params
    try:
        level = parse_level(params.get("level", "info"))
        window = parse_duration(params.get("last", "1h"))
        limit = query_int(request, "limit", default=200, maximum=1000)
    except ValueError as exc:
        return error_response(context, 400, str(exc))

    since_ms = int((time.time() - window) * 1000)
    entries = context.service.logbook.query(level, since_ms, limit)
    level_name = next((n for n, v in LEVELS.items() if v == level), str(level))
    body = {
        "level": level_name,
        "since": iso(datetime.fromtimestamp(since_ms / 1000, UTC)),
        "limit": limit,
        "count": len(entries),
        "logs": [entry.to_record() for entry in entries],
    }
    return JSONResponse(body)


async def metrics(request: Request) -> Response:
    """``GET /metrics``: Prometheus text format 0.0.4 from the service's registry."""
    registry = context_of(request).service.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
