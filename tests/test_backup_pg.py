"""PostgreSQL backups on the real test cluster: pg_dump, verification, pg_restore."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from veerunbook.backup_pg import dump_pg, restore_pg, split_dsn, verify_pg_backup
from veerunbook.errors import BackupError, DatabaseUnavailable, UsageError
from veerunbook.pg_content import amcheck, live_pg_digests
from veerunbook.redact import Redactor

DATABASE = "backup_unit"


def line(text: str) -> bytes:
    return json.dumps([text]).encode() + b"\n"


# The rows' text forms, sorted under the C collation: "(1,alice,1250)" first.
LEDGER_SHA256 = hashlib.sha256(
    line("(1,alice,1250)") + line("(2,bob,-40)") + line("(3,carol,990)")
).hexdigest()


@pytest.fixture(scope="module")
def dsn(pg_cluster: Any) -> Iterator[str]:
    with pg_cluster.open_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    url = pg_cluster.admin_dsn.rsplit("/", 1)[0] + f"/{DATABASE}"
    yield url
    with pg_cluster.open_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


@pytest.fixture
def ledger(dsn: str) -> str:
    """A fresh ``ledger`` table with three known rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP EXTENSION IF EXISTS amcheck")
        conn.execute("DROP TABLE IF EXISTS ledger")
        conn.execute("CREATE TABLE ledger (id int PRIMARY KEY, owner text, cents int)")
        conn.execute(
            "INSERT INTO ledger VALUES (3, 'carol', 990), (1, 'alice', 1250),"
            " (2, 'bob', -40)"
        )
    return dsn


def redactor(dsn: str) -> Redactor:
    masking = Redactor([dsn])
    password = split_dsn(dsn).password
    assert password
    masking.add(password)
    return masking


def corrupt(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE ledger SET cents = -cents WHERE id = 1")


def test_split_keeps_password_apart(dsn: str) -> None:
    login = split_dsn(dsn)
    assert login.password is not None
    assert login.password not in login.conninfo
    assert "dbname=backup_unit" in login.conninfo
    assert login.env() == {"PGPASSWORD": login.password}


def test_split_rejects_sslpassword() -> None:
    with pytest.raises(UsageError, match="sslpassword"):
        split_dsn("host=127.0.0.1 dbname=x sslpassword=secret-phrase")


def test_digest_of_rows(ledger: str) -> None:
    digests = live_pg_digests(ledger, 10)
    assert digests["public.ledger"] == {"rows": 3, "sha256": LEDGER_SHA256}


def test_dump_writes_manifest(ledger: str, tmp_path: Path) -> None:
    manifest = dump_pg(
        ledger, tmp_path, "good", timeout_s=60, redactor=redactor(ledger)
    )
    data = (tmp_path / "good.dump").read_bytes()
    assert data[:5] == b"PGDMP"  # the custom format's magic
    assert manifest.size_bytes == len(data)
    assert manifest.sha256 == hashlib.sha256(data).hexdigest()
    assert manifest.tables["public.ledger"] == {"rows": 3, "sha256": LEDGER_SHA256}
    assert manifest.engine == "postgresql"
    assert (tmp_path / "good.json").is_file()


def test_verify_passes(ledger: str, tmp_path: Path) -> None:
    masking = redactor(ledger)
    manifest = dump_pg(ledger, tmp_path, "good", timeout_s=60, redactor=masking)
    assert verify_pg_backup(tmp_path, manifest, timeout_s=60, redactor=masking) == []


def test_verify_finds_changed_bytes(ledger: str, tmp_path: Path) -> None:
    masking = redactor(ledger)
    manifest = dump_pg(ledger, tmp_path, "good", timeout_s=60, redactor=masking)
    path = tmp_path / "good.dump"
    path.write_bytes(path.read_bytes()[:-10] + b"\x00" * 10)
    problems = verify_pg_backup(tmp_path, manifest, timeout_s=60, redactor=masking)
    assert problems == ["the file's SHA-256 differs from the manifest"]


def test_verify_finds_unreadable_archive(ledger: str, tmp_path: Path) -> None:
    masking = redactor(ledger)
    manifest = dump_pg(ledger, tmp_path, "good", timeout_s=60, redactor=masking)
    path = tmp_path / "good.dump"
    path.write_bytes(b"not an archive")
    size = path.stat().st_size
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    forged = type(manifest)(
        **{**manifest.__dict__, "size_bytes": size, "sha256": digest}
    )
    problems = verify_pg_backup(tmp_path, forged, timeout_s=60, redactor=masking)
    assert len(problems) == 1
    assert problems[0].startswith("pg_restore --list exited 1")


def test_restore_brings_rows_back(ledger: str, tmp_path: Path) -> None:
    masking = redactor(ledger)
    manifest = dump_pg(ledger, tmp_path, "good", timeout_s=60, redactor=masking)
    corrupt(ledger)
    assert live_pg_digests(ledger, 10) != manifest.tables
    restore_pg(ledger, tmp_path, manifest, timeout_s=60, redactor=masking)
    assert live_pg_digests(ledger, 10) == manifest.tables


def test_rejected_restore_changes_nothing(ledger: str, tmp_path: Path) -> None:
    masking = redactor(ledger)
    manifest = dump_pg(ledger, tmp_path, "good", timeout_s=60, redactor=masking)
    corrupt(ledger)
    before = live_pg_digests(ledger, 10)
    (tmp_path / "good.dump").write_bytes(b"PGDMP broken")
    with pytest.raises(BackupError, match="backup 'good' rejected"):
        restore_pg(ledger, tmp_path, manifest, timeout_s=60, redactor=masking)
    assert live_pg_digests(ledger, 10) == before


def test_failed_dump_leaves_nothing(pg_cluster: Any, tmp_path: Path) -> None:
    wrong = pg_cluster.admin_dsn.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(DatabaseUnavailable, match="no_such_database"):
        dump_pg(wrong, tmp_path, "good", timeout_s=30, redactor=redactor(wrong))
    assert list(tmp_path.iterdir()) == []


def test_amcheck_absent_reported(ledger: str) -> None:
    result = amcheck(ledger, 10)
    assert not result.available
    assert result.detail == (
        "amcheck is not installed (CREATE EXTENSION amcheck enables it)"
    )


def test_amcheck_checks_indexes(ledger: str) -> None:
    with psycopg.connect(ledger, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION amcheck")
    result = amcheck(ledger, 10)
    assert result.available
    assert result.checked == 1  # the primary key of ledger
    assert result.problems == []
