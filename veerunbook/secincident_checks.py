"""The checks of the security-incident procedure, journaled from the audit reads.

Each ``check_*`` function journals one or more checks from an ``Audit`` read of the
security audit. The alert lines come from the runbook's alerting section: more than
10 IPs blocked in 1 minute is the warning alert and more than 50 the critical alert.
A failed-login burst is an address that reached the rate limiter's own limit.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from veerunbook.errorrate_security import logins_level
from veerunbook.errorrate_text import blocked_level
from veerunbook.secincident_audit import (
    ESCALATION_TYPES,
    TOKEN_TYPES,
    Audit,
    Event,
    Source,
    is_exfiltration,
)
from veerunbook.secincident_tables import TABLE_ROWS, breach_row, clock, source_row
from veerunbook.text import counted, listed

if TYPE_CHECKING:
    from veerunbook.record import RunContext
    from veerunbook.shell import CommandResult

MINUTE = timedelta(minutes=1)
# Entries of a list kept in a check's evidence; the check counts every entry.
EVIDENCE_ITEMS = 20


def high_severity(audit: Audit) -> list[Event]:
    """Return the events of high or critical severity, newest first as listed."""
    return [event for event in audit.events if event.severity in ("high", "critical")]


def check_high_events(run: RunContext, audit: Audit, first: Audit) -> None:
    """Journal the count of high-severity events by type in the latest read.

    ``first`` is the read at the start, whose count the summary adds when it
    differs, so that the summary of a run whose attack began during the window
    shows it.
    """
    events = high_severity(audit)
    types = Counter(event.type for event in events)
    common = ", ".join(f"{kind} {count}" for kind, count in types.most_common(4))
    summary = counted(len(events), "high-severity event") + (
        f": {common}" if common else ""
    )
    at_start = len(high_severity(first))
    if first is not audit and at_start != len(events):
        seconds = (audit.at - first.at).total_seconds()
        summary += f" ({at_start} at the start, {seconds:.0f} s earlier)"
    run.check(
        "high-severity security events",
        "warn" if events else "pass",
        observed=len(events),
        unit="events",
        expected=0,
        evidence={
            "types": dict(types.most_common(EVIDENCE_ITEMS)),
            "at the start": at_start,
        },
        summary=summary,
    )


def blocked_since(audit: Audit, since: datetime) -> int:
    """Count the block list entries made at or after ``since``."""
    return sum(
        1
        for block in audit.blocks.values()
        if block.blocked_at is not None and block.blocked_at >= since
    )


def failed_since(audit: Audit, since: datetime) -> tuple[int, int]:
    """Count failed logins at or after ``since`` and their source addresses."""
    events = [
        event
        for event in audit.events
        if event.type == "failed_login" and event.time is not None
        if event.time >= since
    ]
    return len(events), len({event.ip for event in events if event.ip})


def failed_after_block(audit: Audit) -> int:
    """Count failed logins from an address after the time it was blocked.

    Each is a login attempt that the block did not stop.
    """
    count = 0
    for event in audit.events:
        source = audit.sources.get(event.ip or "")
        block = source.block if source is not None else None
        if (
            event.type == "failed_login"
            and block is not None
            and block.blocked_at is not None
            and event.time is not None
            and event.time > block.blocked_at
        ):
            count += 1
    return count


def bursts(audit: Audit) -> list[Source]:
    """Return the addresses with a failed-login burst, most failures first."""
    found = [source for source in audit.sources.values() if audit.burst(source)]
    return sorted(found, key=lambda source: (-source.failed_logins, source.ip))


def check_window(
    run: RunContext, audit: Audit, start: Audit | None
) -> list[dict[str, Any]]:
    """Journal blocks, failed logins and the rate limiter; return the table rows."""
    blocked = blocked_since(audit, audit.at - MINUTE)
    status, level = blocked_level(blocked)
    run.check(
        "blocked IPs in the last minute",
        status,
        observed=blocked,
        unit="IPs",
        expected="at most 10 (warning alert line), at most 50 (critical alert line)",
        summary=f"{counted(blocked, 'IP')} blocked in the last minute, {level}",
    )
    failed, sources = failed_since(audit, audit.at - MINUTE)
    status, level = logins_level(failed)
    run.check(
        "failed logins in the last minute",
        status,
        observed=failed,
        unit="logins",
        expected="under 20 (an estimate; the runbook gives none)",
        evidence={"sources": sources},
        summary=f"{counted(failed, 'failed login')} from "
        f"{counted(sources, 'address', 'addresses')} in the last minute, {level}",
    )
    _check_limiter(run, audit)
    return _window_rows(audit, start, blocked, failed)


def _check_limiter(run: RunContext, audit: Audit) -> None:
    limiter = audit.limiter
    over = bursts(audit)
    open_ = [source.ip for source in over if source.block is None]
    leaked = failed_after_block(audit)
    if limiter.enabled is False:
        status, text = "warn", "the rate limiter is off"
    elif leaked:
        status = "fail"
        text = f"{counted(leaked, 'failed login')} came after the address was blocked"
    elif open_:
        status = "warn"
        text = (
            f"{counted(len(open_), 'address', 'addresses')} over the limit "
            f"{'is' if len(open_) == 1 else 'are'} not blocked: {listed(open_, 5)}"
        )
    elif limiter.enabled is None:
        status, text = "skip", "the audit does not say whether the rate limiter is on"
    else:
        status = "pass"
        text = f"on; {len(over)} of {len(over)} addresses over its limit are blocked"
    run.check(
        "rate limiting",
        status,
        observed=len(over) - len(open_),
        unit="addresses blocked",
        expected=f"every address over {limiter.limit} failed logins blocked",
        evidence={
            "limiter": vars(limiter),
            "not blocked": open_[:EVIDENCE_ITEMS],
            "not blocked in all": len(open_),
            "leaked": leaked,
        },
        summary=text,
    )


def _window_rows(
    audit: Audit, start: Audit | None, blocked_minute: int, failed_minute: int
) -> list[dict[str, Any]]:
    limiter = audit.limiter
    state = {True: "on", False: "off", None: "not reported"}[limiter.enabled]
    hits_start = start.limiter.hits if start is not None else None
    window_start = start.at if start is not None else audit.at
    during, during_sources = failed_since(audit, window_start)
    automatic = sum(1 for block in audit.blocks.values() if block.automatic)
    over = bursts(audit)
    rows = [
        ("rate limiter", state, f"{limiter.limit} per {limiter.window_seconds:g} s"),
        ("rate-limit hits at the start", hits_start, ""),
        ("rate-limit hits at the end", limiter.hits, ""),
        ("IPs blocked in the last minute", blocked_minute, "alert above 10 and 50"),
        ("IPs blocked during the window", blocked_since(audit, window_start), ""),
        ("IPs blocked in all", len(audit.blocks), f"{automatic} automatically"),
        (
            "failed logins during the window",
            during,
            f"from {counted(during_sources, 'IP')}",
        ),
        ("failed logins in the last minute", failed_minute, "estimate: 20 a burst"),
        ("failed logins after a block", failed_after_block(audit), "expected 0"),
        ("addresses over the limit", len(over), "each should be blocked"),
    ]
    return [{"measure": m, "value": v, "note": note} for m, v, note in rows]


def check_bursts(run: RunContext, audit: Audit) -> None:
    """Journal the addresses that reached the limiter's limit of failed logins."""
    over = bursts(audit)
    limiter = audit.limiter
    line = f"{limiter.limit} failed logins in {limiter.window_seconds:g} s"
    addresses = listed([source.ip for source in over], 5)
    run.check(
        "failed-login bursts",
        "fail" if over else "pass",
        observed=len(over),
        unit="addresses",
        expected=f"no address at the rate limiter's limit ({line})",
        evidence=[source_row(source) for source in over[:TABLE_ROWS]],
        summary=(
            f"{counted(len(over), 'address', 'addresses')} reached {line}: {addresses}"
            if over
            else f"no address reached {line}"
        ),
    )


def breach_events(*audits: Audit | None) -> list[Event]:
    """Return the escalation, token and exfiltration events of the reads, once each."""
    seen: dict[tuple[Any, ...], Event] = {}
    for audit in audits:
        for event in audit.events if audit is not None else []:
            kind = event.type
            if kind in ESCALATION_TYPES or kind in TOKEN_TYPES or is_exfiltration(kind):
                seen.setdefault((event.time, kind, event.ip, event.detail), event)
    return sorted(seen.values(), key=lambda e: (e.time is None, e.time, e.type))


def check_breaches(run: RunContext, events: list[Event], signs: list[str]) -> None:
    """Journal privilege escalation, data exfiltration and compromised credentials."""
    escalations = [e for e in events if e.type in ESCALATION_TYPES]
    exfiltration = [e for e in events if is_exfiltration(e.type)]
    for name, found, none in (
        ("privilege escalation", escalations, "no privilege escalation event"),
        ("data exfiltration", exfiltration, "no export, download or exfiltration"),
    ):
        run.check(
            name,
            "fail" if found else "pass",
            observed=len(found),
            unit="events",
            expected=0,
            evidence=[breach_row(event) for event in found[:EVIDENCE_ITEMS]],
            summary="; ".join(_describe(event) for event in found[:3]) or none,
        )
    run.check(
        "compromised credentials",
        "fail" if signs else "pass",
        observed=len(signs),
        unit="signs",
        expected=0,
        evidence=signs[:EVIDENCE_ITEMS],
        summary="; ".join(signs[:3]) or "no sign of compromised credentials",
    )


def _describe(event: Event) -> str:
    when = f" at {clock(event.time)}" if event.time else ""
    return f"{event.type.replace('_', ' ')} from {event.ip or '?'}{when}"


def check_audit_command(run: RunContext, result: CommandResult | None) -> None:
    """Journal the configured security audit command's result."""
    if result is None:
        run.check(
            "security audit command",
            "skip",
            summary="the target has no security_audit command",
        )
        return
    status, meaning = "pass", ""
    if result.exit_code is None:
        status = "error"
    elif not result.ok:
        status, meaning = "fail", "; it reports findings or failed, see its output"
    run.check(
        "security audit command",
        status,
        observed=result.exit_code,
        unit="exit code",
        expected=0,
        evidence=result.to_dict(),
        summary=f"{result.command}: {result.summary()}{meaning}",
    )
