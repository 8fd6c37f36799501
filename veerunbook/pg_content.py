"""Content checks of a PostgreSQL database: table digests and amcheck's index check.

``snapshot_session`` opens a read-only, repeatable-read transaction, so that every
read in it returns the database as it was at one moment. ``pg_digests`` covers every
ordinary table outside the system schemas, named ``schema.table``, with one line per
row: the row's text form, sorted under the ``C`` collation so that the order does
not depend on the server's locale. ``amcheck`` checks the B-tree indexes when the
extension is installed, and reports that it is not otherwise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from veerunbook.backup_manifest import TableDigests, digest_rows
from veerunbook.errors import BackupError
from veerunbook.pg_connect import (
    begin_read_only,
    build_unavailable,
    open_connection,
    parse_dsn,
)

# psycopg is imported in the functions that use it, because its import takes about
# 0.1 s and the database-rollback notebook imports this module before any read.
if TYPE_CHECKING:
    import psycopg

APPLICATION_NAME = "veerunbook-database-rollback"
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1, 2
"""
_ROWS = 'SELECT t::text FROM {} t ORDER BY t::text COLLATE "C"'
_BTREE_INDEXES = """
SELECT c.oid::regclass::text FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND n.nspname <> ALL(%s) ORDER BY 1
"""


@dataclass(frozen=True)
class Amcheck:
    """The result of amcheck's B-tree index check, or why it did not run."""

    available: bool
    checked: int
    problems: list[str]
    detail: str


def pg_digests(conn: psycopg.Connection[Any]) -> TableDigests:
    """Digest every ordinary table of the database that ``conn`` is connected to."""
    from psycopg import sql

    tables = conn.execute(_TABLES, (list(_SYSTEM_SCHEMAS),)).fetchall()
    digests = {}
    for row in tables:
        schema, table = _pair(row)
        query = sql.SQL(_ROWS).format(sql.Identifier(schema, table))
        # A server-side cursor streams the rows instead of loading the table.
        with conn.cursor(name="veerunbook_digest") as cursor:
            cursor.execute(query)
            digests[f"{schema}.{table}"] = digest_rows(
                (first_column(values),) for values in cursor
            )
    return digests


def live_pg_digests(dsn: str, timeout_s: float) -> TableDigests:
    """Digest the live database in one read-only, repeatable-read transaction."""
    with snapshot_session(dsn, timeout_s) as conn:
        return pg_digests(conn)


def amcheck(dsn: str, timeout_s: float) -> Amcheck:
    """Check every B-tree index with amcheck when the extension is installed.

    It never installs the extension, because that would change the database.
    """
    import psycopg

    with snapshot_session(dsn, timeout_s) as conn:
        row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'amcheck'"
        ).fetchone()
        if row is None:
            detail = "amcheck is not installed (CREATE EXTENSION amcheck enables it)"
            return Amcheck(False, 0, [], detail)
        indexes = [
            str(first_column(found))
            for found in conn.execute(_BTREE_INDEXES, (list(_SYSTEM_SCHEMAS),))
        ]
        problems = []
        for index in indexes:
            try:
                with conn.transaction():
                    conn.execute("SELECT bt_index_check(%s::regclass)", (index,))
            except psycopg.Error as exc:
                problems.append(f"{index}: {str(exc).strip().splitlines()[0]}")
    detail = f"amcheck {first_column(row)} checked {len(indexes)} B-tree indexes"
    return Amcheck(True, len(indexes), problems, detail)


@contextlib.contextmanager
def snapshot_session(dsn: str, timeout_s: float) -> Iterator[psycopg.Connection[Any]]:
    """Open a read-only, repeatable-read transaction, rolled back and closed on exit.

    ``timeout_s`` bounds the connection and each statement. Raises
    DatabaseUnavailable when the server cannot be reached.
    """
    import psycopg

    target = parse_dsn(dsn)
    try:
        conn = open_connection(target, timeout_s, APPLICATION_NAME)
    except psycopg.Error as exc:
        raise build_unavailable(exc, target, "connecting") from None
    try:
        # The isolation level applies to the transaction that begin_read_only opens.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        begin_read_only(conn, timeout_s)
        yield conn
    finally:
        conn.rollback()
        conn.close()


def _pair(row: Any) -> tuple[str, str]:
    values = list(row.values()) if isinstance(row, dict) else list(row)
    return str(values[0]), str(values[1])


def first_column(row: Any) -> Any:
    """Return the first column of a tuple or dict row; raise BackupError for none."""
    if row is None:
        raise BackupError("the server returned no row")
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
