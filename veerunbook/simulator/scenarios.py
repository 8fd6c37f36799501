"""Fault scenarios of the simulated VeeFore service, one registry entry each.

A scenario is data: what it is called, what a responder observes, what they should
conclude, and the knobs that the request handlers, the health checks and the background
traffic read. Adding a scenario means adding one ``Scenario`` to ``SCENARIOS``, plus
code only when it needs a knob that no scenario has yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class ErrorSignature:
    """A Node.js error as pino serialises it: class name, message and stack frames."""

    type: str
    message: str
    frames: tuple[str, ...]

    @property
    def stack(self) -> str:
        """The stack text in V8's format: the first line, then one ``at`` per frame."""
        lines = [f"{self.type}: {self.message}"]
        lines.extend(f"    at {frame}" for frame in self.frames)
        return "\n".join(lines)


@dataclass(frozen=True)
class RouteFailure:
    """A fault injected into one route: how often, with what status and error."""

    probability: float
    status_code: int
    error: ErrorSignature


@dataclass(frozen=True)
class Scenario:
    """One state of the simulated service and the diagnosis it calls for.

    ``route_failures`` is keyed by ``"METHOD /path"``. ``latency_scale`` multiplies
    every route's median latency. ``pool_in_use`` is the fraction of the 20 pool
    connections busy at a time, and ``heap_used_ratio`` the fraction of the V8 heap
    limit in use.
    """

    name: str
    summary: str
    symptoms: tuple[str, ...]
    diagnosis: str
    database_error: ErrorSignature | None = None
    route_failures: Mapping[str, RouteFailure] = field(default_factory=dict)
    latency_scale: float = 1.0
    pool_in_use: float = 0.15
    heap_used_ratio: float = 0.45

    @property
    def database_reachable(self) -> bool:
        """Whether the application can open connections to its database."""
        return self.database_error is None


# node-postgres surfaces a refused TCP connection as a plain Error from Node's net
# module; the address is a documentation-range stand-in for the database host.
CONNECTION_REFUSED = ErrorSignature(
    type="Error",
    message="connect ECONNREFUSED 192.0.2.10:5432",
    frames=("TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)",),
)

PUBLISH_TYPE_ERROR = ErrorSignature(
    type="TypeError",
    message="Cannot read properties of undefined (reading 'id')",
    frames=(
        "InstagramPublisher.createMediaContainer "
        "(/app/dist/services/instagramPublisher.js:118:42)",
        "async InstagramPublisher.publish "
        "(/app/dist/services/instagramPublisher.js:64:23)",
        "async /app/dist/routes/instagram.js:41:20",
    ),
)

ANALYTICS_RANGE_ERROR = ErrorSignature(
    type="RangeError",
    message="Invalid time value",
    frames=(
        "Date.toISOString (<anonymous>)",
        "buildAnalyticsWindow (/app/dist/routes/analytics.js:57:33)",
        "async /app/dist/routes/analytics.js:22:18",
    ),
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

SCENARIOS: Mapping[str, Scenario] = MappingProxyType(
    {scenario.name: scenario for scenario in (_HEALTHY, _DB_OUTAGE, _ERROR_SPIKE)}
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
