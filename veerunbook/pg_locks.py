"""Follow lock chains to their root blockers, and list long-running queries, in a
pg_stat_activity snapshot.

Nothing here touches a server. The lock graph comes from ``pg_blocking_pids(pid)``,
which the snapshot keeps as ``Backend.blocked_by``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from veerunbook.pg_snapshot import (
    ACTIVE,
    IDLE_IN_TRANSACTION,
    Backend,
    Snapshot,
    format_age,
)

# pandas is imported in the methods that build tables, because importing it takes
# about 0.3 s (-X importtime, 2 cores) and a notebook's first cell imports this module
# before any table is shown.
if TYPE_CHECKING:
    import pandas as pd

# Active queries running for longer than this are listed as long-running.
LONG_QUERY_LIMIT = timedelta(seconds=30)


@dataclass(frozen=True)
class Waiter:
    """A session waiting for a lock, with its direct blockers and its root blockers."""

    pid: int
    usename: str | None
    application_name: str
    wait_event_type: str | None
    wait_event: str | None
    waited: timedelta | None
    blocked_by: tuple[int, ...]
    roots: tuple[int, ...]
    query: str | None


@dataclass(frozen=True)
class RootBlocker:
    """The session at the head of a lock chain: it blocks others, waits for none.

    ``in_snapshot`` is false for a pid that pg_stat_activity did not list; pid 0 is a
    prepared transaction (see pg_prepared_xacts). ``in_cycle`` marks the members of a
    wait cycle that has no head, which the deadlock detector will break.
    """

    pid: int
    in_snapshot: bool
    in_cycle: bool
    usename: str | None
    application_name: str | None
    client_addr: str | None
    state: str | None
    idle_in_transaction: timedelta | None
    transaction_age: timedelta | None
    query: str | None
    blocks_directly: int
    blocks_total: int
    longest_wait: timedelta | None


@dataclass(frozen=True)
class LockWaits:
    """Waiting sessions, longest wait first, and root blockers, most blocking first."""

    waiters: tuple[Waiter, ...]
    roots: tuple[RootBlocker, ...]

    @property
    def longest_wait(self) -> timedelta | None:
        return max((w.waited for w in self.waiters if w.waited), default=None)

    def frame(self) -> pd.DataFrame:
        """Return one row per root blocker."""
        import pandas as pd

        rows = [
            {
                "pid": r.pid,
                "user": r.usename,
                "application": r.application_name,
                "client": r.client_addr,
                "state": r.state,
                "idle in transaction": format_age(r.idle_in_transaction),
                "transaction age": format_age(r.transaction_age),
                "blocks directly": r.blocks_directly,
                "blocks in total": r.blocks_total,
                "longest wait": format_age(r.longest_wait),
                "last query": r.query,
            }
            for r in self.roots
        ]
        return pd.DataFrame(rows)

    def waiters_frame(self) -> pd.DataFrame:
        """Return one row per waiting session."""
        import pandas as pd

        rows = [
            {
                "pid": w.pid,
                "application": w.application_name,
                "waits for": _wait_event(w.wait_event_type, w.wait_event),
                "waited": format_age(w.waited),
                "blocked by": ", ".join(map(str, w.blocked_by)),
                "root": ", ".join(map(str, w.roots)),
                "query": w.query,
            }
            for w in self.waiters
        ]
        return pd.DataFrame(rows)


def _wait_event(event_type: str | None, event: str | None) -> str:
    return f"{event_type}/{event}" if event_type else ""


def _reachable(graph: Mapping[int, tuple[int, ...]], start: int) -> set[int]:
    """Return every pid that ``start`` waits for, directly or through others."""
    seen: set[int] = set()
    stack = list(graph.get(start, ()))
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(graph.get(pid, ()))
    return seen


def _root_pids(graph: Mapping[int, tuple[int, ...]], pid: int) -> tuple[set[int], bool]:
    """Return the heads of ``pid``'s lock chains, and whether they form a cycle."""
    reach = _reachable(graph, pid)
    heads = {other for other in reach if not graph.get(other)}
    if heads:
        return heads, False
    # Every reachable session waits for another one, so they form a cycle without a
    # head. Its members are reported as the roots.
    return {other for other in reach if other in _reachable(graph, other)}, True


def lock_waits(snap: Snapshot) -> LockWaits:
    """Follow ``blocked_by`` from every waiting session to the sessions at its head.

    A blocker missing from the snapshot, or one that waits for no other session, is
    a head. A session's wait is ``taken_at - state_change``, the time since its
    statement started, so it includes the part run before it had to wait.
    """
    graph = {b.pid: b.blocked_by for b in snap.backends if b.blocked_by}
    by_pid = {b.pid: b for b in snap.backends}
    waiters: list[Waiter] = []
    reach: dict[int, set[int]] = {}
    cyclic: set[int] = set()
    for pid in graph:
        backend = by_pid[pid]
        heads, in_cycle = _root_pids(graph, pid)
        reach[pid] = _reachable(graph, pid)
        if in_cycle:
            cyclic |= heads
        waiters.append(
            Waiter(
                pid=pid,
                usename=backend.usename,
                application_name=backend.application_name,
                wait_event_type=backend.wait_event_type,
                wait_event=backend.wait_event,
                waited=snap.age(backend.state_change or backend.query_start),
                blocked_by=backend.blocked_by,
                roots=tuple(sorted(heads)),
                query=backend.query,
            )
        )
    waiters.sort(key=lambda w: w.waited or timedelta(0), reverse=True)
    root_pids = sorted({root for waiter in waiters for root in waiter.roots})
    roots = [
        _root(snap, by_pid.get(pid), pid, waiters, reach, cyclic) for pid in root_pids
    ]
    roots.sort(key=lambda r: (-r.blocks_total, -r.blocks_directly, r.pid))
    return LockWaits(tuple(waiters), tuple(roots))


def _root(
    snap: Snapshot,
    backend: Backend | None,
    pid: int,
    waiters: list[Waiter],
    reach: Mapping[int, set[int]],
    cyclic: set[int],
) -> RootBlocker:
    blocked = [w for w in waiters if pid in reach[w.pid] and w.pid != pid]
    idle = None
    if backend is not None and (backend.state or "").startswith(IDLE_IN_TRANSACTION):
        idle = snap.age(backend.state_change)
    return RootBlocker(
        pid=pid,
        in_snapshot=backend is not None,
        in_cycle=pid in cyclic,
        usename=backend.usename if backend else None,
        application_name=backend.application_name if backend else None,
        client_addr=backend.client_addr if backend else None,
        state=backend.state if backend else None,
        idle_in_transaction=idle,
        transaction_age=snap.age(backend.xact_start) if backend else None,
        query=backend.query if backend else None,
        blocks_directly=sum(1 for w in blocked if pid in w.blocked_by),
        blocks_total=len(blocked),
        longest_wait=max((w.waited for w in blocked if w.waited), default=None),
    )


@dataclass(frozen=True)
class RunningQuery:
    """An active client query, with ``age`` the time since it started."""

    pid: int
    usename: str | None
    application_name: str
    client_addr: str | None
    age: timedelta
    transaction_age: timedelta | None
    wait_event_type: str | None
    wait_event: str | None
    query: str | None

    @property
    def waiting_on_lock(self) -> bool:
        return self.wait_event_type == "Lock"


@dataclass(frozen=True)
class LongRunning:
    """Active client queries older than ``min_duration``, oldest first.

    ``hidden`` counts the sessions whose state and query the reading role may not
    see, so any of them may run a long query too.
    """

    min_duration: timedelta
    queries: tuple[RunningQuery, ...]
    hidden: int = 0

    def frame(self) -> pd.DataFrame:
        """Return one row per query, oldest first."""
        import pandas as pd

        rows = [
            {
                "pid": q.pid,
                "user": q.usename,
                "application": q.application_name,
                "running for": format_age(q.age),
                "wait event": _wait_event(q.wait_event_type, q.wait_event),
                "query": q.query,
            }
            for q in self.queries
        ]
        return pd.DataFrame(rows)


def long_running(
    snap: Snapshot, min_duration: timedelta = LONG_QUERY_LIMIT
) -> LongRunning:
    """List active client queries running for at least ``min_duration``.

    The runbook's own session and backends that are not client backends (autovacuum
    workers, WAL senders, background workers) are left out.
    """
    found = []
    for backend in snap.clients(include_own=False):
        age = snap.age(backend.query_start)
        if backend.state != ACTIVE or age is None or age < min_duration:
            continue
        found.append(
            RunningQuery(
                pid=backend.pid,
                usename=backend.usename,
                application_name=backend.application_name,
                client_addr=backend.client_addr,
                age=age,
                transaction_age=snap.age(backend.xact_start),
                wait_event_type=backend.wait_event_type,
                wait_event=backend.wait_event,
                query=backend.query,
            )
        )
    found.sort(key=lambda q: q.age, reverse=True)
    return LongRunning(min_duration, tuple(found), len(snap.hidden_clients()))
