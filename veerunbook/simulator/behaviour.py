"""Routes of the simulated service and how a scenario shapes their responses.

The request handlers and the background traffic both call ``decide_outcome``, so a
scenario produces the same status mix and latency on real and simulated requests.
The pool and memory figures are models, not measurements of this Python process.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from veerunbook.simulator.model import ErrorSignature, RouteFailure, Scenario

POOL_MAX = 20
"""Size of the simulated node-postgres pool (its ``max`` option)."""

HEAP_LIMIT_BYTES = 512 * 1024 * 1024
"""V8 heap limit, as set by ``--max-old-space-size=512``."""

RESIDENT_BASE_BYTES = 96 * 1024 * 1024
"""Resident memory outside the V8 heap: code, stacks and Buffers."""

RESIDENT_GROWTH_CAP_BYTES = 1024 * 1024 * 1024
"""Maximum growth of resident memory above its base in a leaking scenario."""

# Log-normal spread of request latency around each route's median: with 0.35 the
# 95th percentile is about 1.8 times the median.
LATENCY_SIGMA = 0.35


@dataclass(frozen=True)
class Route:
    """One endpoint: its latency model, dependencies and share of background traffic.

    ``client_error_rate`` is the share of background requests that receive
    ``client_error_status`` (a wrong password, an invalid form) when nothing fails.
    """

    method: str
    path: str
    median_ms: float
    needs_database: bool
    traffic_weight: float = 0.0
    success_status: int = 200
    client_error_rate: float = 0.0
    client_error_status: int = 400

    @property
    def key(self) -> str:
        """The route as ``"METHOD /path"``, the key of ``Scenario.route_failures``."""
        return f"{self.method} {self.path}"


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", 4, needs_database=True, traffic_weight=0.01),
    Route("GET", "/healthz", 1, needs_database=False, traffic_weight=0.02),
    Route("GET", "/readyz", 3, needs_database=True, traffic_weight=0.02),
    Route("GET", "/health/database", 3, needs_database=True),
    Route("GET", "/health/logs", 0, needs_database=False),
    Route("GET", "/metrics", 0, needs_database=False),
    Route("GET", "/api/audit/security", 0, needs_database=False),
    Route("GET", "/api/audit/performance", 0, needs_database=False),
    Route("POST", "/admin/security/block-ip", 0, needs_database=False),
    Route("GET", "/api/deployments", 0, needs_database=True),
    Route("POST", "/admin/scenario", 0, needs_database=False),
    Route("POST", "/admin/deploy/rollback", 0, needs_database=True),
    Route("POST", "/admin/traffic", 0, needs_database=False),
    Route(
        "POST",
        "/api/auth/login",
        60,
        needs_database=True,
        traffic_weight=0.10,
        client_error_rate=0.03,
        client_error_status=401,
    ),
    Route("GET", "/api/user", 25, needs_database=True, traffic_weight=0.22),
    Route("GET", "/api/posts", 40, needs_database=True, traffic_weight=0.18),
    Route(
        "POST",
        "/api/posts/schedule",
        55,
        needs_database=True,
        traffic_weight=0.10,
        success_status=201,
        client_error_rate=0.02,
    ),
    Route(
        "POST", "/api/instagram/publish", 140, needs_database=True, traffic_weight=0.15
    ),
    Route(
        "GET", "/api/dashboard/analytics", 110, needs_database=True, traffic_weight=0.20
    ),
)

ROUTES_BY_KEY: Mapping[str, Route] = MappingProxyType({r.key: r for r in ROUTES})

USER_API_PATHS = frozenset(
    route.path
    for route in ROUTES
    if route.path.startswith("/api/") and route.traffic_weight > 0
)
"""Paths of the user flows, whose latency the performance audit reports."""

EXEMPT_FROM_BLOCKING = frozenset(
    {"/health", "/healthz", "/readyz", "/health/database", "/health/logs", "/metrics"}
)
"""Paths that blocked IP addresses can still reach: health checks and metrics."""


@dataclass(frozen=True)
class Outcome:
    """The status and latency a scenario assigns to one request, with its error."""

    status_code: int
    latency_seconds: float
    error: ErrorSignature | None = None
    public_message: str | None = None


@dataclass(frozen=True)
class PoolSnapshot:
    """Connection pool figures as node-postgres reports them."""

    total: int
    idle: int
    waiting: int
    max: int

    @property
    def active(self) -> int:
        """Connections checked out by a query."""
        return self.total - self.idle


@dataclass(frozen=True)
class MemorySnapshot:
    """V8 heap and resident memory, in bytes."""

    heap_used: int
    heap_total: int
    heap_limit: int
    resident: int

    @property
    def usage_percent(self) -> float:
        """Heap in use as a percentage of the heap limit."""
        return 100.0 * self.heap_used / self.heap_limit


NO_FAILURES: Mapping[str, RouteFailure] = MappingProxyType({})


def sample_latency(route: Route, scenario: Scenario, rng: random.Random) -> float:
    """Draw one latency in seconds for ``route`` under ``scenario``, pauses included."""
    if route.median_ms <= 0:
        return 0.0
    median = route.median_ms * scenario.latency_scale
    latency = rng.lognormvariate(math.log(median), LATENCY_SIGMA) / 1000.0
    pause = scenario.pause
    if pause is not None and rng.random() < pause.probability:
        latency += rng.uniform(pause.min_seconds, pause.max_seconds)
    return latency


def decide_outcome(
    route: Route,
    scenario: Scenario,
    rng: random.Random,
    release: Mapping[str, RouteFailure] = NO_FAILURES,
) -> Outcome:
    """Decide whether a request to ``route`` fails under ``scenario``, and how slowly.

    ``release`` contains the failures of the deployed version. A refused database
    connection fails fast, so it takes a few milliseconds rather than the route's
    usual latency. A hanging route responds normally, but only after the hang.
    """
    if route.needs_database and scenario.database_error is not None:
        latency = rng.uniform(0.002, 0.008)
        return Outcome(503, latency, scenario.database_error)
    hang = scenario.route_hangs.get(route.key)
    if hang is not None:
        return Outcome(route.success_status, hang)

    latency = sample_latency(route, scenario, rng)
    for failure in _candidate_failures(route, scenario, release):
        if rng.random() >= failure.probability:
            continue
        if failure.latency_seconds is not None:
            latency = failure.latency_seconds * rng.uniform(1.0, 1.01)
        return Outcome(
            failure.status_code, latency, failure.error, failure.public_message
        )
    return Outcome(route.success_status, latency)


def _candidate_failures(
    route: Route, scenario: Scenario, release: Mapping[str, RouteFailure]
) -> list[RouteFailure]:
    candidates = [
        failure
        for failure in (
            scenario.route_failures.get(route.key),
            release.get(route.key),
        )
        if failure is not None
    ]
    pooled = scenario.database_route_failure
    if pooled is not None and route.needs_database and route.path in USER_API_PATHS:
        candidates.append(pooled)
    return candidates


def sample_pool(scenario: Scenario, rng: random.Random) -> PoolSnapshot:
    """Draw the pool figures: busy connections around ``pool_in_use``, a few idle.

    A scenario with waiting clients has every connection checked out.
    """
    if not scenario.database_reachable:
        return PoolSnapshot(total=0, idle=0, waiting=0, max=POOL_MAX)
    if scenario.pool_waiting > 0:
        waiting = scenario.pool_waiting + rng.randint(0, 5)
        return PoolSnapshot(total=POOL_MAX, idle=0, waiting=waiting, max=POOL_MAX)
    busy = round(POOL_MAX * scenario.pool_in_use * rng.uniform(0.7, 1.3))
    active = min(max(busy, 1), POOL_MAX)
    idle = min(POOL_MAX - active, 4)
    return PoolSnapshot(total=active + idle, idle=idle, waiting=0, max=POOL_MAX)


def sample_memory(
    scenario: Scenario, rng: random.Random, active_seconds: float
) -> MemorySnapshot:
    """Draw heap figures around ``heap_used_ratio`` of the heap limit.

    Resident memory grows with ``active_seconds``, the time since the scenario
    became active, at the scenario's growth rate. It carries no random spread, so
    two scrapes show the growth.
    """
    ratio = scenario.heap_used_ratio * rng.uniform(0.97, 1.03)
    heap_used = int(HEAP_LIMIT_BYTES * min(ratio, 1.0))
    heap_total = min(int(heap_used * 1.25), HEAP_LIMIT_BYTES)
    nominal_total = min(
        int(HEAP_LIMIT_BYTES * scenario.heap_used_ratio * 1.25), HEAP_LIMIT_BYTES
    )
    growth = scenario.resident_growth_bytes_per_second * max(active_seconds, 0.0)
    resident = (
        nominal_total
        + RESIDENT_BASE_BYTES
        + int(min(growth, RESIDENT_GROWTH_CAP_BYTES))
    )
    return MemorySnapshot(heap_used, heap_total, HEAP_LIMIT_BYTES, resident)
