"""Security state of the simulated service: blocked addresses, events, login limits.

The login limiter follows express-rate-limit's defaults for a login route: at most
10 failed attempts per client address in a 15-minute window, then 429. An address
that reaches the limit is also blocked, except loopback addresses, which operators
use. From an address's fifth failure in the window on, failed logins count as high
severity, because a few typing mistakes never reach that many. A manual block of an
address that the limiter blocked replaces the automatic entry, so the block list
shows that an operator decided it.

High-severity events and blocks also go to an optional ``SecurityLedger``, the
database, so operations outside the process can audit them.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from veerunbook.simulator.seed import iso

EventType = Literal[
    "failed_login", "ip_blocked", "rate_limit_hit", "privilege_escalation_attempt"
]
Severity = Literal["low", "medium", "high"]

SEVERITY_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2}
LOGIN_LIMIT = 10
LOGIN_WINDOW_SECONDS = 900
HIGH_SEVERITY_FAILURES = 5
EVENT_CAPACITY = 2000
TRACKED_ADDRESS_CAPACITY = 10_000
# The reason of every block the login limiter makes starts with this.
AUTOMATIC_BLOCK_PREFIX = "rate limit exceeded:"


@dataclass(frozen=True)
class SecurityEvent:
    """One entry of the security audit trail."""

    time: float
    type: EventType
    ip: str
    severity: Severity
    detail: str
    user: str | None = None  # the account name a login request gave

    def to_json(self) -> dict[str, Any]:
        """Render the event as an ``/api/audit/security`` entry."""
        entry = {
            "time": iso(datetime.fromtimestamp(self.time, UTC)),
            "type": self.type,
            "ip": self.ip,
            "severity": self.severity,
            "detail": self.detail,
        }
        if self.user is not None:
            entry["user"] = self.user
        return entry


@dataclass(frozen=True)
class BlockedAddress:
    """A blocked client address with why and when it was blocked."""

    ip: str
    reason: str
    blocked_at: float

    def to_json(self) -> dict[str, Any]:
        """Render the entry as in ``blockedIps`` and the block-ip response."""
        return {
            "ip": self.ip,
            "reason": self.reason,
            "blockedAt": iso(datetime.fromtimestamp(self.blocked_at, UTC)),
        }


class SecurityLedger(Protocol):
    """Durable storage for high-severity events and blocked addresses."""

    def save_security_event(self, event: SecurityEvent) -> None:
        """Store one high-severity event."""

    def save_blocked_address(self, entry: BlockedAddress) -> None:
        """Store one newly blocked address."""


class SecurityState:
    """Thread-safe blocked addresses, audit events and security counters."""

    def __init__(self, ledger: SecurityLedger | None = None) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._blocked: dict[str, BlockedAddress] = {}
        self._events: deque[SecurityEvent] = deque(maxlen=EVENT_CAPACITY)
        self._failures: dict[str, deque[float]] = {}
        self.blocked_total = 0
        self.failed_logins_total = 0

    def is_blocked(self, ip: str) -> bool:
        """Return whether requests from ``ip`` are rejected."""
        return ip in self._blocked

    def block(self, ip: str, reason: str) -> tuple[BlockedAddress, bool]:
        """Block ``ip``; return its entry and whether it was blocked already.

        An automatic block of ``ip`` is replaced by this manual one, which counts
        as a change: the result is then the new entry and False.
        """
        with self._lock:
            existing = self._blocked.get(ip)
            if existing is not None and not is_automatic(existing.reason):
                return existing, True
            if existing is None:
                entry = self._block_locked(ip, reason, f"blocked manually: {reason}")
            else:
                entry = BlockedAddress(ip, reason, time.time())
                self._blocked[ip] = entry
                detail = f"blocked manually: {reason} (was: {existing.reason})"
                self._add_event("ip_blocked", ip, "medium", detail)
        self._save_block(entry)
        return entry, False

    def blocked(self) -> list[BlockedAddress]:
        """Return the blocked addresses in the order they were blocked."""
        with self._lock:
            return list(self._blocked.values())

    def login_allowed(self, ip: str) -> bool:
        """Check ``ip`` against the failed-login limit, recording a hit when over it.

        An address over the limit is blocked too, unless it is a loopback address.
        """
        entry = None
        with self._lock:
            failures = self._recent_failures(ip)
            if len(failures) < LOGIN_LIMIT:
                return True
            detail = f"{len(failures)} failed logins in {LOGIN_WINDOW_SECONDS} s"
            self._add_event("rate_limit_hit", ip, "medium", detail)
            if ip not in self._blocked and _blockable(ip):
                reason = f"{AUTOMATIC_BLOCK_PREFIX} {detail}"
                entry = self._block_locked(
                    ip, reason, f"blocked automatically: {reason}"
                )
        if entry is not None:
            self._save_block(entry)
        return False

    def record_failed_login(self, ip: str, user: str | None = None) -> None:
        """Count a failed login from ``ip`` towards the limit and the audit trail.

        ``user`` is the account name the request tried, when it gave one.
        """
        with self._lock:
            failures = self._recent_failures(ip)
            failures.append(time.time())
            self.failed_logins_total += 1
            severity: Severity = (
                "high" if len(failures) >= HIGH_SEVERITY_FAILURES else "low"
            )
            detail = "invalid email or password"
            event = self._add_event("failed_login", ip, severity, detail, user)
        if severity == "high":
            self._save_event(event)

    def record_event(
        self, kind: EventType, ip: str, severity: Severity, detail: str
    ) -> None:
        """Append an event that no limiter decision produced, such as a probe."""
        with self._lock:
            event = self._add_event(kind, ip, severity, detail)
        if severity == "high":
            self._save_event(event)

    def events(self, min_severity: str, limit: int) -> list[SecurityEvent]:
        """Return up to ``limit`` events at ``min_severity`` or above, newest first."""
        floor = SEVERITY_RANK[min_severity]
        with self._lock:
            matching = (
                event
                for event in reversed(self._events)
                if SEVERITY_RANK[event.severity] >= floor
            )
            return [event for _, event in zip(range(limit), matching, strict=False)]

    def rate_limit_hits(self) -> int:
        """Count ``rate_limit_hit`` events in the current limiter window."""
        since = time.time() - LOGIN_WINDOW_SECONDS
        with self._lock:
            return sum(
                1
                for event in self._events
                if event.type == "rate_limit_hit" and event.time >= since
            )

    def _recent_failures(self, ip: str) -> deque[float]:
        if ip not in self._failures and len(self._failures) >= TRACKED_ADDRESS_CAPACITY:
            # Forget the address tracked longest ago, so the table stays bounded.
            del self._failures[next(iter(self._failures))]
        failures = self._failures.setdefault(ip, deque(maxlen=LOGIN_LIMIT))
        since = time.time() - LOGIN_WINDOW_SECONDS
        while failures and failures[0] < since:
            failures.popleft()
        return failures

    def _block_locked(self, ip: str, reason: str, detail: str) -> BlockedAddress:
        entry = BlockedAddress(ip, reason, time.time())
        self._blocked[ip] = entry
        self.blocked_total += 1
        self._add_event("ip_blocked", ip, "medium", detail)
        return entry

    def _add_event(
        self,
        kind: EventType,
        ip: str,
        severity: Severity,
        detail: str,
        user: str | None = None,
    ) -> SecurityEvent:
        event = SecurityEvent(time.time(), kind, ip, severity, detail, user)
        self._events.append(event)
        return event

    # The ledger is called outside the lock, so a slow disk never stalls requests
    # that only read the in-memory state.
    def _save_event(self, event: SecurityEvent) -> None:
        if self._ledger is not None:
            self._ledger.save_security_event(event)

    def _save_block(self, entry: BlockedAddress) -> None:
        if self._ledger is not None:
            self._ledger.save_blocked_address(entry)


def is_automatic(reason: str) -> bool:
    """Return whether a block with this reason was made by the login limiter."""
    return reason.startswith(AUTOMATIC_BLOCK_PREFIX)


def _blockable(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)
