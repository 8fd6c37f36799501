"""The simulated service's shared state and its request accounting.

Real requests (through the ASGI middleware) and background traffic (from the
traffic thread) both end in ``SimulatedService.record_request``, which counts the
request in the metrics and appends its pino record.

The deployed version and its defects are state of the service, not of the scenario:
a release that ``bad-deploy`` ships keeps failing until it is rolled back.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

from prometheus_client import CollectorRegistry

from veerunbook.simulator.attack import Attack
from veerunbook.simulator.behaviour import NO_FAILURES, sample_memory, sample_pool
from veerunbook.simulator.effects import apply_effects
from veerunbook.simulator.logs import LEVELS, LogBook, LogEntry
from veerunbook.simulator.maintenance import TrafficControl
from veerunbook.simulator.model import ErrorSignature, RouteFailure, Scenario
from veerunbook.simulator.security import SecurityState
from veerunbook.simulator.state import Store
from veerunbook.simulator.telemetry import (
    ProcessFigures,
    RequestStats,
    ServiceCollector,
)

logger = logging.getLogger("veerunbook.simulator")

SESSION_CAPACITY = 10_000


class SimulatedService:
    """Everything one simulated VeeFore instance keeps between requests."""

    def __init__(
        self,
        scenario: Scenario,
        store: Store,
        admin_token_env: str,
        seed: int | None,
    ) -> None:
        self.store = store
        self.admin_token_env = admin_token_env
        self.started_at = time.time()
        self.rng = random.Random(seed)
        self.security = SecurityState(ledger=store)
        self.traffic = TrafficControl(store.path.parent)
        self.logbook = LogBook()
        self.stats = RequestStats()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            ServiceCollector(self.stats, self.security, self.figures)
        )
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._switch_lock = threading.Lock()
        self._sessions: OrderedDict[str, int] = OrderedDict()
        self._releases: dict[str, Mapping[str, RouteFailure]] = {}
        self._scenario = scenario
        self._activated_at = time.time()
        self._attack = apply_effects(self, scenario)

    @property
    def scenario(self) -> Scenario:
        """The active scenario; a request reads it once and keeps that value."""
        return self._scenario

    @property
    def version(self) -> str:
        """The deployed version, reread when the database changes."""
        return self.store.current_version()

    @property
    def attack(self) -> Attack | None:
        """The attack the active scenario started, if any."""
        return self._attack

    def set_scenario(self, scenario: Scenario) -> None:
        """Switch the active scenario and apply its activation effects.

        Requests already running keep the scenario they started with. Switches
        are serialised, so effects apply in the order of the calls.
        """
        with self._switch_lock:
            previous, self._scenario = self._scenario, scenario
            self._activated_at = time.time()
            self._attack = apply_effects(self, scenario)
        logger.info(
            "simulated target switched scenario from %s to %s",
            previous.name,
            scenario.name,
        )
        self.log_event(LEVELS["info"], f"scenario switched to {scenario.name}")

    def register_release(
        self, version: str, failures: Mapping[str, RouteFailure]
    ) -> None:
        """Attach route failures to ``version``; they apply while it is deployed."""
        with self._lock:
            self._releases[version] = failures

    def release_failures(self) -> Mapping[str, RouteFailure]:
        """Return the route failures of the deployed version."""
        return self._releases.get(self.version, NO_FAILURES)

    def figures(self) -> ProcessFigures:
        """Draw the current pool and memory figures for health checks and metrics."""
        scenario = self._scenario
        active_seconds = time.time() - self._activated_at
        return ProcessFigures(
            pool=sample_pool(scenario, self.rng),
            memory=sample_memory(scenario, self.rng, active_seconds),
            start_time=self.started_at,
        )

    def uptime(self) -> float:
        """Seconds since the service started."""
        return time.time() - self.started_at

    def open_session(self, account_id: int) -> str:
        """Create a bearer token for ``account_id``, evicting the oldest if full."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[token] = account_id
            if len(self._sessions) > SESSION_CAPACITY:
                self._sessions.popitem(last=False)
        return token

    def session_account(self, token: str) -> int | None:
        """Return the account id a bearer token belongs to, or None."""
        with self._lock:
            return self._sessions.get(token)

    def record_request(
        self,
        method: str,
        endpoint: str,
        url: str,
        status: int,
        seconds: float,
        *,
        correlation_id: str,
        client_ip: str,
        error: ErrorSignature | None = None,
    ) -> None:
        """Count one finished request in the metrics and append its log record.

        ``endpoint`` is the route path used as the metric label; ``url`` is the
        request target as received, query string included.
        """
        self.stats.observe(method, endpoint, status, seconds)
        if status >= 500:
            level, message = LEVELS["error"], "request errored"
        elif status >= 400:
            level, message = LEVELS["warn"], "request completed"
        else:
            level, message = LEVELS["info"], "request completed"
        self.logbook.append(
            LogEntry(
                level=level,
                time_ms=int(time.time() * 1000),
                msg=message,
                correlation_id=correlation_id,
                method=method,
                url=url,
                remote_address=client_ip,
                status_code=status,
                response_time_ms=round(seconds * 1000, 1),
                error=error if status >= 500 else None,
            )
        )

    def log_event(self, level: int, message: str) -> None:
        """Append a log record that is not tied to a request."""
        entry = LogEntry(level=level, time_ms=int(time.time() * 1000), msg=message)
        self.logbook.append(entry)
