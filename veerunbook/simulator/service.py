"""The simulated service's shared state and its request accounting.

Real requests (through the ASGI middleware) and background traffic (from the
traffic thread) both end in ``SimulatedService.record_request``, which counts the
request in the metrics and appends its pino record.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections import OrderedDict

from prometheus_client import CollectorRegistry

from veerunbook.simulator.behaviour import sample_memory, sample_pool
from veerunbook.simulator.logs import LEVELS, LogBook, LogEntry
from veerunbook.simulator.scenarios import ErrorSignature, Scenario
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
        self.version = store.current_version()
        self.rng = random.Random(seed)
        self.security = SecurityState()
        self.logbook = LogBook()
        self.stats = RequestStats()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(
            ServiceCollector(self.stats, self.security, self.figures)
        )
        self._scenario = scenario
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, int] = OrderedDict()

    @property
    def scenario(self) -> Scenario:
        """The active scenario; a request reads it once and keeps that value."""
        return self._scenario

    def set_scenario(self, scenario: Scenario) -> None:
        """Switch the active scenario; requests already running are unaffected."""
        with self._lock:
            previous, self._scenario = self._scenario, scenario
        logger.info(
            "simulated target switched scenario from %s to %s",
            previous.name,
            scenario.name,
        )
        self.log_event(LEVELS["info"], f"scenario switched to {scenario.name}")

    def figures(self) -> ProcessFigures:
        """Draw the current pool and memory figures for health checks and metrics."""
        scenario = self._scenario
        return ProcessFigures(
            pool=sample_pool(scenario, self.rng),
            memory=sample_memory(scenario, self.rng),
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
