"""The credential-stuffing attack of the ``attack`` scenario, played in real time.

The traffic thread calls ``Attack.advance`` on every tick. Each attempt goes through
the same login limiter as a real request. Failed logins, rate-limit hits and
automatic blocks therefore appear in the security audit, the counters and the logs as
an attack on the real service would leave them. The requests never touch a socket.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from typing import TYPE_CHECKING

from veerunbook.simulator.behaviour import ROUTES_BY_KEY, sample_latency
from veerunbook.simulator.model import AttackPlan

if TYPE_CHECKING:
    from veerunbook.simulator.service import SimulatedService

# Attackers use the odd host numbers of two documentation ranges (RFC 5737), and the
# background traffic the even ones, so the two never share an address.
ATTACKER_ADDRESSES = tuple(
    f"{prefix}.{host}"
    for host in range(11, 255, 2)
    for prefix in ("203.0.113", "198.51.100")
)
# Account names from a leaked list, tried in turn: the seeded demo account among
# common role addresses, all under the reserved domain example.com (RFC 2606).
TRIED_USERS = (
    "admin@example.com",
    "ana.silva@example.com",
    "support@example.com",
    "billing@example.com",
    "info@example.com",
)
LOGIN_ROUTE = ROUTES_BY_KEY["POST /api/auth/login"]
ESCALATION_AFTER_ATTEMPTS = 5
ESCALATION_DETAIL = "user session token used on POST /admin/security/block-ip"


class Attack:
    """The progress of one ``AttackPlan``: waves, active addresses, attempt credit.

    Only the traffic thread calls ``advance``, so the state needs no lock.
    """

    def __init__(
        self,
        plan: AttackPlan,
        service: SimulatedService,
        rng: random.Random,
        now: float,
    ) -> None:
        self._plan = plan
        self._service = service
        self._rng = rng
        self._addresses = itertools.cycle(ATTACKER_ADDRESSES)
        self._waiting: deque[str] = deque()
        self._active: list[str] = []
        self._next_wave_at = now
        self._last = now
        self._credit = 0.0
        self._attempts = 0
        self._escalated = False

    def advance(self, now: float) -> None:
        """Make the attempts due since the last call, ``now`` in monotonic seconds."""
        if now >= self._next_wave_at:
            self._start_wave()
            self._next_wave_at += self._plan.wave_interval_seconds
        rate = self._plan.attempts_per_second
        # Cap the backlog at one second of attempts, as the background traffic does.
        self._credit = min(self._credit + (now - self._last) * rate, rate)
        self._last = now
        while self._credit >= 1.0 and self._active:
            self._credit -= 1.0
            self._attempt(self._active[self._attempts % len(self._active)])

    def _start_wave(self) -> None:
        security = self._service.security
        fresh: list[str] = []
        for address in itertools.islice(self._addresses, len(ATTACKER_ADDRESSES)):
            if not security.is_blocked(address):
                fresh.append(address)
            if len(fresh) == self._plan.addresses_per_wave:
                break
        self._waiting.extend(fresh)
        self._refill()

    def _refill(self) -> None:
        while self._waiting and len(self._active) < self._plan.concurrent:
            self._active.append(self._waiting.popleft())

    def _attempt(self, address: str) -> None:
        security = self._service.security
        self._attempts += 1
        if security.is_blocked(address):
            status = 403
        elif not security.login_allowed(address):
            status = 429
        else:
            user = TRIED_USERS[self._attempts % len(TRIED_USERS)]
            security.record_failed_login(address, user)
            status = 401
        if status != 401:
            self._active.remove(address)
            self._refill()
        self._record("POST", LOGIN_ROUTE.path, status, address)

        if not self._escalated and self._attempts >= ESCALATION_AFTER_ATTEMPTS:
            self._escalated = True
            security.record_event(
                "privilege_escalation_attempt", address, "high", ESCALATION_DETAIL
            )
            self._record("POST", "/admin/security/block-ip", 401, address)

    def _record(self, method: str, path: str, status: int, address: str) -> None:
        latency = sample_latency(LOGIN_ROUTE, self._service.scenario, self._rng)
        self._service.record_request(
            method,
            path,
            path,
            status,
            latency,
            correlation_id=f"corr_{self._rng.getrandbits(48):012x}",
            client_ip=address,
        )
