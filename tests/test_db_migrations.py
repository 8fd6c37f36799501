"""Tests of the migration status: tool tables in SQLite files and on a real
PostgreSQL server, and the db_status command with its output.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from veerunbook.db_migrations import (
    Migrations,
    postgres_migrations,
    sqlite_migrations,
)
from veerunbook.migration_command import (
    CommandResult,
    read_status_output,
    run_command,
)
from veerunbook.redact import Redactor
from veerunbook.simulator import start_target
from veerunbook.target import demo_commands

# Epoch milliseconds used below and their UTC times:
# 1733220900000 ms = 1733220900 s = 20060 days + 37800 s = 2024-12-03 10:15:00
# 1733400000000 ms = 1733400000 s = 20062 days + 43200 s = 2024-12-05 12:00:00
DEC_3 = 1733220900000
DEC_5 = 1733400000000


def _sqlite(path: Path, *statements: str) -> Path:
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement)
    db.close()
    return path


def _only(found: list[Migrations]) -> Migrations:
    assert len(found) == 1
    return found[0]


def test_no_migration_table(tmp_path: Path) -> None:
    path = _sqlite(tmp_path / "app.db", "CREATE TABLE posts (id INTEGER)")
    assert sqlite_migrations(path) == []


def test_drizzle(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        "CREATE TABLE __drizzle_migrations (id INTEGER PRIMARY KEY,"
        " hash TEXT NOT NULL, created_at NUMERIC)",
        f"INSERT INTO __drizzle_migrations (hash, created_at) VALUES"
        f" ('{'a' * 64}', {DEC_3}), ('{'b' * 64}', {DEC_5})",
    )
    found = _only(sqlite_migrations(path))
    assert found.tool == "drizzle"
    assert found.applied == 2
    assert found.latest == "bbbbbbbbbbbb (generated 2024-12-05T12:00:00+00:00)"
    assert found.status == "pass"


PRISMA_TABLE = (
    "CREATE TABLE _prisma_migrations (id TEXT PRIMARY KEY, checksum TEXT NOT NULL,"
    " finished_at DATETIME, migration_name TEXT NOT NULL, logs TEXT,"
    " rolled_back_at DATETIME, started_at DATETIME NOT NULL,"
    " applied_steps_count INTEGER NOT NULL DEFAULT 0)"
)


def test_prisma_unfinished_and_rolled_back(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        PRISMA_TABLE,
        "INSERT INTO _prisma_migrations VALUES"
        f" ('1', 'c1', {DEC_3}, '20241203_init', NULL, NULL, {DEC_3}, 1),"
        f" ('2', 'c2', {DEC_5}, '20241205_add_plan', NULL, NULL, {DEC_5}, 1),"
        f" ('3', 'c3', NULL, '20241205_add_quota', 'error', NULL, {DEC_5}, 0),"
        f" ('4', 'c4', {DEC_3}, '20241203_bad', NULL, {DEC_5}, {DEC_3}, 1)",
    )
    found = _only(sqlite_migrations(path))
    assert found.tool == "prisma"
    assert found.applied == 2
    assert found.latest == "20241205_add_plan"
    assert found.latest_applied_at == "2024-12-05T12:00:00+00:00"
    assert found.failed == (
        "20241205_add_quota started 2024-12-05T12:00:00+00:00 and never finished "
        "(failed or still running)",
    )
    assert found.warnings == ("20241203_bad rolled back",)
    assert found.status == "fail"


def test_knex_with_lock_held(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        "CREATE TABLE knex_migrations (id INTEGER PRIMARY KEY, name TEXT,"
        " batch INTEGER, migration_time DATETIME)",
        "INSERT INTO knex_migrations (name, batch, migration_time) VALUES"
        f" ('20241201_init.js', 1, {DEC_3}),"
        f" ('20241205_posts.js', 2, {DEC_5}),"
        f" ('20241205_index.js', 2, {DEC_5})",
        'CREATE TABLE knex_migrations_lock ("index" INTEGER PRIMARY KEY,'
        " is_locked INTEGER)",
        "INSERT INTO knex_migrations_lock VALUES (1, 1)",
    )
    found = _only(sqlite_migrations(path))
    assert found.tool == "knex"
    assert found.applied == 3
    assert found.latest == "20241205_index.js"
    assert found.latest_applied_at == "2024-12-05T12:00:00+00:00"
    assert found.notes == ("the latest batch 2 has 2 migrations",)
    assert found.warnings[0].startswith("knex_migrations_lock.is_locked = 1")
    assert found.status == "warn"


def test_golang_migrate_dirty(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        "CREATE TABLE schema_migrations (version BIGINT NOT NULL, dirty BOOLEAN)",
        "INSERT INTO schema_migrations VALUES (20241205120000, 1)",
    )
    found = _only(sqlite_migrations(path))
    assert found.tool == "golang-migrate"
    assert found.applied is None
    assert found.latest == "20241205120000"
    assert found.failed[0].startswith("version 20241205120000 is dirty")
    assert found.status == "fail"


def test_golang_migrate_clean(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        "CREATE TABLE schema_migrations (version BIGINT NOT NULL, dirty BOOLEAN)",
        "INSERT INTO schema_migrations VALUES (7, 0)",
    )
    found = _only(sqlite_migrations(path))
    assert found.failed == ()
    assert found.status == "pass"


def test_rails_versions(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        "CREATE TABLE schema_migrations (version VARCHAR PRIMARY KEY)",
        "INSERT INTO schema_migrations VALUES ('20240101000000'),"
        " ('20241203101500'), ('20240615000000')",
    )
    found = _only(sqlite_migrations(path))
    assert found.tool == "rails"
    assert found.applied == 3
    assert found.latest == "20241203101500"


def test_sequelize(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        'CREATE TABLE "SequelizeMeta" (name VARCHAR PRIMARY KEY)',
        "INSERT INTO \"SequelizeMeta\" VALUES ('20241203-create-posts.js'),"
        " ('20241205-add-plan.js'), ('20240101-create-users.js')",
    )
    found = _only(sqlite_migrations(path))
    assert found.tool == "sequelize"
    assert found.applied == 3
    assert found.latest == "20241205-add-plan.js"


def test_typeorm(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        "CREATE TABLE migrations (id INTEGER PRIMARY KEY, timestamp BIGINT NOT NULL,"
        " name VARCHAR NOT NULL)",
        "INSERT INTO migrations (timestamp, name) VALUES"
        f" ({DEC_3}, 'Init{DEC_3}'), ({DEC_5}, 'AddPlan{DEC_5}')",
    )
    found = _only(sqlite_migrations(path))
    assert found.tool == "typeorm"
    assert found.applied == 2
    assert found.latest == f"AddPlan{DEC_5}"
    assert found.latest_applied_at is None


def test_flyway_failed_row(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        "CREATE TABLE flyway_schema_history (installed_rank INTEGER PRIMARY KEY,"
        " version VARCHAR, description VARCHAR, type VARCHAR, script VARCHAR,"
        " checksum INTEGER, installed_by VARCHAR, installed_on TEXT,"
        " execution_time INTEGER, success BOOLEAN)",
        "INSERT INTO flyway_schema_history VALUES"
        " (1, '1', 'init', 'SQL', 'V1__init.sql', 1, 'app',"
        " '2024-12-03 10:15:00', 12, 1),"
        " (2, '2', 'add plan', 'SQL', 'V2__add_plan.sql', 2, 'app',"
        " '2024-12-05 12:00:00', 40, 1),"
        " (3, '3', 'add quota', 'SQL', 'V3__add_quota.sql', 3, 'app',"
        " '2024-12-05 12:01:00', 5, 0)",
    )
    found = _only(sqlite_migrations(path))
    assert found.tool == "flyway"
    assert found.applied == 2
    assert found.latest == "V2 add plan"
    assert found.latest_applied_at == "2024-12-05 12:00:00"
    assert found.failed == ("V3 add quota failed",)


def test_alembic_branches(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('ae1027a6acf'), ('1975ea83b712')",
    )
    found = _only(sqlite_migrations(path))
    assert found.tool == "alembic"
    assert found.latest == "1975ea83b712, ae1027a6acf"
    assert found.notes == ("2 heads: the history has branches",)


def test_simulator_migrations_table(tmp_path: Path) -> None:
    with start_target("healthy", data_dir=tmp_path, traffic_rate=0) as running:
        found = _only(sqlite_migrations(running.database_path))
    assert found.tool == "migrations table"
    # The simulator seeds 7 migrations and applies 3 later ones (0008-0010).
    assert found.applied == 10
    assert found.latest == "0010_create_security_tables"
    assert found.status == "pass"


def test_sqlite_file_is_not_changed(tmp_path: Path) -> None:
    path = _sqlite(
        tmp_path / "app.db",
        "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('ae1027a6acf')",
    )
    before = path.read_bytes()
    sqlite_migrations(path)
    assert path.read_bytes() == before


@pytest.fixture(scope="module")
def migrations_dsn(pg_cluster: Any) -> Iterator[str]:
    """A database of its own on the test cluster, with tables of four tools."""
    name = "migrations_check"
    with psycopg.connect(pg_cluster.admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    dsn = make_conninfo(pg_cluster.admin_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("CREATE SCHEMA drizzle")
        db.execute(
            "CREATE TABLE drizzle.__drizzle_migrations"
            " (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)"
        )
        db.execute(
            "INSERT INTO drizzle.__drizzle_migrations (hash, created_at)"
            " VALUES (%s, %s), (%s, %s)",
            ("a" * 64, DEC_3, "c" * 64, DEC_5),
        )
        db.execute(
            "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY,"
            " checksum varchar(64) NOT NULL, finished_at timestamptz,"
            " migration_name varchar(255) NOT NULL, logs text,"
            " rolled_back_at timestamptz, started_at timestamptz NOT NULL,"
            " applied_steps_count integer NOT NULL DEFAULT 0)"
        )
        db.execute(
            "INSERT INTO _prisma_migrations VALUES"
            " ('1', 'c1', '2024-12-03 10:15:00+00', '20241203_init', NULL, NULL,"
            " '2024-12-03 10:14:59+00', 1),"
            " ('2', 'c2', NULL, '20241205_add_plan', 'failed', NULL,"
            " '2024-12-05 12:00:00+00', 0)"
        )
        db.execute(
            "CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY,"
            " version varchar(50), description varchar(200), type varchar(20),"
            " script varchar(1000), checksum int, installed_by varchar(100),"
            " installed_on timestamp NOT NULL DEFAULT now(), execution_time int,"
            " success boolean NOT NULL)"
        )
        db.execute(
            "INSERT INTO flyway_schema_history VALUES"
            " (1, '1', 'init', 'SQL', 'V1__init.sql', 1, 'app',"
            " '2024-12-05 12:00:00', 12, true),"
            " (2, NULL, 'views', 'SQL', 'R__views.sql', 2, 'app',"
            " '2024-12-05 12:01:00', 3, true)"
        )
        db.execute(
            "CREATE TABLE schema_migrations (version bigint PRIMARY KEY,"
            " dirty boolean NOT NULL)"
        )
        db.execute("INSERT INTO schema_migrations VALUES (42, false)")
    yield dsn
    with psycopg.connect(pg_cluster.admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _by_tool(found: list[Migrations]) -> dict[str, Migrations]:
    return {migrations.tool: migrations for migrations in found}


def test_postgres_finds_every_tool(migrations_dsn: str) -> None:
    tools = _by_tool(postgres_migrations(migrations_dsn))
    assert sorted(tools) == ["drizzle", "flyway", "golang-migrate", "prisma"]


def test_postgres_drizzle_schema(migrations_dsn: str) -> None:
    found = _by_tool(postgres_migrations(migrations_dsn))["drizzle"]
    assert found.source == "drizzle.__drizzle_migrations"
    assert found.applied == 2
    assert found.latest == "cccccccccccc (generated 2024-12-05T12:00:00+00:00)"


def test_postgres_prisma_failed(migrations_dsn: str) -> None:
    found = _by_tool(postgres_migrations(migrations_dsn))["prisma"]
    assert found.applied == 1
    assert found.latest == "20241203_init"
    assert found.latest_applied_at == "2024-12-03T10:15:00+00:00"
    assert found.failed == (
        "20241205_add_plan started 2024-12-05T12:00:00+00:00 and never finished "
        "(failed or still running)",
    )


def test_postgres_flyway_repeatable(migrations_dsn: str) -> None:
    found = _by_tool(postgres_migrations(migrations_dsn))["flyway"]
    assert found.applied == 2
    assert found.latest == "R views"
    assert found.latest_applied_at == "2024-12-05T12:01:00+00:00"
    assert found.failed == ()


def test_postgres_golang_migrate_clean(migrations_dsn: str) -> None:
    found = _by_tool(postgres_migrations(migrations_dsn))["golang-migrate"]
    assert found.latest == "42"
    assert found.status == "pass"


def test_postgres_session_is_read_only(migrations_dsn: str) -> None:
    before = _rows(migrations_dsn)
    postgres_migrations(migrations_dsn)
    assert _rows(migrations_dsn) == before


def _rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as db:
        return db.execute(
            "SELECT id, finished_at FROM _prisma_migrations ORDER BY id"
        ).fetchall()


def test_postgres_wrong_password(pg_cluster: Any) -> None:
    dsn = make_conninfo(pg_cluster.app_dsn, password="not-the-password")
    with pytest.raises(psycopg.OperationalError) as caught:
        postgres_migrations(dsn, timeout_s=3)
    assert "password authentication failed" in str(caught.value)
    assert "not-the-password" not in str(caught.value)


DEMO_OUTPUT = """Migrations: 9 applied, 1 pending
  applied  0001_create_accounts  2026-10-05T18:39:51.836Z
  applied  0009_add_deploys_note  2026-12-04T18:39:51.840Z
  pending  0010_create_security_tables
Current version: 1.4.2
"""


def _result(output: str, exit_code: int = 0) -> CommandResult:
    return CommandResult("npm run db:status", exit_code, output, 0.5)


def test_status_output_of_the_demo() -> None:
    found = read_status_output(_result(DEMO_OUTPUT))
    assert found.applied == 9
    assert found.pending == 1
    assert found.latest == "0009_add_deploys_note"
    assert found.latest_applied_at == "2026-12-04T18:39:51.840Z"
    assert found.warnings == ("0010_create_security_tables pending",)
    assert found.status == "warn"


PRISMA_OUTPUT = """3 migrations found in prisma/migrations

Following migration have failed:
20241205_add_quota

During development if the failed migration(s) have not been deployed to a production
"""


def test_status_output_of_prisma_failed() -> None:
    found = read_status_output(_result(PRISMA_OUTPUT, exit_code=1))
    assert found.failed[0] == "20241205_add_quota"
    assert found.failed[1] == (
        "the command exited with code 1: During development if the failed "
        "migration(s) have not been deployed to a production"
    )
    assert found.status == "fail"


def test_status_output_of_prisma_current() -> None:
    found = read_status_output(_result("Database schema is up to date!\n"))
    assert found.pending == 0
    assert found.status == "pass"


def test_status_output_of_rails() -> None:
    output = (
        "database: veefore\n\n Status   Migration ID    Migration Name\n"
        "--------------------------------------------------\n"
        "   up     20241203101500  Create posts\n"
        "  down    20241205120000  Add plan\n"
    )
    found = read_status_output(_result(output))
    assert found.applied == 1
    assert found.pending == 1
    assert found.warnings == ("20241205120000  Add plan pending",)


def test_status_output_of_golang_migrate() -> None:
    found = read_status_output(_result("20241205120000 (dirty)\n"))
    assert found.failed == (
        "version 20241205120000 is dirty: its migration failed part-way",
    )


def test_run_command_masks_secrets() -> None:
    secret = "s3cr3t-db-pass-4242"
    result = run_command(
        f"echo postgresql://app:{secret}@db/veefore; echo {secret} >&2",
        timeout_s=10,
        redactor=Redactor([secret]),
    )
    assert result.ok
    assert secret not in result.output
    assert result.output == "postgresql://app:***@db/veefore\n***\n"


def test_run_command_reports_exit_code() -> None:
    result = run_command("echo no database; exit 3", timeout_s=10, redactor=Redactor())
    assert result.exit_code == 3
    assert not result.ok
    assert read_status_output(result).failed == (
        "the command exited with code 3: no database",
    )


def test_run_command_kills_on_timeout() -> None:
    # The shell starts a child sleep; both are in the group that is killed.
    result = run_command("sleep 30; echo done", timeout_s=0.5, redactor=Redactor())
    assert result.timed_out
    assert result.seconds < 10
    assert "done" not in result.output
    assert result.error == "timed out after 0.5 s and was killed"


def test_demo_db_status_command(tmp_path: Path) -> None:
    with start_target("healthy", data_dir=tmp_path, traffic_rate=0):
        command = demo_commands(tmp_path)["db_status"]
        result = run_command(command, timeout_s=60, redactor=Redactor())
    found = read_status_output(result)
    assert result.ok
    assert found.applied == 10
    assert found.pending == 0
    assert found.latest == "0010_create_security_tables"
    assert found.status == "pass"


def test_demo_db_status_without_database(tmp_path: Path) -> None:
    command = demo_commands(tmp_path / "empty")["db_status"]
    result = run_command(command, timeout_s=60, redactor=Redactor())
    assert result.exit_code == 2
    assert read_status_output(result).status == "fail"
