"""Remediation steps for the problems in a pg_stat_activity snapshot, most urgent
first. They are text for an operator: nothing here runs them or touches a server.
"""

from __future__ import annotations

from collections import Counter

from veerunbook.pg_activity import IDLE_LIMIT, IdleInTransaction, idle_in_transaction
from veerunbook.pg_locks import (
    LockWaits,
    LongRunning,
    RootBlocker,
    lock_waits,
    long_running,
)
from veerunbook.pg_snapshot import Snapshot, format_age, sql_identifier


def recommendations(
    snap: Snapshot,
    idle: IdleInTransaction | None = None,
    locks: LockWaits | None = None,
    slow: LongRunning | None = None,
) -> list[str]:
    """Write the remediation steps that the snapshot supports, most urgent first.

    The steps are text for an operator, and nothing here runs them. The analyses are
    computed from ``snap`` when not given.
    """
    idle = idle or idle_in_transaction(snap)
    locks = locks or lock_waits(snap)
    slow = slow or long_running(snap)
    actions = [_unblock_action(root) for root in locks.roots if root.blocks_total]
    if idle.older and snap.settings.idle_in_transaction_session_timeout_ms == 0:
        actions.append(_timeout_action(idle))
    leaking = next((app for app in idle.by_application if app.older), None)
    if leaking is not None:
        name = leaking.application_name or "(no application_name)"
        actions.append(
            f"Fix the connection release path of {name}: "
            f"{leaking.count} of its sessions are idle in transaction "
            f"({leaking.older} for more than {format_age(idle.older_than)}), so it "
            "checks out connections and never commits, rolls back or releases them."
        )
    running = next((q for q in slow.queries if not q.waiting_on_lock), None)
    if running is not None and running.age > IDLE_LIMIT:
        actions.append(
            f"If the query of pid {running.pid} ({running.application_name}, running "
            f"for {format_age(running.age)}) is not needed, cancel it with "
            f"SELECT pg_cancel_backend({running.pid})."
        )
    return actions


def _unblock_action(root: RootBlocker) -> str:
    blocked = f"it blocks {root.blocks_total} sessions"
    if root.pid == 0:
        return (
            "A prepared transaction holds the lock: find it in pg_prepared_xacts and "
            f"end it with COMMIT PREPARED or ROLLBACK PREPARED; {blocked}."
        )
    if not root.in_snapshot:
        return f"Find pid {root.pid} in pg_locks and end its transaction; {blocked}."
    return (
        f"Ask the owner of {describe_root(root)} to roll back, or end the session "
        f"with SELECT pg_terminate_backend({root.pid}) as a superuser; {blocked}."
    )


def _timeout_action(idle: IdleInTransaction) -> str:
    users = Counter(s.usename for s in idle.sessions if s.age > idle.older_than)
    role = users.most_common(1)[0][0] if users else None
    seconds = int(idle.older_than.total_seconds())
    value = f"{seconds // 60}min" if seconds % 60 == 0 else f"{seconds}s"
    target = f"ALTER ROLE {sql_identifier(role)}" if role else "ALTER SYSTEM"
    return (
        "Set idle_in_transaction_session_timeout so that the server ends abandoned "
        f"transactions, for example {target} SET "
        f"idle_in_transaction_session_timeout = '{value}'."
    )


def describe_root(root: RootBlocker) -> str:
    """Describe a root blocker: its pid, role, application, client and state."""
    if not root.in_snapshot:
        what = "a prepared transaction" if root.pid == 0 else "not in the snapshot"
        return f"pid {root.pid} ({what})"
    who = ", ".join(
        part for part in (root.usename, root.application_name, root.client_addr) if part
    )
    text = f"pid {root.pid} ({who}, {root.state or 'state hidden'}"
    if root.idle_in_transaction is not None:
        text += f" for {format_age(root.idle_in_transaction)}"
    return text + ")"
