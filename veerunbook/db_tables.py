"""Read-only access to the tables of a SQLite or PostgreSQL database, by name.

A ``Catalog`` lists the tables with their columns and selects rows from one table.
The migration readers use it so that one reader serves both engines. Identifiers
are always quoted by the driver's rules, never pasted into SQL text. The helpers at
the end read the values that the engines store differently: times and booleans.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    pass

_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True)
class Table:
    """A table; ``schema`` is None in SQLite, which has none."""

    schema: str | None
    name: str

    @property
    def qualified(self) -> str:
        """The name as ``schema.table``, or the bare name without a schema."""
        return f"{self.schema}.{self.name}" if self.schema else self.name


class Catalog(Protocol):
    """The tables of one database and a way to read their rows."""

    def tables(self) -> list[Table]: ...

    def columns(self, table: Table) -> set[str]: ...

    def select(
        self, table: Table, columns: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        """Return up to ``limit`` rows; a column the table lacks reads as None."""
        ...


def find_table(catalog: Catalog, schema: str | None, name: str) -> Table | None:
    """Return the table ``name`` in ``schema``, or None if there is none."""
    for table in catalog.tables():
        if table.schema == schema and table.name == name:
            return table
    return None


class SqliteCatalog:
    """The tables of an open SQLite connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def tables(self) -> list[Table]:
        rows = self._connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        return [Table(None, str(name)) for (name,) in rows]

    def columns(self, table: Table) -> set[str]:
        rows = self._connection.execute(
            "SELECT name FROM pragma_table_info(?)", (table.name,)
        ).fetchall()
        return {str(name) for (name,) in rows}

    def select(
        self, table: Table, columns: Sequence[str], limit: int
    ) -> list[dict[str, Any]]:
        present = [name for name in columns if name in self.columns(table)]
        if not present:
            return []
        listed = ", ".join(_sqlite_identifier(name) for name in present)
        sql = f"SELECT {listed} FROM {_sqlite_identifier(table.name)} LIMIT ?"
        rows = self._connection.execute(sql, (limit,)).fetchall()
        return [_row(columns, present, values) for values in rows]


def _sqlite_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _row(
    selected: Sequence[str], present: Sequence[str], values: Sequence[Any]
) -> dict[str, Any]:
    found = dict(zip(present, values, strict=True))
    return {name: found.get(name) for name in selected}


def format_time(value: Any) -> str | None:
    """Return a stored time as ISO 8601 UTC; epoch numbers in s or ms are converted."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="seconds")
    number = _number(value)
    if number is not None:
        # Values from 1e11 on are milliseconds: 1e11 seconds is in the year 5138.
        seconds = number / 1000 if number >= 1e11 else number
        with contextlib.suppress(OverflowError, OSError, ValueError):
            return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().isdigit():
        return float(value)
    return None


def sort_key(value: Any) -> tuple[int, float, str]:
    """Order numbers by value, then anything else by its text; None first."""
    if value is None:
        return (0, 0.0, "")
    number = _number(value)
    if number is not None:
        return (1, number, "")
    return (2, 0.0, format_time(value) or "")


def version_key(version: str) -> tuple[int, int, str]:
    """Order numeric versions by value, before any other text."""
    return (1, int(version), "") if version.isdigit() else (2, 0, version)


def truthy(value: Any) -> bool:
    """Read a stored boolean: SQLite's 0 and 1, PostgreSQL's bool, or text."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "t", "true", "yes")
    return bool(value)
