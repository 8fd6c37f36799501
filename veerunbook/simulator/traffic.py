"""Background traffic: simulated users calling the service at a bounded rate.

The requests never touch a socket or the database. Each one draws a route by its
traffic weight, a client address and an outcome from the active scenario, then goes
through ``SimulatedService.record_request`` like a real request, so counters,
histograms and logs keep moving when no client calls the service. The simulated
users pause while the traffic mode is anything but full. The same thread advances the
active scenario's attack, also when the user traffic rate is zero or users pause.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time

from veerunbook.simulator.behaviour import (
    EXEMPT_FROM_BLOCKING,
    ROUTES,
    Outcome,
    Route,
    decide_outcome,
)
from veerunbook.simulator.maintenance import FULL
from veerunbook.simulator.service import SimulatedService

logger = logging.getLogger("veerunbook.simulator")

TICK_SECONDS = 0.05
MAX_RATE = 2000.0
"""Highest accepted rate in requests per second. A simulated request cost about
20 microseconds on a 2-core test VM, so this bound keeps the thread near 4 % of a
core."""

# Simulated clients come from the documentation ranges of RFC 5737.
CLIENT_ADDRESSES = tuple(
    f"{prefix}.{host}"
    for prefix in ("198.51.100", "203.0.113")
    for host in range(10, 250, 6)
)

_WEIGHTED_ROUTES = tuple(route for route in ROUTES if route.traffic_weight > 0)
_CUMULATIVE_WEIGHTS = tuple(
    itertools.accumulate(route.traffic_weight for route in _WEIGHTED_ROUTES)
)


class TrafficGenerator:
    """A daemon thread that records ``rate`` simulated requests per second.

    The thread runs at every rate, because it also drives attacks.
    """

    def __init__(
        self, service: SimulatedService, rate: float, seed: int | None
    ) -> None:
        if not 0 <= rate <= MAX_RATE:
            raise ValueError(
                f"invalid traffic rate {rate}: use 0 to {MAX_RATE:g} requests/s"
            )
        self._service = service
        self._rate = rate
        self._rng = random.Random(None if seed is None else seed + 1)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="veefore-sim-traffic", daemon=True
        )

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop the thread; return False if it is still running after ``timeout`` s."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        credit = 0.0
        last = time.monotonic()
        while not self._stop.wait(TICK_SECONDS):
            now = time.monotonic()
            self._advance_attack(now)
            # Cap the backlog at one second of traffic, so a stalled thread does not
            # catch up with a burst.
            credit = min(credit + (now - last) * self._rate, max(self._rate, 1.0))
            last = now
            if self._service.traffic.mode() != FULL:
                credit = 0.0  # simulated users wait while the service is closed
            while credit >= 1.0:
                credit -= 1.0
                try:
                    self.emit_one()
                except Exception:
                    logger.exception("simulated request failed; traffic continues")

    def _advance_attack(self, now: float) -> None:
        attack = self._service.attack
        if attack is None:
            return
        try:
            attack.advance(now)
        except Exception:
            logger.exception("simulated attack step failed; the attack continues")

    def emit_one(self) -> None:
        """Draw and record one simulated request."""
        rng = self._rng
        route = rng.choices(_WEIGHTED_ROUTES, cum_weights=_CUMULATIVE_WEIGHTS)[0]
        client_ip = rng.choice(CLIENT_ADDRESSES)
        outcome = self._outcome(route, client_ip)
        self._service.record_request(
            route.method,
            route.path,
            route.path,
            outcome.status_code,
            outcome.latency_seconds,
            correlation_id=f"corr_{rng.getrandbits(48):012x}",
            client_ip=client_ip,
            error=outcome.error,
        )

    def _outcome(self, route: Route, client_ip: str) -> Outcome:
        service = self._service
        if (
            service.security.is_blocked(client_ip)
            and route.path not in EXEMPT_FROM_BLOCKING
        ):
            return Outcome(403, 0.001)
        release = service.release_failures()
        outcome = decide_outcome(route, service.scenario, self._rng, release)
        if outcome.error is not None or self._rng.random() >= route.client_error_rate:
            return outcome
        if route.client_error_status == 401:
            service.security.record_failed_login(client_ip)
        return Outcome(route.client_error_status, outcome.latency_seconds)
