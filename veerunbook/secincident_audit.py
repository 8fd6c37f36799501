"""The evidence that the security audit gives per source address.

The audit endpoint (``/api/audit/security``) returns ``events`` (``time``, ``type``,
``ip``, ``severity``, ``detail`` and, for logins, the ``user`` tried), ``blockedIps``
(``ip``, ``reason``, ``blockedAt``) and ``rateLimiting`` (``enabled``, ``limit``,
``windowSeconds``, ``hits``). ``read_audit`` turns one response into an ``Audit``
whose ``sources`` hold, per address, what makes it an attacker: a failed-login
burst, the rate limiter's verdict, breach events. Malformed parts are skipped with a
note instead of raising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from veerunbook.blocklist import entry_of
from veerunbook.changes import parse_time
from veerunbook.text import clipped, counted, listed

# The limiter's limit and window when the audit's ``rateLimiting`` does not report
# them: 10 failed logins per address in 15 minutes, as the embedded demo service's
# login limiter. NOTE: a guess for any other service.
DEFAULT_LOGIN_LIMIT = 10
DEFAULT_LIMIT_WINDOW_SECONDS = 900.0
# A block whose reason starts with one of these was made by the rate limiter itself;
# a manual block names the incident instead.
AUTOMATIC_BLOCK_PREFIXES = ("rate limit",)

ESCALATION_TYPES = ("privilege_escalation", "privilege_escalation_attempt")
TOKEN_TYPES = ("token_compromise",)
# NOTE: the audit format defines no event for data export volume. Besides the two
# named types, any event type that names an export or a download counts as a sign.
EXFILTRATION_TYPES = ("data_exfiltration", "unusual_data_access")
EXFILTRATION_WORDS = ("export", "download")
# NOTE: the audit format defines no event for a successful login either; this is
# the type read when a service records one.
LOGIN_SUCCESS_TYPES = ("login_success",)
# Characters kept of an event's detail and of a block's reason. An event's type,
# address, severity and user keep ``veerunbook.text.ITEM_CHARS``, so a valid address
# without a zone id is never cut.
DETAIL_CHARS = 200
# The shortest span a rate a minute is computed over, in seconds.
RATE_MIN_SPAN_SECONDS = 60.0
# Breach event types named per address in its evidence; the rest are counted.
BREACH_KINDS_SHOWN = 5


@dataclass(frozen=True)
class Event:
    """One audit event with its time parsed (None when missing or invalid)."""

    time: datetime | None
    type: str
    ip: str | None
    severity: str
    detail: str
    user: str | None


@dataclass(frozen=True)
class Block:
    """One entry of the target's block list."""

    entry: str
    reason: str
    blocked_at: datetime | None
    automatic: bool


@dataclass
class Limiter:
    """The rate limiter's settings, with the defaults filled in where unreported."""

    enabled: bool | None = None
    limit: int = DEFAULT_LOGIN_LIMIT
    window_seconds: float = DEFAULT_LIMIT_WINDOW_SECONDS
    hits: int | None = None


@dataclass
class Source:
    """The activity of one source address, as far as the audit shows it."""

    ip: str
    events: int = 0
    failed_logins: int = 0  # within the rate limiter's window
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    users: list[str] = field(default_factory=list)
    rate_limit_hits: int = 0
    breaches: list[str] = field(default_factory=list)  # event types, each once
    successful_logins: int = 0
    block: Block | None = None

    @property
    def rate_per_minute(self) -> float | None:
        """Failed logins a minute: the count over the time from the first to the last.

        A span under a minute counts as one minute, so that a burst of logins in
        under a second is reported as its count, never extrapolated to a minute.
        """
        if not self.failed_logins or not self.first_seen or not self.last_seen:
            return None
        seconds = (self.last_seen - self.first_seen).total_seconds()
        return self.failed_logins * 60.0 / max(seconds, RATE_MIN_SPAN_SECONDS)

    @property
    def blocked(self) -> str:
        """``manual``, ``automatic`` or ``no``."""
        if self.block is None:
            return "no"
        return "automatic" if self.block.automatic else "manual"


@dataclass
class Audit:
    """One audit response, read: events, block list, limiter, sources."""

    at: datetime
    events: list[Event] = field(default_factory=list)
    blocks: dict[str, Block] = field(default_factory=dict)
    limiter: Limiter = field(default_factory=Limiter)
    sources: dict[str, Source] = field(default_factory=dict)
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    def burst(self, source: Source) -> bool:
        """Return whether ``source`` reached the limiter's limit of failed logins."""
        return source.failed_logins >= self.limiter.limit

    def evidence(self, source: Source) -> list[str]:
        """List why ``source`` looks like an attacker; empty when nothing does."""
        found = []
        if self.burst(source):
            found.append(
                f"{counted(source.failed_logins, 'failed login')} in "
                f"{self.limiter.window_seconds:g} s (the limiter allows "
                f"{self.limiter.limit})"
            )
        if source.rate_limit_hits:
            found.append(f"{counted(source.rate_limit_hits, 'rate-limit hit')}")
        elif source.block is not None and source.block.automatic:
            found.append("blocked by the rate limiter")
        kinds = [kind.replace("_", " ") for kind in source.breaches]
        found += kinds[:BREACH_KINDS_SHOWN]
        if len(kinds) > BREACH_KINDS_SHOWN:
            more = len(kinds) - BREACH_KINDS_SHOWN
            found.append(counted(more, "more breach event type"))
        return found

    def compromised(self) -> list[str]:
        """List the signs of compromised credentials, one per address and kind.

        A privilege escalation (attempt), a token compromise, or a successful login
        from an address with a failed-login burst.
        """
        signs = []
        for source in self.sources.values():
            signs += [
                f"{kind.replace('_', ' ')} from {source.ip}"
                for kind in source.breaches
                if kind in ESCALATION_TYPES or kind in TOKEN_TYPES
            ]
            if source.successful_logins and self.burst(source):
                signs.append(
                    f"successful login from {source.ip}, which has a failed-login burst"
                )
        return signs


def read_audit(body: Any, at: datetime, limit: int | None = None) -> Audit:
    """Read one audit response taken at ``at``; ``limit`` is the events requested."""
    audit = Audit(at=at)
    if not isinstance(body, dict):
        audit.notes.append("the audit response is not a JSON object")
        return audit
    audit.events = _read_events(body.get("events"), audit.notes)
    audit.truncated = limit is not None and len(audit.events) >= limit
    audit.blocks = _read_blocks(body.get("blockedIps"), audit.notes)
    audit.limiter = _read_limiter(body.get("rateLimiting"))
    audit.sources = _sources(audit)
    return audit


def is_exfiltration(kind: str) -> bool:
    """Return whether an event type is a sign of data exfiltration (see the NOTE)."""
    lowered = kind.lower()
    return kind in EXFILTRATION_TYPES or any(w in lowered for w in EXFILTRATION_WORDS)


def is_automatic(reason: str) -> bool:
    """Return whether a block reason is the rate limiter's own."""
    return reason.strip().lower().startswith(AUTOMATIC_BLOCK_PREFIXES)


def _read_events(raw: Any, notes: list[str]) -> list[Event]:
    if not isinstance(raw, list):
        notes.append("the audit response has no 'events' list")
        return []
    events = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        ip, user = item.get("ip"), item.get("user")
        events.append(
            Event(
                time=parse_time(item.get("time")),
                type=clipped(str(item.get("type", "unknown"))),
                ip=clipped(ip) if isinstance(ip, str) and ip else None,
                severity=clipped(str(item.get("severity", "")).lower()),
                detail=clipped(str(item.get("detail") or ""), DETAIL_CHARS),
                user=clipped(user) if isinstance(user, str) and user else None,
            )
        )
    if len(events) < len(raw):
        skipped = len(raw) - len(events)
        notes.append(f"{counted(skipped, 'event')} skipped: not JSON objects")
    return events


def _read_blocks(raw: Any, notes: list[str]) -> dict[str, Block]:
    if not isinstance(raw, list):
        notes.append("the audit response has no 'blockedIps' list")
        return {}
    blocks = {}
    skipped: list[str] = []
    for item in raw:
        text = item.get("ip") if isinstance(item, dict) else item
        entry = entry_of(text) if isinstance(text, str) else None
        if entry is None:
            skipped.append(repr(clipped(str(text), 60)))
            continue
        reason = str(item.get("reason") or "") if isinstance(item, dict) else ""
        reason = clipped(reason, DETAIL_CHARS)
        when = parse_time(item.get("blockedAt")) if isinstance(item, dict) else None
        blocks[entry] = Block(entry, reason, when, is_automatic(reason))
    if skipped:
        entries = counted(len(skipped), "block list entry", "block list entries")
        notes.append(f"skipped {entries} without an address: {listed(skipped, 3)}")
    return blocks


def _read_limiter(raw: Any) -> Limiter:
    limiter = Limiter()
    if not isinstance(raw, dict):
        return limiter
    if isinstance(raw.get("enabled"), bool):
        limiter.enabled = raw["enabled"]
    limit = _number(raw.get("limit"))
    window = _number(raw.get("windowSeconds"))
    hits = _number(raw.get("hits"))
    if limit is not None and limit >= 1:
        limiter.limit = int(limit)
    if window is not None and window > 0:
        limiter.window_seconds = window
    if hits is not None and hits >= 0:
        limiter.hits = int(hits)
    return limiter


def _number(value: Any) -> float | None:
    """Return a finite JSON number as a float; None for anything else or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _sources(audit: Audit) -> dict[str, Source]:
    since = audit.at - timedelta(seconds=audit.limiter.window_seconds)
    sources: dict[str, Source] = {}
    for event in audit.events:
        if event.ip is None:
            continue
        source = sources.setdefault(event.ip, Source(event.ip))
        source.events += 1
        _count(source, event, since)
    for source in sources.values():
        entry = entry_of(source.ip)
        source.block = audit.blocks.get(entry) if entry else None
    return sources


def _count(source: Source, event: Event, since: datetime) -> None:
    kind = event.type
    if kind == "failed_login" and (event.time is None or event.time >= since):
        source.failed_logins += 1
        if event.time is not None:
            source.first_seen = min(source.first_seen or event.time, event.time)
            source.last_seen = max(source.last_seen or event.time, event.time)
        if event.user and event.user not in source.users:
            source.users.append(event.user)
    elif kind == "rate_limit_hit":
        source.rate_limit_hits += 1
    elif kind in LOGIN_SUCCESS_TYPES:
        source.successful_logins += 1
    elif _breach(kind) and kind not in source.breaches:
        source.breaches.append(kind)


def _breach(kind: str) -> bool:
    return kind in ESCALATION_TYPES or kind in TOKEN_TYPES or is_exfiltration(kind)
