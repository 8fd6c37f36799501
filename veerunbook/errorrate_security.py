"""Security findings of the high-error-rate procedure: breach signs, logins, blocks.

A high error rate can be the side effect of an attack. The security audit
(``/api/audit/security``) shows it: breach signs such as a privilege-escalation
attempt, a burst of failed logins, and addresses that the rate limiter blocked.
Breach signs or an attack-sized burst make a security incident, which the diagnosis
states first because the security-incident procedure then comes before any
recovery from the errors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from veerunbook.changes import parse_time
from veerunbook.errorrate_text import BLOCKED_CRITICAL, blocked_level
from veerunbook.security import BREACH_TYPES, SecuritySummary
from veerunbook.text import counted

if TYPE_CHECKING:
    from veerunbook.record import RunContext

# NOTE: the runbook gives no figure for failed logins. Both lines are estimates for
# one service: mistyped passwords stay under 20 a minute, and 100 a minute, five
# times that, is too many for mistakes. Tune them for a busier service.
FAILED_LOGINS_WARN = 20  # failed logins in the last minute: a burst
FAILED_LOGINS_ATTACK = 100  # failed logins in the last minute: an attack

_BREACH_NAMES = {
    "privilege_escalation": "privilege escalation",
    "privilege_escalation_attempt": "privilege-escalation attempt",
    "data_exfiltration": "data exfiltration",
    "unusual_data_access": "unusual data access",
    "token_compromise": "token compromise",
}


@dataclass(frozen=True)
class BreachEvent:
    """One audit event of a type that points at a breach rather than at noise."""

    kind: str
    source: str
    time: datetime | None
    detail: str

    @property
    def name(self) -> str:
        """The event type in words, such as "privilege-escalation attempt"."""
        return _BREACH_NAMES.get(self.kind, self.kind.replace("_", " "))

    def describe(self) -> str:
        """Return "<name> from <address> at <time UTC>"."""
        when = f" at {self.time:%H:%M:%S} UTC" if self.time else ""
        return f"{self.name} from {self.source}{when}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = self.time.isoformat() if self.time else None
        return data


def breach_events(body: Any) -> list[BreachEvent]:
    """List the audit's breach events (``security.BREACH_TYPES``), oldest first."""
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list):
        return []
    found = [
        BreachEvent(
            kind=str(event["type"]),
            source=str(event.get("ip") or "an unknown address"),
            time=parse_time(event.get("time")),
            detail=str(event.get("detail") or ""),
        )
        for event in events
        if isinstance(event, dict) and event.get("type") in BREACH_TYPES
    ]
    return sorted(found, key=lambda event: (event.time is None, event.time))


def failed_logins_since(body: Any, since: datetime) -> tuple[int, int]:
    """Count ``failed_login`` events at or after ``since`` and their source addresses.

    ``body`` is the security audit response. Events without a valid time are left
    out, so the counts are lower bounds.
    """
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list):
        return 0, 0
    sources: set[str] = set()
    count = 0
    for event in events:
        if not isinstance(event, dict) or event.get("type") != "failed_login":
            continue
        when = parse_time(event.get("time"))
        if when is None or when < since:
            continue
        count += 1
        if isinstance(event.get("ip"), str):
            sources.add(event["ip"])
    return count, len(sources)


def logins_level(failed: int) -> tuple[str, str]:
    """Grade failed logins in the last minute against the estimated lines."""
    if failed >= FAILED_LOGINS_ATTACK:
        line = f"the attack line ({FAILED_LOGINS_ATTACK} a minute, an estimate)"
        return "fail", f"at or above {line}"
    if failed >= FAILED_LOGINS_WARN:
        line = f"the burst line ({FAILED_LOGINS_WARN} a minute, an estimate)"
        return "warn", f"at or above {line}"
    return "pass", f"under the burst line ({FAILED_LOGINS_WARN} a minute, an estimate)"


def check_security(
    run: RunContext,
    summary: SecuritySummary,
    breaches: list[BreachEvent],
    logins: tuple[int, int],
) -> None:
    """Journal breach signs, blocked IPs, the rate limiter and failed logins."""
    run.check(
        "breach signs",
        "fail" if breaches else "pass",
        observed=len(breaches),
        unit="events",
        expected=0,
        evidence=[event.to_dict() for event in breaches[:20]],
        summary=_breach_summary(breaches),
    )
    blocked = summary.blocked_last_minute
    status, level = blocked_level(blocked)
    run.check(
        "blocked IPs in the last minute",
        status,
        observed=blocked,
        unit="IPs",
        expected="at most 10 (warning alert line), at most 50 (critical alert line)",
        evidence=summary.to_dict(),
        summary=f"{counted(blocked, 'IP')} blocked in the last minute, {level};"
        f" {counted(len(summary.blocked_ips), 'IP')} blocked in all",
    )
    _check_rate_limiter(run, summary)
    failed, sources = logins
    status, level = logins_level(failed)
    run.check(
        "failed logins in the last minute",
        status,
        observed=failed,
        unit="logins",
        expected=f"under {FAILED_LOGINS_WARN} (an estimate; the runbook gives none)",
        evidence={"sources": sources},
        summary=f"{counted(failed, 'failed login')} from"
        f" {counted(sources, 'address', 'addresses')} in the last minute, {level}",
    )


def _breach_summary(breaches: list[BreachEvent]) -> str:
    if not breaches:
        return "no privilege escalation, data exfiltration or token compromise"
    first = breaches[0]
    text = first.describe() + (f": {first.detail}" if first.detail else "")
    if len(breaches) > 1:
        text += f"; {counted(len(breaches) - 1, 'more breach event')}"
    return text


def _check_rate_limiter(run: RunContext, summary: SecuritySummary) -> None:
    enabled = summary.rate_limiting.get("enabled")
    if enabled is None:
        status, state = "skip", "in an unknown state"
    elif enabled:
        status, state = "pass", "on"
    else:
        status, state = "warn", "off"
    run.check(
        "rate limiting",
        status,
        evidence=summary.rate_limiting,
        summary=f"the rate limiter is {state}",
    )


def security_incident(
    summary: SecuritySummary | None, breaches: list[BreachEvent], failed: int
) -> list[str]:
    """List the findings that make a security incident, most serious first.

    Breach signs, failed logins at the attack line, or more IPs blocked in a minute
    than the critical alert line allows make one. An empty list means none.
    """
    findings = [event.describe() for event in breaches[:2]]
    if failed >= FAILED_LOGINS_ATTACK:
        findings.append(f"{failed} failed logins in the last minute")
    blocked = summary.blocked_last_minute if summary is not None else 0
    if blocked > BLOCKED_CRITICAL:
        findings.append(f"{blocked} IPs blocked in the last minute")
    return findings
