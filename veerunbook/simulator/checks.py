"""The component checks behind the simulated health endpoints.

Each check returns a JSON object whose ``status`` is ``pass``, ``warn``, ``fail`` or
``skip``, the words of the IETF health check draft. The endpoints sum them up in the
words an Express health route uses: ``healthy``, ``degraded`` or ``unhealthy``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import Mapping
from typing import Any

from veerunbook.simulator.accounting import RequestContext
from veerunbook.simulator.behaviour import (
    ROUTES_BY_KEY,
    MemorySnapshot,
    PoolSnapshot,
    sample_latency,
)
from veerunbook.simulator.integrity import summarise_findings
from veerunbook.simulator.responses import MAX_REAL_DELAY_SECONDS

logger = logging.getLogger("veerunbook.simulator")

MEBIBYTE = 1024 * 1024
# The runbook's warning alert fires on memory usage above 85 %.
MEMORY_WARN_PERCENT = 85.0
MEMORY_FAIL_PERCENT = 95.0
DATABASE_ROUTE = ROUTES_BY_KEY["GET /health/database"]
INSTAGRAM_MEDIAN_MS = 90.0

# A failing check in this set makes the service unhealthy; any other makes it
# degraded, because the service still serves most requests without it.
CRITICAL_CHECKS = frozenset({"database", "memory"})


async def check_database(context: RequestContext, pool: PoolSnapshot) -> dict[str, Any]:
    """Query the database as the health checks do; set the context error on failure.

    The check warns when every pool connection is checked out and clients wait.
    """
    scenario = context.scenario
    if scenario.database_error is not None:
        context.error = scenario.database_error
        return {
            "status": "fail",
            "latencyMs": None,
            "error": scenario.database_error.message,
        }
    latency = sample_latency(DATABASE_ROUTE, scenario, context.service.rng)
    await asyncio.sleep(min(latency, MAX_REAL_DELAY_SECONDS))
    try:
        context.service.store.ping()
    except sqlite3.Error as exc:
        logger.warning("simulated database check failed: %s", exc)
        return {"status": "fail", "latencyMs": None, "error": str(exc)}
    check: dict[str, Any] = {"status": "pass", "latencyMs": round(latency * 1000, 1)}
    if pool.waiting > 0 and pool.idle == 0:
        check["status"] = "warn"
        check["detail"] = (
            f"pool exhausted: {pool.active} of {pool.max} connections in use, "
            f"{pool.waiting} clients waiting"
        )
    return check


def check_memory(memory: MemorySnapshot) -> dict[str, Any]:
    """Grade heap usage against the limit: warn above 85 %, fail above 95 %."""
    usage = memory.usage_percent
    if usage > MEMORY_FAIL_PERCENT:
        status = "fail"
    elif usage > MEMORY_WARN_PERCENT:
        status = "warn"
    else:
        status = "pass"
    return {
        "status": status,
        "heapUsedMB": round(memory.heap_used / MEBIBYTE, 1),
        "heapTotalMB": round(memory.heap_total / MEBIBYTE, 1),
        "heapLimitMB": round(memory.heap_limit / MEBIBYTE, 1),
        "rssMB": round(memory.resident / MEBIBYTE, 1),
        "heapUsedPercent": round(usage, 1),
    }


def check_integrity(context: RequestContext) -> dict[str, Any]:
    """Validate the payments rows; skip when the database is unreachable."""
    if not context.scenario.database_reachable:
        return {"status": "skip", "detail": "database unreachable"}
    try:
        findings, checked = context.service.store.validate_payments()
    except sqlite3.Error as exc:
        logger.warning("simulated integrity check failed: %s", exc)
        return {"status": "fail", "detail": f"validation failed: {exc}"}
    status = "fail" if findings else "pass"
    return {"status": status, "detail": summarise_findings(findings, checked)}


def check_instagram(context: RequestContext, rng: random.Random) -> dict[str, Any]:
    """Report the Graph API as reachable, unless the scenario makes it fail."""
    failure = context.scenario.instagram_error
    if failure is not None:
        return {"status": "fail", "detail": failure}
    latency_ms = rng.lognormvariate(0, 0.3) * INSTAGRAM_MEDIAN_MS
    return {"status": "pass", "latencyMs": round(latency_ms, 1)}


def overall_status(checks: Mapping[str, Mapping[str, Any]]) -> str:
    """Sum the checks up: unhealthy, degraded or healthy."""
    statuses = {name: check["status"] for name, check in checks.items()}
    if any(statuses[name] == "fail" for name in CRITICAL_CHECKS & set(statuses)):
        return "unhealthy"
    if any(status in ("warn", "fail") for status in statuses.values()):
        return "degraded"
    return "healthy"
