"""The data types a fault scenario is made of.

A ``Scenario`` is data: what it is called, what a responder observes, what they should
conclude, and the knobs that the request handlers, the health checks, the background
traffic and the activation effects read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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
    """A fault injected into one route: how often, with what status and error.

    ``latency_seconds`` replaces the route's latency for failed requests, as for a
    pool checkout that times out. ``public_message`` is the response body's
    ``error`` text, for handlers that pass an upstream error on; without it the
    body carries the status phrase only.
    """

    probability: float
    status_code: int
    error: ErrorSignature
    latency_seconds: float | None = None
    public_message: str | None = None


@dataclass(frozen=True)
class Pause:
    """Stop-the-world pauses, such as V8's garbage collector, added to some requests."""

    probability: float
    min_seconds: float
    max_seconds: float


@dataclass(frozen=True)
class ReleaseDefect:
    """A defect shipped in a release that the scenario deploys when it becomes active.

    The failures belong to the deployed version, not to the scenario, so rolling
    back to the previous version removes them while the scenario stays active.
    """

    routes: tuple[str, ...]
    probability: float
    status_code: int
    error_type: str
    message: str
    frame_function: str
    frame_file: str

    def failures(self, version: str) -> Mapping[str, RouteFailure]:
        """Build the route failures of ``version``; its stack names the release."""
        error = ErrorSignature(
            type=self.error_type,
            message=self.message,
            frames=(
                f"{self.frame_function} "
                f"(/srv/veefore/releases/{version}/dist/{self.frame_file})",
                "Layer.handle [as handle_request] "
                "(/app/node_modules/express/lib/router/layer.js:95:5)",
            ),
        )
        failure = RouteFailure(self.probability, self.status_code, error)
        return {route: failure for route in self.routes}


@dataclass(frozen=True)
class AttackPlan:
    """A credential-stuffing burst that the login rate limiter ends by blocking.

    Each wave uses ``addresses_per_wave`` fresh addresses, ``concurrent`` of them at
    a time. An address tries passwords until the limiter blocks it, then the next one
    of the wave takes its place. A new wave starts ``wave_interval_seconds`` after the
    previous one started. The first wave also makes one privilege escalation attempt.
    """

    addresses_per_wave: int
    concurrent: int
    attempts_per_second: float
    wave_interval_seconds: float


@dataclass(frozen=True)
class Scenario:
    """One state of the simulated service and the diagnosis it calls for.

    ``route_failures`` and ``route_hangs`` are keyed by ``"METHOD /path"``.
    ``database_route_failure`` applies to every user route that needs the database.
    ``latency_scale`` multiplies every route's median latency. ``pool_in_use`` is
    the fraction of the 20 pool connections busy at a time, ``pool_waiting`` the
    least number of clients queued for one, and ``heap_used_ratio`` the fraction of
    the V8 heap limit in use. ``instagram_error`` fails the Instagram health check
    with that detail, and ``health_page`` replaces the ``/health`` JSON with HTML.
    ``release_defect``, ``corrupt_payments`` and ``attack`` act once, when the
    scenario becomes active, and their effects outlast it.
    """

    name: str
    summary: str
    symptoms: tuple[str, ...]
    diagnosis: str
    database_error: ErrorSignature | None = None
    route_failures: Mapping[str, RouteFailure] = field(default_factory=dict)
    database_route_failure: RouteFailure | None = None
    route_hangs: Mapping[str, float] = field(default_factory=dict)
    latency_scale: float = 1.0
    pause: Pause | None = None
    pool_in_use: float = 0.15
    pool_waiting: int = 0
    heap_used_ratio: float = 0.45
    resident_growth_bytes_per_second: float = 0.0
    instagram_error: str | None = None
    health_page: str | None = None
    release_defect: ReleaseDefect | None = None
    corrupt_payments: int = 0
    attack: AttackPlan | None = None

    @property
    def database_reachable(self) -> bool:
        """Whether the application can open connections to its database."""
        return self.database_error is None
