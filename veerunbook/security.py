"""Reading a security audit response: failed logins, blocked IPs, rate limiting.

The audit endpoint's body is ``{"events": [...], "blockedIps": [...],
"rateLimiting": {...}}``; events carry ``time``, ``type``, ``ip``, ``severity`` and
``detail``. Unknown or missing fields are tolerated: a lying endpoint yields an empty
summary with a note, never an exception.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from veerunbook.changes import parse_time

# Event types that point at a breach rather than at noise; any one makes the class P0.
BREACH_TYPES = (
    "privilege_escalation",
    "privilege_escalation_attempt",
    "data_exfiltration",
    "unusual_data_access",
    "token_compromise",
)
BLOCKED_P1_PER_MINUTE = 10  # warning alert: more than 10 IPs blocked in 1 minute


@dataclass
class SecuritySummary:
    """Counts and top sources from one security audit response."""

    high_events: int = 0
    failed_logins: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    blocked_ips: list[str] = field(default_factory=list)
    blocked_last_minute: int = 0
    rate_limiting: dict[str, Any] = field(default_factory=dict)
    breach_indicators: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Check status: fail on breach signs or a blocking burst, warn on events."""
        if self.breach_indicators or self.blocked_last_minute > BLOCKED_P1_PER_MINUTE:
            return "fail"
        return "warn" if self.high_events else "pass"

    def headline(self) -> str:
        """Return one line: events, failed logins, blocked IPs and breach signs."""
        text = (
            f"{self.high_events} high-severity events, {self.failed_logins} failed "
            f"logins, {len(self.blocked_ips)} blocked IPs "
            f"({self.blocked_last_minute} in the last minute)"
        )
        if self.breach_indicators:
            text += "; breach signs: " + ", ".join(self.breach_indicators[:3])
        return text

    def top_sources(self, count: int = 10) -> list[dict[str, Any]]:
        """Return the source addresses with the most events, busiest first."""
        ranked = sorted(self.sources.items(), key=lambda item: (-item[1], item[0]))
        blocked = set(self.blocked_ips)
        return [
            {"ip": ip, "events": events, "blocked": ip in blocked}
            for ip, events in ranked[:count]
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise_security(body: Any, now: datetime | None = None) -> SecuritySummary:
    """Summarise an audit response; malformed parts are skipped with a note.

    ``now`` is the reference for "the last minute"; a naive value is taken as UTC.
    """
    summary = SecuritySummary()
    if not isinstance(body, dict):
        summary.notes.append("the audit response is not a JSON object")
        return summary
    now = now or datetime.now(UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    _read_events(summary, body.get("events"))
    _read_blocked(summary, body.get("blockedIps"), now)
    limits = body.get("rateLimiting")
    summary.rate_limiting = limits if isinstance(limits, dict) else {}
    return summary


def _read_events(summary: SecuritySummary, events: Any) -> None:
    if not isinstance(events, list):
        summary.notes.append("the audit response has no 'events' list")
        return
    types: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    skipped = 0
    for event in events:
        if not isinstance(event, dict):
            skipped += 1
            continue
        kind = str(event.get("type", "unknown"))
        ip = event.get("ip")
        types[kind] += 1
        if isinstance(ip, str):
            sources[ip] += 1
        if str(event.get("severity", "")).lower() in ("high", "critical"):
            summary.high_events += 1
        if kind in BREACH_TYPES:
            source = ip if isinstance(ip, str) else "?"
            summary.breach_indicators.append(f"{kind} from {source}")
    if skipped:
        summary.notes.append(
            f"events skipped because they are not JSON objects: {skipped}"
        )
    summary.failed_logins = types.get("failed_login", 0)
    summary.events_by_type = dict(types)
    summary.sources = dict(sources)


def _read_blocked(summary: SecuritySummary, blocked: Any, now: datetime) -> None:
    if not isinstance(blocked, list):
        summary.notes.append("the audit response has no 'blockedIps' list")
        return
    minute_ago = now - timedelta(minutes=1)
    skipped = undated = 0
    for entry in blocked:
        ip = entry.get("ip") if isinstance(entry, dict) else entry
        if not isinstance(ip, str):
            skipped += 1
            continue
        summary.blocked_ips.append(ip)
        when = parse_time(entry.get("blockedAt") if isinstance(entry, dict) else None)
        if when is None:
            undated += 1
        elif when >= minute_ago:
            summary.blocked_last_minute += 1
    if skipped:
        summary.notes.append(
            f"blocked entries skipped because they have no IP: {skipped}"
        )
    if undated:
        summary.notes.append(
            "blocked IPs without a valid blockedAt time, so not counted in the last "
            f"minute: {undated}"
        )
