"""Migration status read from the migration tools' own tables, read-only.

``sqlite_migrations`` and ``postgres_migrations`` look for the tables that these
tools keep and summarise each one found as a ``Migrations``:

==================  ==========================================================
drizzle             ``__drizzle_migrations`` (PostgreSQL: schema ``drizzle``)
prisma              ``_prisma_migrations``: unfinished and rolled back rows
knex                ``knex_migrations`` and the lock in ``knex_migrations_lock``
golang-migrate      ``schema_migrations`` with a ``dirty`` column
rails               ``schema_migrations`` without ``dirty`` (also dbmate)
sequelize           ``SequelizeMeta``
typeorm             ``migrations`` with ``timestamp`` (other ``migrations``
                    tables are read by their ``name`` and ``applied_at``)
flyway              ``flyway_schema_history`` with ``success``
alembic             ``alembic_version``
==================  ==========================================================

A table records only what was applied, so pending migrations come from the target's
``db_status`` command (``veerunbook.migration_command``). The SQLite file is opened
only when it is a regular file, in a read-only mode that creates no file beside it
(``veerunbook.sqlite_files``). The PostgreSQL session is read-only with a statement
timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from veerunbook.db_tables import (
    Catalog,
    SqliteCatalog,
    Table,
    find_table,
    format_time,
    sort_key,
    truthy,
    version_key,
)
from veerunbook.sqlite_files import open_read_only

# Rows read from one migration table; more would mean a table of another kind.
MAX_ROWS = 10_000


@dataclass(frozen=True)
class Migrations:
    """One migration tool's state: what is applied, the latest, and what is wrong.

    ``applied`` is None when the tool keeps only its current version. ``failed``
    lists failed, unfinished or dirty migrations; ``warnings`` lists rolled back
    entries, a held migration lock and pending migrations.
    """

    tool: str
    source: str
    applied: int | None = None
    latest: str | None = None
    latest_applied_at: str | None = None
    pending: int | None = None
    failed: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """``fail`` with a failed or dirty migration, ``warn`` with a warning."""
        if self.failed:
            return "fail"
        return "warn" if self.warnings or self.pending else "pass"

    def to_dict(self) -> dict[str, Any]:
        """Return the fields and the status as JSON values."""
        return {**asdict(self), "status": self.status}

    def to_row(self) -> dict[str, Any]:
        """Return a table row for the notebook."""
        return {
            "tool": self.tool,
            "source": self.source,
            "status": self.status,
            "applied": self.applied,
            "pending": self.pending,
            "latest": self.latest,
            "latest applied at": self.latest_applied_at,
            "problems": "; ".join((*self.failed, *self.warnings)),
        }


def sqlite_migrations(path: Path, *, timeout_s: float = 5.0) -> list[Migrations]:
    """Read the migration tables of the SQLite file ``path``, opened read-only.

    Raises ``OSError`` when ``path`` is not a regular file or a file beside it
    makes reading unsafe (nothing is opened then), and ``sqlite3.Error`` when SQLite
    cannot open or read it.
    """
    with open_read_only(path, timeout_s) as db:
        return read_migrations(SqliteCatalog(db))


def postgres_migrations(dsn: str, *, timeout_s: float = 5.0) -> list[Migrations]:
    """Read the migration tables of a PostgreSQL database in a read-only session.

    Tables are found through pg_catalog (``veerunbook.pg_tables``). A migration
    table that the role may not read is reported with a warning that names the
    grants it needs. Raises ``psycopg.Error`` when the server cannot be reached or a
    query fails; its message may repeat parts of the connection string, so mask it.
    """
    import psycopg

    from veerunbook.pg_tables import PgCatalog

    milliseconds = max(1, int(timeout_s * 1000))
    options = f"-c statement_timeout={milliseconds} -c default_transaction_read_only=on"
    with psycopg.connect(
        dsn,
        connect_timeout=max(1, round(timeout_s)),
        options=options,
        application_name="veerunbook",
        autocommit=True,
    ) as connection:
        catalog = PgCatalog(connection, [*_READERS, "knex_migrations_lock"])
        found = read_migrations(catalog)
    for unreadable in catalog.unreadable:
        tool = _postgres_tool(unreadable.table, unreadable.columns)
        if tool is not None:
            source = unreadable.table.qualified
            found.append(Migrations(tool, source, warnings=(unreadable.problem,)))
    return found


def _postgres_tool(table: Table, columns: Collection[str]) -> str | None:
    """Name the tool that keeps ``table``, judged by its name and columns only."""
    if table.name == "__drizzle_migrations" and table.schema != "drizzle":
        return None
    if table.name == "schema_migrations":
        return "golang-migrate" if "dirty" in columns else "rails"
    if table.name == "migrations" and "name" not in columns:
        return None
    if table.name == "migrations":
        typeorm = {"id", "timestamp"} <= set(columns)
        return "typeorm" if typeorm else "migrations table"
    return _POSTGRES_TOOLS.get(table.name)


_POSTGRES_TOOLS = {
    "__drizzle_migrations": "drizzle",
    "_prisma_migrations": "prisma",
    "knex_migrations": "knex",
    "knex_migrations_lock": "knex",
    "SequelizeMeta": "sequelize",
    "flyway_schema_history": "flyway",
    "alembic_version": "alembic",
}


def read_migrations(catalog: Catalog) -> list[Migrations]:
    """Summarise every migration table that ``catalog`` contains."""
    found = []
    for table in catalog.tables():
        reader = _READERS.get(table.name)
        if reader is None:
            continue
        drizzle = table.name == "__drizzle_migrations"
        if drizzle and table.schema not in (None, "drizzle"):
            continue
        result = reader(catalog, table, catalog.columns(table))
        if result is not None:
            found.append(result)
    return found


def _rows(
    catalog: Catalog, table: Table, columns: Sequence[str]
) -> list[dict[str, Any]]:
    return catalog.select(table, columns, MAX_ROWS)


def _drizzle(catalog: Catalog, table: Table, columns: set[str]) -> Migrations:
    rows = _rows(catalog, table, ["hash", "created_at"])
    latest = max(rows, key=lambda row: sort_key(row["created_at"]), default=None)
    notes: tuple[str, ...] = ()
    shown = None
    if latest is not None:
        created = format_time(latest["created_at"])
        shown = f"{str(latest['hash'])[:12]} (generated {created})"
        # drizzle stores the migration's folder time, not the time it was applied.
        notes = ("drizzle records when a migration was generated, not applied",)
    return Migrations(
        "drizzle", table.qualified, applied=len(rows), latest=shown, notes=notes
    )


def _prisma(catalog: Catalog, table: Table, columns: set[str]) -> Migrations:
    selected = ["migration_name", "started_at", "finished_at", "rolled_back_at"]
    rows = _rows(catalog, table, selected)
    applied = [r for r in rows if r["finished_at"] and not r["rolled_back_at"]]
    unfinished = [r for r in rows if not r["finished_at"] and not r["rolled_back_at"]]
    rolled_back = [r for r in rows if r["rolled_back_at"]]
    latest = max(
        applied,
        key=lambda r: (sort_key(r["finished_at"]), str(r["migration_name"])),
        default=None,
    )
    return Migrations(
        "prisma",
        table.qualified,
        applied=len(applied),
        latest=latest["migration_name"] if latest else None,
        latest_applied_at=format_time(latest["finished_at"]) if latest else None,
        failed=tuple(
            f"{r['migration_name']} started {format_time(r['started_at'])} and "
            "never finished (failed or still running)"
            for r in unfinished
        ),
        warnings=tuple(f"{r['migration_name']} rolled back" for r in rolled_back),
    )


def _knex(catalog: Catalog, table: Table, columns: set[str]) -> Migrations:
    rows = _rows(catalog, table, ["id", "name", "batch", "migration_time"])
    latest = max(rows, key=lambda row: sort_key(row["id"]), default=None)
    warnings: tuple[str, ...] = ()
    lock_table = find_table(catalog, table.schema, "knex_migrations_lock")
    if lock_table is not None:
        locks = _rows(catalog, lock_table, ["is_locked"])
        if any(truthy(row["is_locked"]) for row in locks):
            warnings = (
                "knex_migrations_lock.is_locked = 1: a migration is running, or one "
                "crashed and left the lock",
            )
    notes: tuple[str, ...] = ()
    if latest is not None:
        batch = [row for row in rows if row["batch"] == latest["batch"]]
        notes = (f"the latest batch {latest['batch']} has {len(batch)} migrations",)
    return Migrations(
        "knex",
        table.qualified,
        applied=len(rows),
        latest=latest["name"] if latest else None,
        latest_applied_at=format_time(latest["migration_time"]) if latest else None,
        warnings=warnings,
        notes=notes,
    )


def _schema_migrations(catalog: Catalog, table: Table, columns: set[str]) -> Migrations:
    if "dirty" in columns:
        rows = _rows(catalog, table, ["version", "dirty"])
        version = str(rows[0]["version"]) if rows else None
        dirty = bool(rows) and truthy(rows[0]["dirty"])
        failed = (
            (
                f"version {version} is dirty: its migration failed part-way; repair "
                "the schema by hand, then run migrate force",
            )
            if dirty
            else ()
        )
        return Migrations(
            "golang-migrate", table.qualified, latest=version, failed=failed
        )
    rows = _rows(catalog, table, ["version"])
    latest = max((str(row["version"]) for row in rows), key=version_key, default=None)
    return Migrations(
        "rails",
        table.qualified,
        applied=len(rows),
        latest=latest,
        notes=("Rails and dbmate keep only the version of each applied migration",),
    )


def _sequelize(catalog: Catalog, table: Table, columns: set[str]) -> Migrations:
    names = [str(row["name"]) for row in _rows(catalog, table, ["name"])]
    # Sequelize's file names start with a timestamp, so they sort by time.
    return Migrations(
        "sequelize",
        table.qualified,
        applied=len(names),
        latest=max(names, default=None),
    )


def _migrations(catalog: Catalog, table: Table, columns: set[str]) -> Migrations | None:
    if {"id", "timestamp", "name"} <= columns:
        rows = _rows(catalog, table, ["id", "timestamp", "name"])
        latest = max(rows, key=lambda row: sort_key(row["id"]), default=None)
        return Migrations(
            "typeorm",
            table.qualified,
            applied=len(rows),
            latest=latest["name"] if latest else None,
            notes=("TypeORM records each migration's own timestamp, not when it ran",),
        )
    if "name" not in columns:
        return None
    time_column = next(
        (name for name in ("applied_at", "run_on", "migrated_at") if name in columns),
        None,
    )
    rows = _rows(catalog, table, ["id", "name", time_column or "applied_at"])

    # Migrations applied in one deploy can share a time: the id, then the name
    # (usually prefixed with a number or a timestamp) break the tie.
    def order(row: dict[str, Any]) -> tuple[Any, ...]:
        moment = sort_key(row[time_column]) if time_column else sort_key(None)
        return (moment, sort_key(row["id"]), str(row["name"]))

    latest = max(rows, key=order, default=None)
    return Migrations(
        "migrations table",
        table.qualified,
        applied=len(rows),
        latest=str(latest["name"]) if latest else None,
        latest_applied_at=(
            format_time(latest[time_column]) if latest and time_column else None
        ),
    )


def _flyway(catalog: Catalog, table: Table, columns: set[str]) -> Migrations:
    selected = ["installed_rank", "version", "description", "installed_on", "success"]
    rows = _rows(catalog, table, selected)
    good = [row for row in rows if truthy(row["success"])]
    bad = [row for row in rows if not truthy(row["success"])]
    latest = max(good, key=lambda row: sort_key(row["installed_rank"]), default=None)
    return Migrations(
        "flyway",
        table.qualified,
        applied=len(good),
        latest=_flyway_name(latest) if latest else None,
        latest_applied_at=format_time(latest["installed_on"]) if latest else None,
        failed=tuple(f"{_flyway_name(row)} failed" for row in bad),
    )


def _flyway_name(row: dict[str, Any]) -> str:
    version = row["version"]
    prefix = f"V{version}" if version is not None else "R"  # R: repeatable
    return f"{prefix} {row['description']}"


def _alembic(catalog: Catalog, table: Table, columns: set[str]) -> Migrations:
    heads = sorted(
        str(row["version_num"]) for row in _rows(catalog, table, ["version_num"])
    )
    notes = (f"{len(heads)} heads: the history has branches",) if len(heads) > 1 else ()
    return Migrations(
        "alembic", table.qualified, latest=", ".join(heads) or None, notes=notes
    )


_Reader = Callable[[Catalog, Table, set[str]], Migrations | None]
_READERS: dict[str, _Reader] = {
    "__drizzle_migrations": _drizzle,
    "_prisma_migrations": _prisma,
    "knex_migrations": _knex,
    "schema_migrations": _schema_migrations,
    "SequelizeMeta": _sequelize,
    "migrations": _migrations,
    "flyway_schema_history": _flyway,
    "alembic_version": _alembic,
}
