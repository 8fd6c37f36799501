"""Tests of the database URL parsing and masking, and of the SQLite file checks."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from veerunbook.config import DEMO_DATABASE_URL_ENV, Config, load_config
from veerunbook.dbcheck import (
    parse_database_url,
    read_database_url,
    secret_values,
)
from veerunbook.redact import Redactor
from veerunbook.sqlite_check import check_sqlite, probe_write_lock
from veerunbook.target import connect

PASSWORD = "Xk9#vQ2!rb-2026"
ENCODED = "Xk9%23vQ2%21rb-2026"
URL = f"postgresql://veefore_app:{ENCODED}@db.veefore.internal:5432/veefore"


def test_missing_variable() -> None:
    url = read_database_url("VEERUNBOOK_TEST_DB_URL", {})
    assert url.state == "missing"
    assert url.problem == "$VEERUNBOOK_TEST_DB_URL is not set"
    assert not url.usable


def test_empty_variable() -> None:
    url = read_database_url("DB", {"DB": "  "})
    assert url.state == "missing"
    assert url.problem is not None
    assert "set but empty" in url.problem


def test_garbage_is_invalid_and_hidden() -> None:
    url = parse_database_url(f"not a url {PASSWORD}", "DB")
    assert url.state == "invalid"
    assert PASSWORD not in url.shown
    assert url.problem is not None
    assert PASSWORD not in url.problem


def test_libpq_error_hides_the_password() -> None:
    # libpq quotes the whole URI in this error, password included.
    url = parse_database_url(f"postgresql://app:{PASSWORD}@[::1/veefore", "DB")
    assert url.state == "invalid"
    assert url.problem is not None
    assert "libpq: end of string reached" in url.problem
    assert PASSWORD not in url.problem
    assert "rb-2026" not in url.problem


def test_unknown_scheme() -> None:
    url = parse_database_url("ftp://files.example.com/db", "DB")
    assert url.state == "invalid"
    assert url.problem == "$DB is not a valid database URL: unknown scheme 'ftp'"


def test_mysql_is_unsupported() -> None:
    url = parse_database_url(f"mysql://app:{PASSWORD}@db/veefore", "DB")
    assert url.state == "unsupported"
    assert url.shown == "mysql://(not shown)"
    assert not url.usable


def test_postgres_with_password_is_masked() -> None:
    url = parse_database_url(URL + "?sslmode=require", "DB")
    assert url.state == "postgresql"
    assert url.usable
    assert url.has_password
    assert url.shown == (
        "postgresql://veefore_app:***@db.veefore.internal:5432/veefore?sslmode=require"
    )
    assert url.host == "db.veefore.internal"
    assert url.port == "5432"
    assert url.database == "veefore"
    assert url.user == "veefore_app"


def test_postgres_without_password() -> None:
    url = parse_database_url("postgres://db.veefore.internal/veefore", "DB")
    assert url.state == "postgresql"
    assert not url.has_password
    assert url.shown == "postgresql://db.veefore.internal/veefore"
    assert secret_values(url) == []


def test_sqlalchemy_driver_suffix_is_dropped() -> None:
    url = parse_database_url(URL.replace("postgresql:", "postgresql+psycopg2:"), "DB")
    assert url.state == "postgresql"
    assert url.scheme == "postgresql+psycopg2"
    assert url.dsn.startswith("postgresql://")
    assert url.notes == (
        "the SQLAlchemy driver suffix +psycopg2 is not passed to libpq",
    )


def test_keyword_conninfo_is_masked() -> None:
    url = parse_database_url(f"host=db dbname=veefore password={PASSWORD}", "DB")
    assert url.state == "postgresql"
    assert url.shown == "dbname=veefore host=db password=***"


def test_invalid_port() -> None:
    url = parse_database_url("postgresql://app@db:54x2/veefore", "DB")
    assert url.state == "postgresql"
    assert not url.usable
    assert url.problem == "$DB: invalid port '54x2': use a number from 1 to 65535"


def test_repr_and_dict_leave_out_the_value() -> None:
    url = parse_database_url(URL, "DB")
    assert ENCODED not in repr(url)
    assert ENCODED not in str(url.to_dict())
    assert PASSWORD not in str(url.to_dict())


def test_secret_values_of_a_postgres_url() -> None:
    url = parse_database_url(URL, "DB")
    assert secret_values(url) == [URL, PASSWORD]


def test_secret_values_of_garbage() -> None:
    url = parse_database_url(f"oops {PASSWORD}", "DB")
    assert secret_values(url) == [f"oops {PASSWORD}"]


def test_redactor_masks_after_secret_values() -> None:
    redactor = Redactor()
    url = parse_database_url(f"host=db password={PASSWORD}", "DB")
    for value in secret_values(url):
        redactor.add(value)
    assert redactor.mask(f"failed with {PASSWORD} in it") == "failed with *** in it"


UNPARSEABLE = "postgresql://(unparseable; not shown)"


@pytest.mark.parametrize("password", ["pa/ss-Word4", "p4ss@w0rd-9c"])
def test_misread_password_is_unparseable(password: str) -> None:
    url = parse_database_url(f"postgresql://app:{password}@127.0.0.1:54329/db", "DB")
    assert url.state == "invalid"
    assert url.shown == UNPARSEABLE
    assert url.scheme == "postgresql"
    assert not url.usable


@pytest.mark.parametrize("password", ["pa/ss-Word4", "p4ss@w0rd-9c"])
def test_misread_password_has_no_parts(password: str) -> None:
    url = parse_database_url(f"postgresql://app:{password}@127.0.0.1:54329/db", "DB")
    assert url.host is None
    assert url.port is None
    assert url.database is None
    assert url.user is None


@pytest.mark.parametrize("password", ["pa/ss-Word4", "p4ss@w0rd-9c"])
def test_misread_password_not_in_problem(password: str) -> None:
    url = parse_database_url(f"postgresql://app:{password}@127.0.0.1:54329/db", "DB")
    assert url.problem is not None
    assert "Word4" not in url.problem
    assert "w0rd" not in url.problem
    assert "invalid port" not in url.problem
    assert "%40" in url.problem


def test_misread_password_with_driver_suffix() -> None:
    url = parse_database_url("postgresql+asyncpg://app:pa/ss-Word4@db/appdb", "DB")
    assert url.shown == "postgresql+asyncpg://(unparseable; not shown)"


def test_secret_values_of_misread_password() -> None:
    value = "postgresql://app:pa/ss-Word4@127.0.0.1:54329/appdb"
    url = parse_database_url(value, "DB")
    assert value in secret_values(url)
    assert "app:pa/ss-Word4" in secret_values(url)
    assert "pa/ss-Word4" in secret_values(url)


def test_at_sign_in_query_is_unparseable() -> None:
    # The userinfo is taken to the last "@", which here sits in the query.
    url = parse_database_url("postgresql://app:pw12@db/appdb?application_name=a@b")
    assert url.state == "invalid"


def test_encoded_slash_and_at_parse() -> None:
    url = parse_database_url("postgresql://app:pa%2Fss%40Word4@db:5432/appdb", "DB")
    assert url.state == "postgresql"
    assert url.host == "db"
    assert secret_values(url)[1:] == ["pa/ss@Word4"]


@pytest.mark.parametrize("password", ["Pl4nt#ed-pw", "Pl4nt?ed-pw"])
def test_hash_or_question_mark_password(password: str) -> None:
    url = parse_database_url(f"postgresql://app:{password}@db:5432/appdb", "DB")
    assert url.state == "postgresql"
    assert url.shown == "postgresql://app:***@db:5432/appdb"
    assert secret_values(url)[1:] == [password]


def test_empty_url_password_is_usable() -> None:
    url = parse_database_url("postgresql://app:@db/appdb", "DB")
    assert url.state == "postgresql"
    assert not url.has_password


def test_unparseable_url_keeps_libpq_reason() -> None:
    url = parse_database_url("postgresql://app:p%zzword@db/appdb", "DB")
    assert url.shown == UNPARSEABLE
    assert url.problem == (
        '$DB is not a valid database URL: libpq: invalid percent-encoded token: "***"'
    )


def test_sqlite_absolute_path() -> None:
    url = parse_database_url("sqlite:////var/lib/veefore/app.sqlite3", "DB")
    assert url.state == "sqlite"
    assert url.sqlite_path == Path("/var/lib/veefore/app.sqlite3")
    assert url.shown == "sqlite:////var/lib/veefore/app.sqlite3"
    assert url.notes == ()


def test_sqlite_relative_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    url = parse_database_url("sqlite:///data/app.db", "DB")
    assert url.state == "sqlite"
    assert url.sqlite_path == tmp_path / "data" / "app.db"
    assert url.notes[0].startswith(f"relative path resolved against {tmp_path}")


def test_prisma_file_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    url = parse_database_url("file:./dev.db", "DB")
    assert url.state == "sqlite"
    assert url.sqlite_path == tmp_path / "dev.db"
    assert "schema's folder (Prisma)" in url.notes[0]


def test_sqlite_in_memory_cannot_be_checked() -> None:
    url = parse_database_url("sqlite:///:memory:", "DB")
    assert url.state == "sqlite"
    assert not url.usable
    assert url.problem is not None
    assert "in-memory" in url.problem


def test_sqlite_with_two_slashes() -> None:
    url = parse_database_url("sqlite://data/app.db", "DB")
    assert url.state == "invalid"


def _build(path: Path, rows: int = 2000) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE posts (id INTEGER PRIMARY KEY, caption TEXT)")
        db.execute("CREATE INDEX posts_caption ON posts (caption)")
        db.executemany(
            "INSERT INTO posts (caption) VALUES (?)",
            [(f"caption {n:05d} " + "x" * 40,) for n in range(rows)],
        )
    db.close()
    return path


def test_sqlite_check_of_a_good_file(tmp_path: Path) -> None:
    report = check_sqlite(_build(tmp_path / "good.db"))
    assert report.ok
    assert report.error is None
    assert report.integrity == ["ok"]
    assert report.integrity_ok is True
    assert report.journal_mode == "delete"
    assert report.lock == "free"


def test_sqlite_check_finds_corruption(tmp_path: Path) -> None:
    path = _build(tmp_path / "broken.db")
    size = path.stat().st_size
    # Overwrite 300 bytes inside the third page from the end with 0xFF: that page
    # belongs to a b-tree, so its cell pointers stop making sense.
    with path.open("r+b") as file:
        file.seek(4096 * (size // 4096 - 3) + 200)
        file.write(b"\xff" * 300)
    report = check_sqlite(path)
    assert report.ok
    assert report.integrity_ok is False
    assert report.integrity[0] == "*** in database main ***"
    assert len(report.integrity) > 1


def test_sqlite_check_of_a_non_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database file at all " * 200)
    report = check_sqlite(path)
    assert not report.ok
    assert report.error == "file is not a database (SQLITE_NOTADB)"
    assert report.integrity_ok is False


def test_sqlite_check_of_a_missing_file(tmp_path: Path) -> None:
    report = check_sqlite(tmp_path / "absent.db")
    assert not report.ok
    assert report.error == f"file not found: {tmp_path / 'absent.db'}"
    assert not (tmp_path / "absent.db").exists()


def test_sqlite_check_opens_read_only(tmp_path: Path) -> None:
    path = _build(tmp_path / "good.db")
    before = path.read_bytes()
    check_sqlite(path)
    assert path.read_bytes() == before


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    path = _build(tmp_path / "busy.db", rows=10)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO posts (caption) VALUES ('held')")
    yield connection
    connection.execute("ROLLBACK")
    connection.close()


def test_write_lock_held_by_a_writer(
    writer: sqlite3.Connection, tmp_path: Path
) -> None:
    report = check_sqlite(tmp_path / "busy.db")
    assert report.ok
    assert report.journal_mode == "wal"
    assert report.lock == "held"
    assert report.lock_detail.startswith(
        "another connection held the write lock in 3 attempts over 0.2 s"
    )


def test_wal_database_keeps_its_rows(tmp_path: Path) -> None:
    path = _build(tmp_path / "wal.db", rows=50)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        before = db.execute("SELECT * FROM posts ORDER BY id").fetchall()
    db.close()
    report = check_sqlite(path)
    with sqlite3.connect(path) as db:
        after = db.execute("SELECT * FROM posts ORDER BY id").fetchall()
    db.close()
    assert report.lock == "free"
    assert after == before


def test_rollback_journal_is_not_probed(tmp_path: Path) -> None:
    path = _build(tmp_path / "crashed.db", rows=10)
    journal = tmp_path / "crashed.db-journal"
    journal.write_bytes(b"\x00" * 512)
    state, detail = probe_write_lock(path, "delete")
    assert state == "unknown"
    assert detail.startswith("a rollback journal exists")
    assert journal.read_bytes() == b"\x00" * 512


def test_database_variables_are_secret(tmp_path: Path) -> None:
    config = tmp_path / "veerunbook.toml"
    config.write_text(
        '[targets.staging]\nbase_url = "http://127.0.0.1:8080"\n'
        'database_url_env = "STAGING_DATABASE_URL"\n',
        encoding="utf-8",
    )
    names = load_config(config).secret_env_names()
    assert "STAGING_DATABASE_URL" in names
    # A target given as a base URL reads DATABASE_URL, which is always secret.
    assert "DATABASE_URL" in names


def test_demo_target_names_its_own_variable() -> None:
    target = Config().resolve_target("demo:healthy")
    assert target.database_url_env == DEMO_DATABASE_URL_ENV


def test_demo_database_url_is_set_while_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VEERUNBOOK_DEMO_URL", raising=False)
    monkeypatch.delenv(DEMO_DATABASE_URL_ENV, raising=False)
    with connect("demo:healthy", Config()) as target:
        value = os.environ[target.database_url_env]
        url = read_database_url(target.database_url_env)
        report = check_sqlite(url.sqlite_path) if url.sqlite_path else None
    assert value.startswith("sqlite:////")
    assert value.endswith("/veefore.sqlite3")
    assert report is not None
    assert report.ok
    assert DEMO_DATABASE_URL_ENV not in os.environ
