"""A pg_stat_activity snapshot: the connection settings, the backends and the moment.

Nothing here touches a server. A snapshot comes from ``veerunbook.pg_collect.collect``
or from CSV exports (``PgSettings.from_rows`` and ``backends_from_rows`` accept both).

Only client backends (``backend_type = 'client backend'``) are counted as connections.
Auxiliary processes, autovacuum workers, WAL senders and background workers are listed
by pg_stat_activity too, but they do not take a ``max_connections`` slot. The runbook's
own session (``Snapshot.own_pid``) is left out of the numbers that describe the
application, except where it takes a slot.

A role that is neither a superuser nor a member of pg_read_all_stats (which
pg_monitor includes) is shown only the pid, role, database and application_name of
other roles' sessions: PostgreSQL returns NULL for their backend_type, state and
times and "<insufficient privilege>" for their query. ``Backend.hidden`` marks such
rows and ``Snapshot.hidden_note`` gives their number, so that the analyses report
"unknown" for them instead of leaving them out.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from veerunbook.pg_mask import mask_sql

CLIENT_BACKEND = "client backend"
ACTIVE = "active"
IDLE_IN_TRANSACTION = "idle in transaction"
IDLE_IN_TRANSACTION_ABORTED = "idle in transaction (aborted)"
# The query that pg_stat_activity shows for a session the reading role may not see.
INSUFFICIENT_PRIVILEGE = "<insufficient privilege>"


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
    ``in_database`` is True for a row with a datname, False for one without, and None
    when the row came without a datname column.
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
    in_database: bool | None = None

    @property
    def is_client(self) -> bool:
        """Whether this backend serves a client connection."""
        return self.backend_type == CLIENT_BACKEND

    @property
    def waiting_on_lock(self) -> bool:
        """Whether this backend waits for a heavyweight lock."""
        return self.wait_event_type == "Lock"

    @property
    def hidden(self) -> bool:
        """Whether PostgreSQL withheld this row's type, state and query from the
        reading role. Every visible row has a backend_type.
        """
        return self.query == INSUFFICIENT_PRIVILEGE or not self.backend_type


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


def _in_database(row: Mapping[str, Any]) -> bool | None:
    if "datname" not in row:
        return None
    return _text(row["datname"]) is not None


def backends_from_rows(
    rows: Iterable[Mapping[str, Any]], superuser_roles: Collection[str] = ()
) -> list[Backend]:
    """Build backends from pg_stat_activity rows, as CSV strings or driver values.

    A row without a ``superuser`` value gets one from ``superuser_roles`` when that
    is given: True for the roles named there, False for the others. Passwords in the
    query are masked (see ``veerunbook.pg_mask``).
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
                query=mask_sql(_text(row.get("query"))),
                superuser=superuser,
                in_database=_in_database(row),
            )
        )
    return backends


@dataclass(frozen=True)
class Snapshot:
    """pg_stat_activity and the connection settings at one moment.

    ``own_pid`` is the runbook's own session, which is left out of the counts that
    describe the application. ``role`` is the role that read pg_stat_activity, or
    None when that is not known (a CSV export).
    """

    taken_at: datetime
    settings: PgSettings
    backends: tuple[Backend, ...]
    own_pid: int | None = None
    role: str | None = None

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

    def hidden(self) -> list[Backend]:
        """Return the rows whose type, state and query the reading role may not see."""
        return [backend for backend in self.backends if backend.hidden]

    def hidden_clients(self) -> list[Backend]:
        """Return the hidden rows that may be client backends.

        A client backend runs as a role and is connected to a database, so a hidden
        row without a role or without a database is a background process
        (checkpointer, WAL writer, autovacuum or logical replication launcher).
        """
        return [
            backend
            for backend in self.hidden()
            if backend.usename is not None and backend.in_database is not False
        ]

    def hidden_note(self) -> str | None:
        """Say how many sessions that may be client backends are hidden, and how to
        see them, or return None when there are none.
        """
        hidden = len(self.hidden_clients())
        if not hidden:
            return None
        role = f"role {self.role}" if self.role else "the role that read them"
        grantee = sql_identifier(self.role) if self.role else "<role>"
        return (
            f"unknown: {hidden} of {len(self.backends)} sessions are hidden from "
            f"{role}; grant pg_monitor (GRANT pg_monitor TO {grantee}) to see them"
        )


def sql_identifier(name: str) -> str:
    """Quote ``name`` as an SQL identifier when it is not a plain lower-case one."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'
