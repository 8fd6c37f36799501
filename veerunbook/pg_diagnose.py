"""Judge a pg_stat_activity snapshot: one finding per check. Nothing here touches a
server. The remediation steps come from ``veerunbook.pg_actions``.

When some sessions are hidden from the reading role (see ``veerunbook.pg_snapshot``),
a check that could not see them never passes: it warns, and its summary gives the
number of hidden sessions and the GRANT of pg_monitor that shows them. Lock blocking
is the exception, because ``pg_blocking_pids`` reports every session to every role.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Literal

from veerunbook.pg_actions import describe_root, recommendations
from veerunbook.pg_activity import (
    Capacity,
    IdleInTransaction,
    capacity,
    idle_in_transaction,
)
from veerunbook.pg_locks import LockWaits, LongRunning, lock_waits, long_running
from veerunbook.pg_snapshot import PgSettings, Snapshot, format_age

# The runbook's P2 alert: database connections above 80 % pool utilisation for 15
# minutes. One snapshot cannot show the 15 minutes, so the check warns at once.
POOL_WARN_UTILISATION = 0.80
# A lock wait longer than this fails the blocking check.
LOCK_WAIT_LIMIT = timedelta(seconds=60)

Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Finding:
    """One verdict of ``diagnose``, with plain JSON values as evidence."""

    name: str
    status: Status
    summary: str
    evidence: dict[str, Any]


def diagnose(snap: Snapshot) -> list[Finding]:
    """Judge the snapshot and recommend remediation without executing anything.

    Returns the findings "connection limit", "idle in transaction", "lock blocking",
    "long-running queries" and "recommended actions", in this order.
    """
    idle = idle_in_transaction(snap)
    locks = lock_waits(snap)
    slow = long_running(snap)
    note = snap.hidden_note()
    return [
        _connection_finding(capacity(snap), note),
        _idle_finding(idle, snap.settings, note),
        _blocking_finding(locks, len(snap.hidden_clients())),
        _long_query_finding(slow, note),
        _actions_finding(recommendations(snap, idle, locks, slow), note),
    ]


def _connection_finding(cap: Capacity, note: str | None) -> Finding:
    summary = (
        f"{cap.client_backends} client backends of max_connections "
        f"{cap.max_connections}; roles without SUPERUSER may use {cap.usable} and "
        f"hold {cap.app_backends} ({cap.utilisation:.0%})"
    )
    if note is not None:
        summary = (
            f"{note}. pg_stat_activity lists all {cap.sessions} sessions to every "
            "role but hides the type of some, so "
            f"{cap.client_backends} to {cap.client_backends + cap.hidden} of them "
            f"are client backends; max_connections is {cap.max_connections} and "
            f"roles without SUPERUSER may use {cap.usable}"
        )
    status: Status = "pass" if note is None else "warn"
    if cap.full:
        status = "fail"
        summary += "; new application connections are rejected (SQLSTATE 53300)"
    elif note is not None and cap.may_be_full:
        summary += "; the limit may be reached"
    elif cap.utilisation >= POOL_WARN_UTILISATION:
        status = "warn"
        summary += f"; at or above the {POOL_WARN_UTILISATION:.0%} warning level"
    return Finding("connection limit", status, summary + ".", asdict(cap))


def _idle_finding(
    idle: IdleInTransaction, settings: PgSettings, note: str | None
) -> Finding:
    timeout_ms = settings.idle_in_transaction_session_timeout_ms
    timeout = f"{timeout_ms} ms" if timeout_ms else "0 (off)"
    limit = format_age(idle.older_than)
    per_app = ", ".join(
        f"{app.application_name or '(no application_name)'} {app.older} of {app.count}"
        for app in idle.by_application
        if app.older
    )
    summary = f"{idle.count} sessions idle in transaction, {idle.older} for more than "
    summary += f"{limit}" + (f" ({per_app})" if per_app else "")
    summary += f"; idle_in_transaction_session_timeout is {timeout}."
    if note is not None:
        summary = f"{note}. Visible: {summary}"

    status: Status = "pass" if note is None else "warn"
    if idle.older:
        # With the timeout off nothing ends a leaked transaction, so it only grows.
        status = "fail" if timeout_ms == 0 else "warn"

    evidence = {
        "idle_in_transaction": idle.count,
        "hidden_sessions": idle.hidden,
        "older_than_s": idle.older_than.total_seconds(),
        "older": idle.older,
        "idle_in_transaction_session_timeout_ms": timeout_ms,
        "by_application": {
            app.application_name: {
                "count": app.count,
                "older": app.older,
                "aborted": app.aborted,
                "max_age_s": app.max_age.total_seconds() if app.max_age else None,
            }
            for app in idle.by_application
        },
    }
    return Finding("idle in transaction", status, summary, evidence)


def _blocking_finding(locks: LockWaits, hidden: int) -> Finding:
    if not locks.waiters:
        summary = "No session waits for a lock."
        if hidden:
            # pg_blocking_pids needs no privilege, so the lock graph is complete.
            summary = (
                f"No session waits for a lock; pg_blocking_pids covers the {hidden} "
                "sessions that pg_stat_activity hides from this role."
            )
        return Finding("lock blocking", "pass", summary, {"hidden_sessions": hidden})
    longest = locks.longest_wait
    heads = "; ".join(
        f"{describe_root(root)} blocks {root.blocks_total}" for root in locks.roots
    )
    summary = (
        f"{len(locks.waiters)} sessions wait for locks, longest "
        f"{format_age(longest) if longest else 'unknown'}. Root blockers: {heads}."
    )
    unknown = sum(1 for waiter in locks.waiters if waiter.waited is None)
    if unknown:
        summary += (
            f" How long {unknown} of them have waited is unknown: their times are "
            "hidden from this role (grant it pg_monitor to see them)."
        )
    status: Status = "fail" if longest and longest > LOCK_WAIT_LIMIT else "warn"
    evidence = {
        "waiting": len(locks.waiters),
        "wait_unknown": unknown,
        "longest_wait_s": longest.total_seconds() if longest else None,
        "roots": [
            {
                "pid": root.pid,
                "usename": root.usename,
                "application_name": root.application_name,
                "client_addr": root.client_addr,
                "blocks_directly": root.blocks_directly,
                "blocks_total": root.blocks_total,
            }
            for root in locks.roots
        ],
    }
    return Finding("lock blocking", status, summary, evidence)


def _long_query_finding(slow: LongRunning, note: str | None) -> Finding:
    limit = format_age(slow.min_duration)
    if not slow.queries and note is not None:
        summary = (
            f"{note}. No visible client query has been running for {limit} or more."
        )
        hidden = {"hidden_sessions": slow.hidden}
        return Finding("long-running queries", "warn", summary, hidden)
    if not slow.queries:
        summary = f"No client query has been running for {limit} or more."
        return Finding("long-running queries", "pass", summary, {})
    top = slow.queries[0]
    waiting = sum(1 for query in slow.queries if query.waiting_on_lock)
    summary = (
        f"{len(slow.queries)} queries running for {limit} or more "
        f"({waiting} of them waiting for locks); longest: pid {top.pid} "
        f"({top.application_name}) for {format_age(top.age)}."
    )
    if note is not None:
        summary = f"{note}. Visible: {summary}"
    evidence: dict[str, Any] = {
        "hidden_sessions": slow.hidden,
        "queries": [
            {
                "pid": q.pid,
                "application_name": q.application_name,
                "age_s": q.age.total_seconds(),
                "waiting_on_lock": q.waiting_on_lock,
            }
            for q in slow.queries
        ],
    }
    # A long report or migration can be legitimate, so this only warns.
    return Finding("long-running queries", "warn", summary, evidence)


def _actions_finding(actions: list[str], note: str | None) -> Finding:
    if not actions and note is not None:
        summary = f"{note}. Nothing to remediate among the visible sessions."
        return Finding("recommended actions", "warn", summary, {"actions": []})
    if not actions:
        return Finding("recommended actions", "pass", "Nothing to remediate.", {})
    summary = " ".join(f"{n}. {text}" for n, text in enumerate(actions, 1))
    if note is not None:
        summary = f"{note}. From the visible sessions: {summary}"
    return Finding("recommended actions", "warn", summary, {"actions": actions})
