"""Fault scenarios of the simulated VeeFore service, one registry entry each.

Adding a scenario means adding one ``Scenario`` to ``SCENARIOS``, plus code only when
it needs a knob that no scenario has yet. The data types live in
``veerunbook.simulator.model`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from veerunbook.simulator.model import (
    AttackPlan,
    ErrorSignature,
    Pause,
    ReleaseDefect,
    RouteFailure,
    Scenario,
)
from veerunbook.simulator.signatures import (
    ANALYTICS_RANGE_ERROR,
    BUFFER_ALLOCATION_FAILED,
    CONNECTION_REFUSED,
    GRAPH_API_ERROR,
    GRAPH_API_UNAVAILABLE,
    MAINTENANCE_PAGE,
    POOL_CHECKOUT_TIMEOUT,
    PUBLISH_TYPE_ERROR,
)

__all__ = [
    "SCENARIOS",
    "ErrorSignature",
    "RouteFailure",
    "Scenario",
    "describe_scenarios",
    "get_scenario",
]

# pg-pool's connectionTimeoutMillis in the application's pool configuration.
POOL_CHECKOUT_TIMEOUT_SECONDS = 3.0

# A request to /healthz in the broken-health scenario hangs this long, longer than
# any probe's timeout.
LIVENESS_HANG_SECONDS = 30.0

AUTHENTICATED_ROUTES = (
    "GET /api/user",
    "GET /api/posts",
    "POST /api/posts/schedule",
    "POST /api/instagram/publish",
    "GET /api/dashboard/analytics",
)

_HEALTHY = Scenario(
    name="healthy",
    summary="Normal operation: every check passes and the API answers quickly.",
    symptoms=(
        "/health answers 200 healthy and /readyz answers 200 ready.",
        "The 5xx error rate stays below 0.5 %.",
        "API p95 latency stays under 300 ms.",
        "The connection pool uses a few of its 20 connections.",
    ),
    diagnosis=(
        "No incident: the service is healthy, so treat the alert as a false "
        "positive and check the monitoring that raised it."
    ),
)

_DB_OUTAGE = Scenario(
    name="db-outage",
    summary="The PostgreSQL server refuses every connection.",
    symptoms=(
        "/health answers 503 unhealthy with the database check failing.",
        "/readyz answers 503 while /healthz still answers 200.",
        "/health/database answers 503 with 'connect ECONNREFUSED 192.0.2.10:5432'.",
        "Every route that reads or writes data answers 503.",
        "Error logs repeat the ECONNREFUSED error with its stack.",
        "The pool gauges drop to zero connections.",
    ),
    diagnosis=(
        "Database outage: the application runs but cannot reach PostgreSQL. Check "
        "the database server and DATABASE_URL, because restarting the application "
        "will not help."
    ),
    database_error=CONNECTION_REFUSED,
    pool_in_use=0.0,
)

_ERROR_SPIKE = Scenario(
    name="error-spike",
    summary="Defects in two handlers make about a quarter of user API requests fail.",
    symptoms=(
        "Health checks pass and the database answers normally.",
        "About 25 % of user API requests answer 500, concentrated on "
        "POST /api/instagram/publish and GET /api/dashboard/analytics.",
        "Error logs fall into two signatures: a TypeError in "
        "InstagramPublisher.createMediaContainer and a RangeError in "
        "buildAnalyticsWindow.",
    ),
    diagnosis=(
        "Application error spike caused by code defects in two handlers, not by "
        "infrastructure. The runbook's critical alert (error rate above 5 % for 2 "
        "minutes) fires. Review the latest deploy, then roll back or fix forward."
    ),
    route_failures={
        "POST /api/instagram/publish": RouteFailure(0.75, 500, PUBLISH_TYPE_ERROR),
        "GET /api/dashboard/analytics": RouteFailure(0.70, 500, ANALYTICS_RANGE_ERROR),
    },
)

_POOL_EXHAUSTION = Scenario(
    name="pool-exhaustion",
    summary="Leaked checkouts hold all 20 node-postgres pool connections.",
    symptoms=(
        "/health/database answers 200 degraded: pool total 20, idle 0, max 20 "
        "and 10 or more clients waiting.",
        'database_connections{state="active"} is 20 of database_connections_max '
        '20 (100 % utilisation) and database_connections{state="waiting"} is 10 '
        "or more.",
        "About 25 % of user API requests answer 503 after about 3 s.",
        "Error logs repeat 'timeout exceeded when trying to connect' from pg-pool.",
        "/readyz still answers 200, with the database check at warn.",
    ),
    diagnosis=(
        "Connection pool exhaustion caused by a connection leak: handlers check "
        "connections out and never release them, while PostgreSQL itself is "
        "healthy. Restart the application to free the pool, then fix the release "
        "path (release the client in a finally block)."
    ),
    database_route_failure=RouteFailure(
        0.25, 503, POOL_CHECKOUT_TIMEOUT, latency_seconds=POOL_CHECKOUT_TIMEOUT_SECONDS
    ),
    latency_scale=2.0,
    pool_in_use=1.0,
    pool_waiting=10,
)

_SLOW = Scenario(
    name="slow",
    summary="Every user route answers about 12 times slower, without errors.",
    symptoms=(
        "User API p95 latency is above 2 s (the runbook's warning alert is p95 "
        "above 2000 ms for 5 minutes).",
        "The 5xx error rate stays below 0.5 %.",
        "/api/audit/performance reports LCP above 4000 ms and API p95 above 2000 ms.",
        "Health checks pass.",
    ),
    diagnosis=(
        "Performance degradation without failures: check slow queries, pool "
        "utilisation and recent changes, and add caching or capacity. Rolling back "
        "helps only if a deploy preceded the slowdown."
    ),
    # 12.5 puts the user routes' p95 near 2.3 s, clear of the 2 s alert threshold.
    latency_scale=12.5,
)

_ATTACK = Scenario(
    name="attack",
    summary="A credential-stuffing burst from documentation-range addresses.",
    symptoms=(
        "/api/audit/security lists 40 or more high-severity failed_login events "
        "in the last minute, from 203.0.113.x and 198.51.100.x addresses.",
        "The rate limiter blocks more than 10 addresses a minute: blockedIps "
        "entries have recent blockedAt times and rateLimiting.hits grows.",
        "auth_failed_logins_total and security_blocked_ips_total grow.",
        "One privilege_escalation_attempt event of high severity comes from an "
        "attacking address.",
        "POST /api/auth/login answers more 401 and 429; the 5xx rate stays low.",
    ),
    diagnosis=(
        "Security incident: a brute-force login attack that the rate limiter "
        "contains. Confirm the blocks, block any address that escapes them, and "
        "investigate the privilege escalation attempt (compromised tokens, admin "
        "operation logs) before closing."
    ),
    attack=AttackPlan(
        addresses_per_wave=14,
        concurrent=4,
        attempts_per_second=50.0,
        wave_interval_seconds=45.0,
    ),
)

_BAD_DEPLOY = Scenario(
    name="bad-deploy",
    summary="A new release fails on a quarter of authenticated requests.",
    symptoms=(
        "/api/deployments shows a new version, deployed moments ago, as current.",
        "About 20 % of user API requests answer 500, spread over every "
        "authenticated route.",
        "Error logs carry one TypeError in checkPlanLimits whose stack names the "
        "new release.",
        "Health checks pass.",
    ),
    diagnosis=(
        "Bad deploy: the defect arrived with the newest release. Roll back to the "
        "previous version, which restores normal behaviour, then fix forward."
    ),
    release_defect=ReleaseDefect(
        routes=AUTHENTICATED_ROUTES,
        probability=0.25,
        status_code=500,
        error_type="TypeError",
        message="Cannot read properties of undefined (reading 'tier')",
        frame_function="checkPlanLimits",
        frame_file="middleware/planLimits.js:31:27",
    ),
)

_DATA_CORRUPTION = Scenario(
    name="data-corruption",
    summary="Twelve payments rows were changed behind the application's back.",
    symptoms=(
        "/health answers 200 degraded with the dataIntegrity check failing.",
        "/health/database reports integrity fail: '12 payments rows fail "
        "validation (checksum mismatch)'.",
        "The db-validate operation exits 1 and lists the rows; some amounts are "
        "negative.",
    ),
    diagnosis=(
        "Data corruption: take an emergency backup of the current state, restore "
        "the last good backup, validate, and resume traffic gradually."
    ),
    corrupt_payments=12,
)

_INTEGRATION_DOWN = Scenario(
    name="integration-down",
    summary="The Instagram Graph API answers 503, so publishing fails.",
    symptoms=(
        "/health answers 200 degraded with the instagram check failing: "
        f"'{GRAPH_API_UNAVAILABLE}'.",
        "POST /api/instagram/publish answers 502 with the upstream error, dry "
        "runs included.",
        "Error logs repeat InstagramApiError; other routes work.",
    ),
    diagnosis=(
        "Third-party outage: the Instagram integration is down (P1 in the "
        "runbook). Check the provider's status page, pause scheduled publishing "
        "and tell users; neither a rollback nor a restart helps."
    ),
    route_failures={
        "POST /api/instagram/publish": RouteFailure(
            1.0,
            502,
            GRAPH_API_ERROR,
            public_message=f"Instagram Graph API error: {GRAPH_API_UNAVAILABLE}",
        ),
    },
    instagram_error=GRAPH_API_UNAVAILABLE,
)

_MEMORY_PRESSURE = Scenario(
    name="memory-pressure",
    summary="The V8 heap sits near 92 % of its limit and resident memory grows.",
    symptoms=(
        "nodejs_heap_size_used_bytes is about 92 % of nodejs_heap_size_limit_bytes "
        "(the runbook's warning alert is memory above 85 % for 10 minutes).",
        "process_resident_memory_bytes rises steadily.",
        "/health answers 200 degraded with the memory check at warn.",
        "Latency is about 1.5 times normal with garbage-collection pauses; few "
        "requests fail.",
    ),
    diagnosis=(
        "Memory pressure, probably a leak: capture a heap snapshot, then restart "
        "the application before it runs out of heap, and find the leak."
    ),
    route_failures={
        "GET /api/dashboard/analytics": RouteFailure(
            0.02, 500, BUFFER_ALLOCATION_FAILED
        ),
    },
    latency_scale=1.5,
    pause=Pause(probability=0.08, min_seconds=0.15, max_seconds=0.45),
    heap_used_ratio=0.92,
    resident_growth_bytes_per_second=2 * 1024 * 1024,
)

_BROKEN_HEALTH = Scenario(
    name="broken-health",
    summary="The health endpoints lie while the service itself works.",
    symptoms=(
        "/health answers 200 with an HTML maintenance page instead of JSON.",
        f"/healthz hangs for {LIVENESS_HANG_SECONDS:g} s, so probes time out.",
        "/readyz, /health/database, the metrics and every user route are healthy.",
    ),
    diagnosis=(
        "Monitoring failure, not a service outage: the service works but its "
        "health endpoints are broken. Fix the endpoints or the proxy in front of "
        "them, and do not restart or roll back the service."
    ),
    route_hangs={"GET /healthz": LIVENESS_HANG_SECONDS},
    health_page=MAINTENANCE_PAGE,
)

SCENARIOS: Mapping[str, Scenario] = MappingProxyType(
    {
        scenario.name: scenario
        for scenario in (
            _HEALTHY,
            _DB_OUTAGE,
            _ERROR_SPIKE,
            _POOL_EXHAUSTION,
            _SLOW,
            _ATTACK,
            _BAD_DEPLOY,
            _DATA_CORRUPTION,
            _INTEGRATION_DOWN,
            _MEMORY_PRESSURE,
            _BROKEN_HEALTH,
        )
    }
)


def get_scenario(name: str) -> Scenario:
    """Return the registered scenario called ``name``; raise ValueError if unknown."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"unknown scenario {name!r}; choose one of: {known}") from None


def describe_scenarios() -> list[dict[str, object]]:
    """List every scenario's name, summary, symptoms and diagnosis, sorted by name."""
    return [
        {
            "name": scenario.name,
            "summary": scenario.summary,
            "symptoms": list(scenario.symptoms),
            "diagnosis": scenario.diagnosis,
        }
        for scenario in sorted(SCENARIOS.values(), key=lambda item: item.name)
    ]
