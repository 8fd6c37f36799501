"""Incident classes P0-P3, response-time targets and the escalation plan.

The classes, response times and the escalation matrix are the runbook's. Each rule below
maps one observed signal to the class whose definition it meets. The incident takes the
most severe class that any rule reaches, and every rule that fired is kept as a reason.

The runbook leaves two gaps that triage has to close:

- Error rates between 10 % and 50 %: P1 is defined from 50 % and P2 below 10 %. Triage
  classifies the gap as P1, because the runbook says to escalate when in doubt.
- Error rates from 5 % to 10 % meet the P2 definition, but the runbook's critical alert
  fires above 5 % sustained for 2 minutes. When the measured window covers at least
  2 minutes, triage raises such a rate to P1; over a shorter window it stays P2 with a
  note that the alert condition could not be confirmed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from veerunbook.text import percent

SEVERITIES = ("P0", "P1", "P2", "P3")

RESPONSE_TIME = {
    "P0": "15 minutes",
    "P1": "1 hour",
    "P2": "4 hours",
    "P3": "next business day",
}
RESPONSE_MINUTES: dict[str, int | None] = {"P0": 15, "P1": 60, "P2": 240, "P3": None}

FIRST_RESPONSE = {
    "P0": "page the on-call engineer now and open a war room",
    "P1": "notify the on-call engineer and begin the investigation",
    "P2": "create a ticket and investigate during business hours",
    "P3": "add a ticket to the standard queue",
}

# Escalation matrix: (from minute, to minute or None, who is engaged, contact role).
ESCALATION: dict[str, tuple[tuple[int, int | None, str, str | None], ...]] = {
    "P0": (
        (0, 15, "on-call engineer", "primary_oncall"),
        (15, 30, "+ security team", "security"),
        (30, 60, "+ infrastructure team", "infrastructure"),
        (60, None, "+ engineering manager", "engineering_manager"),
    ),
    "P1": (
        (0, 15, "on-call engineer", "primary_oncall"),
        (15, 30, "on-call engineer begins the investigation", None),
        (30, 60, "+ security team if needed", "security"),
        (60, None, "+ infrastructure team", "infrastructure"),
    ),
    "P2": (
        (0, 15, "create a ticket", None),
        (30, 60, "assign an engineer", "primary_oncall"),
        (60, None, "normal priority", None),
    ),
    "P3": ((0, None, "standard ticket queue", None),),
}

# Thresholds, with the runbook section each comes from.
ERROR_RATE_P1 = 0.50  # class P1 example: more than 50 % errors
ERROR_RATE_GAP = 0.10  # class P2 example: less than 10 % errors
ERROR_RATE_ALERT_P0 = 0.05  # critical alert: above 5 % for 2 minutes
ERROR_RATE_ALERT_WINDOW_S = 120.0
ERROR_RATE_INFO = 0.005  # information alert: above 0.5 %
P95_WARNING_S = 2.0  # warning alert: p95 above 2000 ms
P95_INFO_S = 1.5  # information alert: p95 above 1500 ms
BLOCKED_IPS_P0 = 50  # critical alert: more than 50 blocked IPs in 1 minute
BLOCKED_IPS_P1 = 10  # warning alert: more than 10 blocked IPs in 1 minute
MEMORY_P1 = 0.85  # warning alert: memory above 85 %
POOL_P2 = 0.80  # information alert: pool utilisation above 80 %


@dataclass
class Signals:
    """Observations reduced to the facts that the classes are defined by."""

    service_unreachable: bool = False
    service_unhealthy: bool = False
    health_degraded: bool = False
    database_down: bool = False
    data_corruption: bool = False
    corruption_detail: str = ""
    broken_health_endpoints: list[str] = field(default_factory=list)
    auth_failed: bool = False
    critical_flows_failed: list[str] = field(default_factory=list)
    other_flows_failed: list[str] = field(default_factory=list)
    integrations_down: list[str] = field(default_factory=list)
    error_rate: float | None = None
    window_seconds: float | None = None
    p95_seconds: float | None = None
    p95_route: str | None = None
    blocked_ips_per_minute: float | None = None
    breach_indicators: list[str] = field(default_factory=list)
    memory_fraction: float | None = None
    pool_utilisation: float | None = None
    maintenance_notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reason:
    """One rule that fired: the class it calls for and the evidence behind it."""

    severity: str
    rule: str
    evidence: str


@dataclass
class Classification:
    """The incident class with every reason that led to it."""

    severity: str | None
    reasons: list[Reason]

    @property
    def response_time(self) -> str | None:
        return RESPONSE_TIME.get(self.severity or "")

    @property
    def is_incident(self) -> bool:
        return self.severity in ("P0", "P1", "P2")

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "response_time": self.response_time,
            "reasons": [asdict(reason) for reason in self.reasons],
        }


def classify(signals: Signals) -> Classification:
    """Classify observed signals into P0-P3 (None when nothing is wrong)."""
    reasons = [*_availability(signals), *_errors(signals), *_other(signals)]
    if not reasons:
        return Classification(None, [])
    reasons.sort(key=lambda reason: SEVERITIES.index(reason.severity))
    return Classification(reasons[0].severity, reasons)


def _availability(s: Signals) -> list[Reason]:
    found = []
    if s.service_unreachable:
        found.append(
            Reason("P0", "complete service outage", "no health endpoint answered")
        )
    elif s.service_unhealthy:
        found.append(
            Reason(
                "P0", "complete service outage", "health and readiness report failure"
            )
        )
    if s.database_down:
        found.append(
            Reason("P0", "database unavailable", "the database health check fails")
        )
    if s.data_corruption:
        found.append(
            Reason(
                "P0",
                "database corruption or data loss",
                s.corruption_detail or "validation failed",
            )
        )
    if s.auth_failed:
        found.append(
            Reason("P0", "authentication system failure", "the login flow fails")
        )
    if s.breach_indicators:
        found.append(
            Reason("P0", "security incident", "; ".join(s.breach_indicators[:3]))
        )
    for endpoint in s.broken_health_endpoints:
        found.append(Reason("P2", "health endpoint misbehaving", endpoint))
    if s.health_degraded and not (s.service_unhealthy or s.service_unreachable):
        found.append(Reason("P2", "service degraded", "a health endpoint reports warn"))
    return found


def _errors(s: Signals) -> list[Reason]:
    rate = s.error_rate
    if rate is None:
        return []
    shown = f"{percent(rate, 2)} of user requests answered 5xx"
    if rate > ERROR_RATE_P1:
        return [Reason("P1", "error rate above 50 %", shown)]
    if rate >= ERROR_RATE_GAP:
        return [
            Reason("P1", "error rate 10-50 % (escalated: between P2 and P1)", shown)
        ]
    if rate > ERROR_RATE_ALERT_P0:
        window = s.window_seconds or 0.0
        if window >= ERROR_RATE_ALERT_WINDOW_S:
            return [Reason("P1", "error rate above 5 % for 2 minutes", shown)]
        note = f"{shown}; the {window:.0f} s window cannot confirm 2 minutes"
        return [Reason("P2", "error rate below 10 %", note)]
    if rate > ERROR_RATE_INFO:
        return [Reason("P2", "error rate above 0.5 %", shown)]
    return []


def _other(s: Signals) -> list[Reason]:
    found = []
    for flow in s.critical_flows_failed:
        found.append(
            Reason("P1", "critical feature broken", f"user flow {flow!r} fails")
        )
    for name in s.integrations_down:
        found.append(Reason("P1", "integration down", f"{name} is failing"))
    for flow in s.other_flows_failed:
        found.append(Reason("P2", "non-critical feature broken", f"{flow!r} fails"))
    if s.p95_seconds is not None:
        where = f" on {s.p95_route}" if s.p95_route else ""
        shown = f"p95 {s.p95_seconds * 1000:.0f} ms{where}"
        if s.p95_seconds > P95_WARNING_S:
            found.append(Reason("P1", "p95 above 2000 ms", shown))
        elif s.p95_seconds > P95_INFO_S:
            found.append(Reason("P2", "p95 above 1500 ms", shown))
    blocked = s.blocked_ips_per_minute
    if blocked is not None and blocked > BLOCKED_IPS_P0:
        found.append(
            Reason("P0", "more than 50 IPs blocked in 1 minute", f"{blocked:.0f}")
        )
    elif blocked is not None and blocked > BLOCKED_IPS_P1:
        found.append(
            Reason("P1", "more than 10 IPs blocked in 1 minute", f"{blocked:.0f}")
        )
    if s.memory_fraction is not None and s.memory_fraction > MEMORY_P1:
        found.append(Reason("P1", "memory above 85 %", percent(s.memory_fraction)))
    if s.pool_utilisation is not None and s.pool_utilisation > POOL_P2:
        found.append(
            Reason(
                "P2",
                "connection pool above 80 %",
                f"{percent(s.pool_utilisation)} in use",
            )
        )
    found.extend(Reason("P3", "maintenance", note) for note in s.maintenance_notes)
    return found


@dataclass(frozen=True)
class EscalationStep:
    """One row of the escalation matrix: an elapsed-time span and who is engaged."""

    start_minute: int
    end_minute: int | None
    who: str
    contact: str | None

    def window(self) -> str:
        """Return the elapsed-time span as text, e.g. ``15-30 min``."""
        if self.end_minute is None:
            return f"from {self.start_minute} min"
        return f"{self.start_minute}-{self.end_minute} min"


def escalation_plan(
    severity: str | None, contacts: Mapping[str, str] | None = None
) -> list[EscalationStep]:
    """Return the escalation steps of a class with contacts from the configuration."""
    contacts = contacts or {}
    steps = []
    for start, end, who, role in ESCALATION.get(severity or "", ()):
        # An empty value in [contacts] counts as not configured.
        contact = (contacts.get(role) or f"[{role} not configured]") if role else None
        steps.append(EscalationStep(start, end, who, contact))
    return steps


def engaged_at(
    severity: str | None,
    elapsed_minutes: float,
    contacts: Mapping[str, str] | None = None,
) -> list[EscalationStep]:
    """Return every escalation step reached after ``elapsed_minutes``."""
    return [
        step
        for step in escalation_plan(severity, contacts)
        if step.start_minute <= elapsed_minutes
    ]
