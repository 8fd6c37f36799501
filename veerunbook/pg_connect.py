"""Open bounded, read-only PostgreSQL sessions and turn psycopg errors into
``DatabaseUnavailable``.

``parse_dsn`` reads a DSN once: where it points, and a redactor that masks its
password. Messages and exceptions built here carry the DSN's host, port and user,
never its password.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from veerunbook.errors import DatabaseUnavailable, UsageError
from veerunbook.pg_errors import (
    AUTHENTICATION_FAILED,
    CLIENT_POOL_TIMEOUT,
    CONNECTION_LIMIT,
    CONNECTION_REFUSED,
    POOLER_LIMIT,
    SERVER_STARTING_OR_STOPPING,
    TIMEOUT,
    ErrorClass,
    classify_error,
)
from veerunbook.redact import Redactor

# psycopg is imported in the functions that use it, because importing it takes about
# 0.1 s (-X importtime, 2 cores) and a notebook's first cell imports this module
# without connecting.
if TYPE_CHECKING:
    import psycopg

_ADVICE = {
    CONNECTION_LIMIT: "the server has no free slot for this role, so connect as "
    "a superuser, which may use the reserved slots",
    AUTHENTICATION_FAILED: "check the user and password that the DSN names",
    CONNECTION_REFUSED: "check that the server runs and listens on that host and port",
    SERVER_STARTING_OR_STOPPING: "wait until the server has finished starting or "
    "stopping, then retry",
    TIMEOUT: "the server did not respond in time, so check the network path "
    "and the server's load, or raise the timeout",
    CLIENT_POOL_TIMEOUT: "the connection pool in front of the server is exhausted",
    POOLER_LIMIT: "the connection pooler in front of the server is full",
}


@dataclass(frozen=True)
class DsnTarget:
    """A parsed DSN: where it points, and a redactor that masks its password."""

    dsn: str
    host: str
    port: str
    user: str
    dbname: str
    redactor: Redactor

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.dbname}"


def parse_dsn(dsn: str) -> DsnTarget:
    """Parse ``dsn`` as libpq does, or raise UsageError with the password masked."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    redactor = Redactor([dsn])
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        reason = redactor.mask(str(exc).strip())
        raise UsageError(
            f"invalid database DSN: {reason}. Use a postgresql:// URL or "
            "key=value pairs as libpq accepts them."
        ) from None
    password = params.get("password")
    if password:
        redactor.add(str(password))
    return DsnTarget(
        dsn=dsn,
        host=str(params.get("host") or params.get("hostaddr") or "(default host)"),
        port=str(params.get("port") or "5432"),
        user=str(params.get("user") or "(default user)"),
        dbname=str(params.get("dbname") or "(default database)"),
        redactor=redactor,
    )


def open_connection(
    target: DsnTarget, timeout_s: float, application_name: str
) -> psycopg.Connection[dict[str, Any]]:
    """Connect with dict rows and a ``connect_timeout`` derived from ``timeout_s``."""
    import psycopg
    from psycopg.rows import dict_row

    # libpq counts connect_timeout in whole seconds and treats anything below 2 as 2.
    return psycopg.connect(
        target.dsn,
        connect_timeout=max(2, math.ceil(timeout_s)),
        application_name=application_name,
        row_factory=dict_row,
    )


def begin_read_only(conn: psycopg.Connection[Any], timeout_s: float) -> None:
    """Make the session read-only and cancel statements that run past ``timeout_s``."""
    conn.read_only = True
    # SET takes no bind parameters, but set_config does.
    conn.execute(
        "SELECT set_config('statement_timeout', %s, false)",
        (f"{max(1, round(timeout_s * 1000))}ms",),
    )


def classify_failure(exc: psycopg.Error, target: DsnTarget) -> tuple[str, ErrorClass]:
    """Return the error's message, with the password masked, and its classification."""
    import psycopg

    message = target.redactor.mask(str(exc).strip())
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return message, classify_error("connection timeout expired")
    return message, classify_error(message, exc.sqlstate)


def build_unavailable(
    exc: psycopg.Error, target: DsnTarget, doing: str
) -> DatabaseUnavailable:
    """Build the error for the failed step ``doing``, with the next step to take."""
    message, error_class = classify_failure(exc, target)
    advice = _ADVICE.get(error_class.kind, "see the server's message")
    return DatabaseUnavailable(
        f"{doing} on {target.where} failed ({error_class.kind}): {message}. "
        f"Next step: {advice}.",
        error_class,
    )
