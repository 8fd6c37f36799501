"""Analyse a pg_stat_activity snapshot: connection capacity, sessions idle in
transaction, lock chains and long-running queries.

Nothing here touches a server. A snapshot comes from ``veerunbook.pg_collect.collect``
or from CSV exports (``PgSettings.from_rows`` and ``backends_from_rows`` accept both).

Only client backends (``backend_type = 'client backend'``) are counted as connections.
Auxiliary processes, autovacuum workers, WAL senders and background workers are listed
by pg_stat_activity too, but they do not take a ``max_connections`` slot. The runbook's
own session (``Snapshot.own_pid``) is left out of the numbers that describe the
application, except where it takes a slot.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd

CLIENT_BACKEND = "client backend"
ACTIVE = "active"
IDLE_IN_TRANSACTION = "idle in transaction"
IDLE_IN_TRANSACTION_ABORTED = "idle in transaction (aborted)"

# The runbook's P2 alert: database connections above 80 % pool utilisation for 15
# minutes. One snapshot cannot show the 15 minutes, so the check warns at once.
POOL_WARN_UTILISATION = 0.80
# Sessions idle in transaction for longer than this are reported as leaked.
IDLE_LIMIT = timedelta(minutes=5)
# A lock wait longer than this fails the blocking check.
LOCK_WAIT_LIMIT = timedelta(seconds=60)
# Active queries running for longer than this are listed as long-running.
LONG_QUERY_LIMIT = timedelta(seconds=30)

Status = Literal["pass", "warn", "fail"]


def format_age(age: timedelta | None) -> str:
    """Format a duration as "3 h 11 min 58 s", "46 min 15 s", "5 min" or "7 s".

    Zero units are left out at both ends. Fractions of a second are dropped, a
    negative duration reads "0 s" and None reads "".
    """
    if age is None:
        return ""
    seconds = max(int(age.total_seconds()), 0)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    units = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    while len(units) > 1 and units[0][0] == 0:
        units.pop(0)
    while len(units) > 1 and units[-1][0] == 0:
        units.pop()
    return " ".join(f"{value} {unit}" for value, unit in units)


@dataclass(frozen=True)
class PgSettings:
    """The server settings that bound connections and idle transactions."""

    server_version: str
    max_connections: int
    superuser_reserved_connections: int
    reserved_connections: int = 0
    idle_in_transaction_session_timeout_ms: int = 0

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> PgSettings:
        """Build from ``name``/``setting`` rows as pg_settings returns them.

        ``reserved_connections`` exists from PostgreSQL 16 on and counts as 0 when
        it is missing. Raises ValueError when the connection settings are missing.
        """
        values = {str(row["name"]): row["setting"] for row in rows}
        required = ("max_connections", "superuser_reserved_connections")
        missing = [name for name in required if values.get(name) in (None, "")]
        if missing:
            raise ValueError(
                f"settings are missing {', '.join(missing)}: select them from "
                "pg_settings along with the other rows."
            )
        return cls(
            server_version=str(values.get("server_version") or "unknown"),
            max_connections=int(values["max_connections"]),
            superuser_reserved_connections=int(
                values["superuser_reserved_connections"]
            ),
            reserved_connections=int(values.get("reserved_connections") or 0),
            idle_in_transaction_session_timeout_ms=int(
                values.get("idle_in_transaction_session_timeout") or 0
            ),
        )


@dataclass(frozen=True)
class Backend:
    """One row of pg_stat_activity, with ``pg_blocking_pids(pid)`` as ``blocked_by``.

    Times are aware datetimes. ``superuser`` is None when the row has no value for it.
    """

    pid: int
    usename: str | None
    application_name: str
    client_addr: str | None
    backend_type: str
    state: str | None
    backend_start: datetime | None
    xact_start: datetime | None
    query_start: datetime | None
    state_change: datetime | None
    wait_event_type: str | None
    wait_event: str | None
    blocked_by: tuple[int, ...]
    query: str | None
    superuser: bool | None = None

    @property
    def is_client(self) -> bool:
        """Whether this backend serves a client connection."""
        return self.backend_type == CLIENT_BACKEND

    @property
    def waiting_on_lock(self) -> bool:
        """Whether this backend waits for a heavyweight lock."""
        return self.wait_event_type == "Lock"


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _time(value: Any, column: str) -> datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(
            f"{column} {value!r} has no time zone: export it as timestamptz."
        )
    return moment


def _pids(value: Any) -> tuple[int, ...]:
    """Read ``pg_blocking_pids`` from a list or from its text form ``{1,2}``."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        inner = value.strip().removeprefix("{").removesuffix("}")
        return tuple(int(part) for part in inner.split(",") if part.strip())
    return tuple(int(pid) for pid in value)


def _flag(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("t", "true", "1", "yes", "on")


def backends_from_rows(
    rows: Iterable[Mapping[str, Any]], superuser_roles: Collection[str] = ()
) -> list[Backend]:
    """Build backends from pg_stat_activity rows, as CSV strings or driver values.

    A row without a ``superuser`` value gets one from ``superuser_roles`` when that
    is given: True for the roles named there, False for the others.
    """
    backends = []
    for row in rows:
        superuser = _flag(row.get("superuser"))
        usename = _text(row.get("usename"))
        if superuser is None and superuser_roles and usename is not None:
            superuser = usename in superuser_roles
        backends.append(
            Backend(
                pid=int(row["pid"]),
                usename=usename,
                application_name=str(row.get("application_name") or ""),
                client_addr=_text(row.get("client_addr")),
                backend_type=str(row.get("backend_type") or ""),
                state=_text(row.get("state")),
                backend_start=_time(row.get("backend_start"), "backend_start"),
                xact_start=_time(row.get("xact_start"), "xact_start"),
                query_start=_time(row.get("query_start"), "query_start"),
                state_change=_time(row.get("state_change"), "state_change"),
                wait_event_type=_text(row.get("wait_event_type")),
                wait_event=_text(row.get("wait_event")),
                blocked_by=_pids(row.get("blocked_by")),
                query=_text(row.get("query")),
                superuser=superuser,
            )
        )
    return backends


@dataclass(frozen=True)
class Snapshot:
    """pg_stat_activity and the connection settings at one moment.

    ``own_pid`` is the runbook's own session, which is left out of the counts that
    describe the application.
    """

    taken_at: datetime
    settings: PgSettings
    backends: tuple[Backend, ...]
    own_pid: int | None = None

    def __post_init__(self) -> None:
        if self.taken_at.tzinfo is None:
            raise ValueError("taken_at must be an aware datetime (with a time zone).")
        object.__setattr__(self, "backends", tuple(self.backends))

    def clients(self, *, include_own: bool = True) -> list[Backend]:
        """Return the client backends, with or without the runbook's own session."""
        return [
            backend
            for backend in self.backends
            if backend.is_client and (include_own or backend.pid != self.own_pid)
        ]

    def age(self, since: datetime | None) -> timedelta | None:
        """Return the time from ``since`` to ``taken_at`` (at least zero)."""
        if since is None:
            return None
        return max(self.taken_at - since, timedelta(0))


@dataclass(frozen=True)
class Capacity:
    """Client connections against ``max_connections`` and the reserved slots.

    ``usable`` is what roles without the SUPERUSER attribute may use. PostgreSQL
    admits such a role only while more than the reserved slots are free, and every
    client backend (superusers too) uses a slot. So ``full`` means that
    ``client_backends`` has reached ``usable``, and new application connections fail
    with SQLSTATE 53300. ``utilisation`` is ``app_backends / usable``.
    """

    max_connections: int
    reserved: int
    usable: int
    client_backends: int
    superuser_backends: int
    app_backends: int
    utilisation: float
    full: bool

    def rows(self) -> list[dict[str, Any]]:
        """Return the numbers as quantity/value rows for a table."""
        return [
            {"quantity": key, "value": value} for key, value in asdict(self).items()
        ]

    def frame(self) -> pd.DataFrame:
        """Return the numbers as a quantity/value table."""
        return pd.DataFrame(self.rows())


def capacity(snap: Snapshot) -> Capacity:
    """Count client backends against the connection limit."""
    settings = snap.settings
    clients = snap.clients()
    reserved = settings.superuser_reserved_connections + settings.reserved_connections
    usable = max(settings.max_connections - reserved, 0)
    superusers = sum(1 for backend in clients if backend.superuser is True)
    app = len(clients) - superusers
    return Capacity(
        max_connections=settings.max_connections,
        reserved=reserved,
        usable=usable,
        client_backends=len(clients),
        superuser_backends=superusers,
        app_backends=app,
        utilisation=app / usable if usable else 1.0,
        full=len(clients) >= usable,
    )


@dataclass(frozen=True)
class StateCounts:
    """Client backends per state, with the active ones split into running and waiting.

    ``counts`` and ``active`` include the runbook's own session, ``active_without_own``,
    ``running`` and ``waiting_on_lock`` do not. ``in_transaction`` counts sessions
    idle in a transaction, aborted or not.
    """

    total: int
    counts: Mapping[str, int]
    active: int
    active_without_own: int
    running: int
    waiting_on_lock: int
    in_transaction: int
    in_transaction_share: float

    def frame(self) -> pd.DataFrame:
        """Return one row per state with its number of sessions."""
        rows = [{"state": state, "sessions": n} for state, n in self.counts.items()]
        return pd.DataFrame(rows)


def by_state(snap: Snapshot) -> StateCounts:
    """Count client backends per state (``unknown`` where the state is hidden)."""
    clients = snap.clients()
    counts = Counter(backend.state or "unknown" for backend in clients)
    active = [b for b in snap.clients(include_own=False) if b.state == ACTIVE]
    waiting = sum(1 for backend in active if backend.waiting_on_lock)
    in_transaction = counts[IDLE_IN_TRANSACTION] + counts[IDLE_IN_TRANSACTION_ABORTED]
    return StateCounts(
        total=len(clients),
        counts=dict(counts.most_common()),
        active=counts[ACTIVE],
        active_without_own=len(active),
        running=len(active) - waiting,
        waiting_on_lock=waiting,
        in_transaction=in_transaction,
        in_transaction_share=in_transaction / len(clients) if clients else 0.0,
    )


@dataclass(frozen=True)
class IdleSession:
    """A session idle in transaction, with ``age`` the time since its last statement."""

    pid: int
    usename: str | None
    application_name: str
    client_addr: str | None
    age: timedelta
    transaction_age: timedelta | None
    query: str | None


@dataclass(frozen=True)
class AppIdle:
    """Sessions idle in transaction of one application_name.

    ``count``, ``older``, ``min_age`` and ``max_age`` describe the sessions in state
    ``idle in transaction``, and ``aborted`` counts the ``(aborted)`` ones apart.
    """

    application_name: str
    count: int
    older: int
    min_age: timedelta | None
    max_age: timedelta | None
    aborted: int


@dataclass(frozen=True)
class IdleInTransaction:
    """Sessions idle in transaction per application, and the list oldest first."""

    older_than: timedelta
    by_application: tuple[AppIdle, ...]
    sessions: tuple[IdleSession, ...]

    @property
    def count(self) -> int:
        return len(self.sessions)

    @property
    def older(self) -> int:
        return sum(app.older for app in self.by_application)

    def application(self, name: str) -> AppIdle | None:
        """Return the entry for application_name ``name``, or None."""
        return next(
            (a for a in self.by_application if a.application_name == name), None
        )

    def frame(self) -> pd.DataFrame:
        """Return one row per application, with formatted ages."""
        rows = [
            {
                "application": app.application_name,
                "idle in transaction": app.count,
                f"older than {format_age(self.older_than)}": app.older,
                "min age": format_age(app.min_age),
                "max age": format_age(app.max_age),
                "aborted": app.aborted,
            }
            for app in self.by_application
        ]
        return pd.DataFrame(rows)

    def sessions_frame(self) -> pd.DataFrame:
        """Return one row per session, oldest first."""
        rows = [
            {
                "pid": s.pid,
                "user": s.usename,
                "application": s.application_name,
                "client": s.client_addr,
                "idle for": format_age(s.age),
                "transaction age": format_age(s.transaction_age),
                "last query": s.query,
            }
            for s in self.sessions
        ]
        return pd.DataFrame(rows)


def idle_in_transaction(
    snap: Snapshot, older_than: timedelta = IDLE_LIMIT
) -> IdleInTransaction:
    """Group the sessions idle in transaction by application_name.

    A session's age is ``taken_at - state_change``: how long it has waited for its
    client since its last statement. Applications are ordered by count, largest first.
    """
    sessions: list[IdleSession] = []
    aborted: Counter[str] = Counter()
    for backend in snap.clients(include_own=False):
        if backend.state == IDLE_IN_TRANSACTION_ABORTED:
            aborted[backend.application_name] += 1
        elif backend.state == IDLE_IN_TRANSACTION:
            sessions.append(_idle_session(snap, backend))
    sessions.sort(key=lambda s: s.age, reverse=True)

    ages: defaultdict[str, list[timedelta]] = defaultdict(list)
    for session in sessions:
        ages[session.application_name].append(session.age)
    apps = [
        AppIdle(
            application_name=name,
            count=len(ages[name]),
            older=sum(1 for age in ages[name] if age > older_than),
            min_age=min(ages[name], default=None),
            max_age=max(ages[name], default=None),
            aborted=aborted[name],
        )
        for name in {*ages, *aborted}
    ]
    apps.sort(key=lambda app: (-app.count, -app.aborted, app.application_name))
    return IdleInTransaction(older_than, tuple(apps), tuple(sessions))


def _idle_session(snap: Snapshot, backend: Backend) -> IdleSession:
    return IdleSession(
        pid=backend.pid,
        usename=backend.usename,
        application_name=backend.application_name,
        client_addr=backend.client_addr,
        age=snap.age(backend.state_change) or timedelta(0),
        transaction_age=snap.age(backend.xact_start),
        query=backend.query,
    )


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
    """Active client queries older than ``min_duration``, oldest first."""

    min_duration: timedelta
    queries: tuple[RunningQuery, ...]

    def frame(self) -> pd.DataFrame:
        """Return one row per query, oldest first."""
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
    return LongRunning(min_duration, tuple(found))


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
    return [
        _connection_finding(capacity(snap)),
        _idle_finding(idle, snap.settings),
        _blocking_finding(locks),
        _long_query_finding(slow),
        _actions_finding(recommendations(snap, idle, locks, slow)),
    ]


def _connection_finding(cap: Capacity) -> Finding:
    summary = (
        f"{cap.client_backends} client backends of max_connections "
        f"{cap.max_connections}; roles without SUPERUSER may use {cap.usable} and "
        f"hold {cap.app_backends} ({cap.utilisation:.0%})"
    )
    status: Status = "pass"
    if cap.full:
        status = "fail"
        summary += "; new application connections are rejected (SQLSTATE 53300)"
    elif cap.utilisation >= POOL_WARN_UTILISATION:
        status = "warn"
        summary += f"; at or above the {POOL_WARN_UTILISATION:.0%} warning level"
    return Finding("connection limit", status, summary + ".", asdict(cap))


def _idle_finding(idle: IdleInTransaction, settings: PgSettings) -> Finding:
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
    status: Status = "pass"
    if idle.older:
        # With the timeout off nothing ends a leaked transaction, so it only grows.
        status = "fail" if timeout_ms == 0 else "warn"
    evidence = {
        "idle_in_transaction": idle.count,
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


def _describe_root(root: RootBlocker) -> str:
    if not root.in_snapshot:
        what = "a prepared transaction" if root.pid == 0 else "not in the snapshot"
        return f"pid {root.pid} ({what})"
    who = ", ".join(
        part for part in (root.usename, root.application_name, root.client_addr) if part
    )
    text = f"pid {root.pid} ({who}, {root.state}"
    if root.idle_in_transaction is not None:
        text += f" for {format_age(root.idle_in_transaction)}"
    return text + ")"


def _blocking_finding(locks: LockWaits) -> Finding:
    if not locks.waiters:
        return Finding("lock blocking", "pass", "No session waits for a lock.", {})
    longest = locks.longest_wait
    heads = "; ".join(
        f"{_describe_root(root)} blocks {root.blocks_total}" for root in locks.roots
    )
    summary = (
        f"{len(locks.waiters)} sessions wait for locks, longest "
        f"{format_age(longest)}. Root blockers: {heads}."
    )
    status: Status = "fail" if longest and longest > LOCK_WAIT_LIMIT else "warn"
    evidence = {
        "waiting": len(locks.waiters),
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


def _long_query_finding(slow: LongRunning) -> Finding:
    limit = format_age(slow.min_duration)
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
    evidence = {
        "queries": [
            {
                "pid": q.pid,
                "application_name": q.application_name,
                "age_s": q.age.total_seconds(),
                "waiting_on_lock": q.waiting_on_lock,
            }
            for q in slow.queries
        ]
    }
    # A long report or migration can be legitimate, so this only warns.
    return Finding("long-running queries", "warn", summary, evidence)


def _actions_finding(actions: list[str]) -> Finding:
    if not actions:
        return Finding("recommended actions", "pass", "Nothing to remediate.", {})
    summary = " ".join(f"{n}. {text}" for n, text in enumerate(actions, 1))
    return Finding("recommended actions", "warn", summary, {"actions": actions})


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
        f"Ask the owner of {_describe_root(root)} to roll back, or end the session "
        f"with SELECT pg_terminate_backend({root.pid}) as a superuser; {blocked}."
    )


def _timeout_action(idle: IdleInTransaction) -> str:
    users = Counter(s.usename for s in idle.sessions if s.age > idle.older_than)
    role = users.most_common(1)[0][0] if users else None
    seconds = int(idle.older_than.total_seconds())
    value = f"{seconds // 60}min" if seconds % 60 == 0 else f"{seconds}s"
    target = f"ALTER ROLE {_identifier(role)}" if role else "ALTER SYSTEM"
    return (
        "Set idle_in_transaction_session_timeout so that the server ends abandoned "
        f"transactions, for example {target} SET "
        f"idle_in_transaction_session_timeout = '{value}'."
    )


def _identifier(name: str) -> str:
    """Quote ``name`` as an SQL identifier when it is not a plain lower-case one."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'
