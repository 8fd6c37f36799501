"""Health, readiness, database, log and metrics endpoints of the simulated service."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from veerunbook.simulator.accounting import RequestContext
from veerunbook.simulator.behaviour import ROUTES_BY_KEY, MemorySnapshot, sample_latency
from veerunbook.simulator.logs import LEVELS, parse_duration, parse_level
from veerunbook.simulator.responses import context_of, error_response, query_int
from veerunbook.simulator.seed import iso

logger = logging.getLogger("veerunbook.simulator")

MEBIBYTE = 1024 * 1024
# The runbook's warning alert fires on memory usage above 85 %.
MEMORY_DEGRADED_PERCENT = 85.0
MEMORY_UNHEALTHY_PERCENT = 95.0
DATABASE_ROUTE = ROUTES_BY_KEY["GET /health/database"]
INSTAGRAM_MEDIAN_MS = 90.0


async def check_database(context: RequestContext) -> dict[str, Any]:
    """Query the database as the health checks do; set the context error on failure."""
    scenario = context.scenario
    if scenario.database_error is not None:
        context.error = scenario.database_error
        return {
            "status": "unhealthy",
            "latencyMs": None,
            "error": scenario.database_error.message,
        }
    latency = sample_latency(DATABASE_ROUTE, scenario, context.service.rng)
    await asyncio.sleep(latency)
    try:
        context.service.store.ping()
    except sqlite3.Error as exc:
        logger.warning("simulated database check failed: %s", exc)
        return {"status": "unhealthy", "latencyMs": None, "error": str(exc)}
    return {"status": "healthy", "latencyMs": round(latency * 1000, 1)}


def check_memory(memory: MemorySnapshot) -> dict[str, Any]:
    """Grade heap usage against the limit: degraded above 85 %, unhealthy above 95 %."""
    usage = memory.usage_percent
    if usage > MEMORY_UNHEALTHY_PERCENT:
        status = "unhealthy"
    elif usage > MEMORY_DEGRADED_PERCENT:
        status = "degraded"
    else:
        status = "healthy"
    return {
        "status": status,
        "heapUsedMB": round(memory.heap_used / MEBIBYTE, 1),
        "heapTotalMB": round(memory.heap_total / MEBIBYTE, 1),
        "heapLimitMB": round(memory.heap_limit / MEBIBYTE, 1),
        "rssMB": round(memory.resident / MEBIBYTE, 1),
        "usagePercent": round(usage, 1),
    }


def _now() -> str:
    return iso(datetime.now(UTC))


async def health(request: Request) -> Response:
    """``GET /health``: overall status with database, memory and Instagram checks."""
    context = context_of(request)
    service = context.service
    instagram_ms = service.rng.lognormvariate(0, 0.3) * INSTAGRAM_MEDIAN_MS
    checks = {
        "database": await check_database(context),
        "memory": check_memory(service.figures().memory),
        "instagram": {"status": "healthy", "latencyMs": round(instagram_ms, 1)},
    }
    statuses = {check["status"] for check in checks.values()}
    overall = next(
        (level for level in ("unhealthy", "degraded") if level in statuses), "healthy"
    )
    body = {
        "status": overall,
        "timestamp": _now(),
        "uptime": round(service.uptime(), 3),
        "version": service.version,
        "environment": "production",
        "checks": checks,
    }
    return JSONResponse(body, status_code=503 if overall == "unhealthy" else 200)


async def liveness(request: Request) -> Response:
    """``GET /healthz``: the process is up, whatever its dependencies do."""
    return JSONResponse({"status": "ok", "timestamp": _now()})


async def readiness(request: Request) -> Response:
    """``GET /readyz``: ready unless the database or memory check fails."""
    context = context_of(request)
    database = await check_database(context)
    memory = check_memory(context.service.figures().memory)
    grade = {"healthy": "pass", "degraded": "warn", "unhealthy": "fail"}
    checks: dict[str, dict[str, Any]] = {
        "database": {**database, "status": grade[database["status"]]},
        "memory": {
            "status": grade[memory["status"]],
            "usagePercent": memory["usagePercent"],
        },
    }
    ready = all(check["status"] != "fail" for check in checks.values())
    body = {
        "status": "ready" if ready else "not_ready",
        "timestamp": _now(),
        "checks": checks,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


async def database_health(request: Request) -> Response:
    """``GET /health/database``: connectivity, pool figures and query latency."""
    context = context_of(request)
    database = await check_database(context)
    pool = context.service.figures().pool
    body: dict[str, Any] = {
        "status": database["status"],
        "pool": {
            "total": pool.total,
            "idle": pool.idle,
            "waiting": pool.waiting,
            "max": pool.max,
        },
        "queryLatencyMs": database["latencyMs"],
    }
    if "error" in database:
        body["error"] = database["error"]
    healthy = database["status"] == "healthy"
    return JSONResponse(body, status_code=200 if healthy else 503)


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
