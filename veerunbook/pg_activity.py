"""Analyse the sessions of a pg_stat_activity snapshot: connection capacity, sessions
per state and sessions idle in transaction.

Nothing here touches a server. ``veerunbook.pg_snapshot`` describes the snapshot and
which backends count as connections.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from veerunbook.pg_snapshot import (
    ACTIVE,
    IDLE_IN_TRANSACTION,
    IDLE_IN_TRANSACTION_ABORTED,
    Backend,
    Snapshot,
    format_age,
)

# pandas is imported in the methods that build tables, because importing it takes
# about 0.3 s (-X importtime, 2 cores) and a notebook's first cell imports this module
# before any table is shown.
if TYPE_CHECKING:
    import pandas as pd

# Sessions idle in transaction for longer than this are reported as leaked.
IDLE_LIMIT = timedelta(minutes=5)
# The row of the state table for sessions that the reading role may not see.
HIDDEN_STATE = "hidden (type and state unknown)"


@dataclass(frozen=True)
class Capacity:
    """Client connections against ``max_connections`` and the reserved slots.

    ``usable`` is what roles without the SUPERUSER attribute may use. PostgreSQL
    admits such a role only while more than the reserved slots are free, and every
    client backend (superusers too) uses a slot. So ``full`` means that
    ``client_backends`` has reached ``usable``, and new application connections fail
    with SQLSTATE 53300. ``utilisation`` is ``app_backends / usable``.

    ``sessions`` counts every row of pg_stat_activity, which PostgreSQL lists to every
    role.
    ``hidden`` counts the rows whose type the reading role may not see but that may
    be client backends (``Snapshot.hidden_clients``). The counts of client backends
    and ``utilisation`` are lower bounds then, and up to ``hidden`` more client
    backends may hold slots.
    """

    max_connections: int
    reserved: int
    usable: int
    client_backends: int
    superuser_backends: int
    app_backends: int
    utilisation: float
    full: bool
    sessions: int = 0
    hidden: int = 0

    @property
    def may_be_full(self) -> bool:
        """Whether the limit is reached when every hidden session is a client."""
        return self.client_backends + self.hidden >= self.usable

    def rows(self) -> list[dict[str, Any]]:
        """Return the numbers as quantity/value rows for a table."""
        return [
            {"quantity": key, "value": value} for key, value in asdict(self).items()
        ]

    def frame(self) -> pd.DataFrame:
        """Return the numbers as a quantity/value table."""
        import pandas as pd

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
        sessions=len(snap.backends),
        hidden=len(snap.hidden_clients()),
    )


@dataclass(frozen=True)
class StateCounts:
    """Client backends per state, with the active ones split into running and waiting.

    ``counts`` and ``active`` include the runbook's own session, ``active_without_own``,
    ``running`` and ``waiting_on_lock`` do not. ``in_transaction`` counts sessions
    idle in a transaction, aborted or not. ``hidden`` counts the sessions whose type
    and state the reading role may not see, which the other counts leave out.
    """

    total: int
    counts: Mapping[str, int]
    active: int
    active_without_own: int
    running: int
    waiting_on_lock: int
    in_transaction: int
    in_transaction_share: float
    hidden: int = 0

    def frame(self) -> pd.DataFrame:
        """Return one row per state with its number of sessions."""
        import pandas as pd

        rows = [{"state": state, "sessions": n} for state, n in self.counts.items()]
        if self.hidden:
            rows.append({"state": HIDDEN_STATE, "sessions": self.hidden})
        return pd.DataFrame(rows)


def by_state(snap: Snapshot) -> StateCounts:
    """Count client backends per state; sessions hidden from the reading role are
    counted apart, in ``hidden``.
    """
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
        hidden=len(snap.hidden_clients()),
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
    """Sessions idle in transaction per application, and the list oldest first.

    ``hidden`` counts the sessions whose state the reading role may not see, so any
    of them may be idle in transaction too.
    """

    older_than: timedelta
    by_application: tuple[AppIdle, ...]
    sessions: tuple[IdleSession, ...]
    hidden: int = 0

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
        import pandas as pd

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
        import pandas as pd

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
    hidden = len(snap.hidden_clients())
    return IdleInTransaction(older_than, tuple(apps), tuple(sessions), hidden)


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
