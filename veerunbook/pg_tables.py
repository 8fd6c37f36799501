"""Find the tables of a PostgreSQL database through pg_catalog, readable or not.

information_schema lists only the tables on which the connected role has some
privilege, so a migration table that the role may not read would look absent, and
"no migration table" would be a false all-clear. pg_class, pg_namespace and
pg_attribute list every table and its columns to every role, so ``PgCatalog`` finds
them all and keeps apart the ones the role may not read (``unreadable``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from veerunbook.db_tables import Table
from veerunbook.pg_snapshot import sql_identifier

if TYPE_CHECKING:
    import psycopg

# Tables, partitioned tables, views, materialized views and foreign tables, outside
# the system schemas (user schemas may not start with pg_).
_TABLES_QUERY = """
SELECT n.nspname AS schema, c.relname AS name,
       array_remove(array_agg(a.attname::text ORDER BY a.attnum), NULL) AS columns,
       has_schema_privilege(n.oid, 'USAGE') AS schema_usage,
       has_table_privilege(c.oid, 'SELECT') AS table_select
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute AS a
       ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
  AND c.relname = ANY(%s)
GROUP BY n.oid, n.nspname, c.oid, c.relname
ORDER BY n.nspname, c.relname
"""


@dataclass(frozen=True)
class UnreadableTable:
    """A table that exists but that ``role`` may not read, and the grants it needs.

    ``schema_usage`` is False when the role also lacks USAGE on the table's schema.
    A role with SELECT on some columns only counts as unable to read the table.
    """

    table: Table
    columns: frozenset[str]
    role: str
    schema_usage: bool

    @property
    def grants(self) -> str:
        """The statements that let ``role`` read the table."""
        schema = sql_identifier(self.table.schema or "public")
        role = sql_identifier(self.role)
        statements = [f"GRANT SELECT ON {schema}.{sql_identifier(self.table.name)}"]
        if not self.schema_usage:
            statements.insert(0, f"GRANT USAGE ON SCHEMA {schema}")
        return "; ".join(f"{statement} TO {role}" for statement in statements)

    @property
    def problem(self) -> str:
        """A sentence that names the table, the role and the grants to run."""
        lacks = "SELECT" if self.schema_usage else "USAGE on its schema and SELECT"
        return (
            f"permission denied on {self.table.qualified}: role {self.role} lacks "
            f"{lacks} on it, so its state is unknown; run {self.grants}"
        )


class PgCatalog:
    """The tables named ``names`` in a PostgreSQL database, found through pg_catalog.

    ``tables`` lists the ones that the connected role may read, and ``unreadable``
    the others. Only the named tables are looked up, so that a database with many
    tables is not listed whole within the statement timeout.
    """

    def __init__(
        self, connection: psycopg.Connection[Any], names: Collection[str]
    ) -> None:
        self._connection = connection
        self._columns: dict[Table, set[str]] = {}
        self.unreadable: list[UnreadableTable] = []
        role_row = connection.execute("SELECT current_user").fetchone()
        role = str(role_row[0]) if role_row else "(unknown role)"
        rows = connection.execute(_TABLES_QUERY, (list(names),)).fetchall()
        for schema, name, columns, schema_usage, table_select in rows:
            table = Table(str(schema), str(name))
            if schema_usage and table_select:
                self._columns[table] = {str(column) for column in columns}
            else:
                unreadable = UnreadableTable(
                    table, frozenset(map(str, columns)), role, bool(schema_usage)
                )
                self.unreadable.append(unreadable)

    def tables(self) -> list[Table]:
        return list(self._columns)

    def columns(self, table: Table) -> set[str]:
        return set(self._columns.get(table, set()))

    def select(
        self, table: Table, columns: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` rows; a column the table lacks reads as None."""
        from psycopg import sql

        present = [name for name in columns if name in self.columns(table)]
        if not present:
            return []
        query = sql.SQL("SELECT {} FROM {} LIMIT {}").format(
            sql.SQL(", ").join(sql.Identifier(name) for name in present),
            sql.Identifier(table.schema or "public", table.name),
            sql.Literal(limit),
        )
        rows = self._connection.execute(query).fetchall()
        return [_row(columns, present, values) for values in rows]


def _row(
    selected: Sequence[str], present: Sequence[str], values: Sequence[Any]
) -> dict[str, Any]:
    found = dict(zip(present, values, strict=True))
    return {name: found.get(name) for name in selected}
