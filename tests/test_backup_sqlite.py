"""SQLite backups with manifests: copy, verification and restore on real files."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from veerunbook import backup_sqlite as backup_module
from veerunbook.backup_manifest import (
    Manifest,
    compare_tables,
    emergency_name,
    list_manifests,
    read_manifest,
    write_manifest,
)
from veerunbook.backup_sqlite import (
    backup_sqlite,
    live_digests,
    live_integrity,
    restore_sqlite,
    verify_sqlite_backup,
)
from veerunbook.errors import BackupError, UsageError
from veerunbook.simulator import start_target
from veerunbook.simulator.backups import create_backup

ROWS = [(1, "alice", 1250), (2, "bob", -40), (3, "carol", 990)]


def line(values: list[object]) -> bytes:
    return json.dumps(values).encode() + b"\n"


# The digest of the payments rows in rowid order, one JSON line each.
PAYMENTS_SHA256 = hashlib.sha256(
    line([1, "alice", 1250]) + line([2, "bob", -40]) + line([3, "carol", 990])
).hexdigest()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "app.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE payments (id INTEGER PRIMARY KEY, owner TEXT, cents INTEGER)"
    )
    connection.executemany("INSERT INTO payments VALUES (?, ?, ?)", ROWS)
    connection.execute(
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID"
    )
    connection.execute("INSERT INTO settings VALUES ('b', x'00ff'), ('a', x'01')")
    connection.commit()
    # An open connection keeps the -wal file, as a running application does.
    yield path
    connection.close()


# A writer that commits in WAL mode and exits without closing, as a crashed
# application does: the rows stay in the -wal file, not checkpointed.
CRASHED_WRITER = """
import os, sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
connection.execute("PRAGMA journal_mode=WAL")
connection.execute("PRAGMA wal_autocheckpoint=0")
connection.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)")
connection.executemany(
    "INSERT INTO events (body) VALUES (?)", [(f"event {i}",) for i in range(2000)]
)
connection.commit()
os._exit(0)
"""


@pytest.fixture
def crashed_wal(tmp_path: Path) -> Path:
    """A WAL database whose committed rows are only in its -wal file."""
    path = tmp_path / "crashed.sqlite3"
    subprocess.run([sys.executable, "-c", CRASHED_WRITER, str(path)], check=True)
    return path


def file_bytes(database: Path) -> dict[str, bytes]:
    """Return the bytes of the database file and of each file beside it."""
    return {p.name: p.read_bytes() for p in database.parent.glob(f"{database.name}*")}


def corrupt(database: Path) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE payments SET cents = -cents WHERE id = 1")


def test_backup_manifest_rows(database: Path, tmp_path: Path) -> None:
    manifest = backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    assert manifest.tables["payments"] == {"rows": 3, "sha256": PAYMENTS_SHA256}


def test_without_rowid_in_key_order(database: Path, tmp_path: Path) -> None:
    # Key order: 'a' before 'b', blobs as hex text.
    expected = hashlib.sha256(line(["a", "01"]) + line(["b", "00ff"])).hexdigest()
    manifest = backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    assert manifest.tables["settings"] == {"rows": 2, "sha256": expected}


def test_backup_file_digest(database: Path, tmp_path: Path) -> None:
    manifest = backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    data = (tmp_path / "b" / "good.sqlite3").read_bytes()
    assert manifest.file == "good.sqlite3"
    assert manifest.size_bytes == len(data)
    assert manifest.sha256 == hashlib.sha256(data).hexdigest()
    assert manifest.engine == "sqlite"


def test_backup_is_one_file(database: Path, tmp_path: Path) -> None:
    backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "good.json",
        "good.sqlite3",
    ]


def test_manifest_round_trip(database: Path, tmp_path: Path) -> None:
    written = backup_sqlite(
        database, tmp_path / "b", "good", timeout_s=5, data_valid=False
    )
    assert read_manifest(tmp_path / "b", "good") == written


def test_verify_passes(database: Path, tmp_path: Path) -> None:
    manifest = backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    assert verify_sqlite_backup(tmp_path / "b", manifest) == []


def test_verify_finds_changed_bytes(database: Path, tmp_path: Path) -> None:
    manifest = backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    path = tmp_path / "b" / "good.sqlite3"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert verify_sqlite_backup(tmp_path / "b", manifest) == [
        "the file's SHA-256 differs from the manifest"
    ]


def test_verify_finds_empty_file(database: Path, tmp_path: Path) -> None:
    manifest = backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    (tmp_path / "b" / "good.sqlite3").write_bytes(b"")
    problems = verify_sqlite_backup(tmp_path / "b", manifest)
    assert problems == [f"backup file {tmp_path / 'b' / 'good.sqlite3'} is empty"]


def test_verify_finds_row_mismatch(database: Path, tmp_path: Path) -> None:
    manifest = backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    tables = dict(manifest.tables)
    tables["payments"] = {"rows": 4, "sha256": PAYMENTS_SHA256}
    wrong = Manifest(**{**manifest.__dict__, "tables": tables})
    assert verify_sqlite_backup(tmp_path / "b", wrong) == [
        "table payments has 3 rows, the manifest 4"
    ]


def test_compare_tables_wording() -> None:
    actual = {"a": {"rows": 1, "sha256": "x"}, "b": {"rows": 2, "sha256": "y"}}
    recorded = {"b": {"rows": 2, "sha256": "z"}, "c": {"rows": 0, "sha256": "w"}}
    assert compare_tables(actual, recorded) == [
        "table a is missing from the manifest",
        "table b rows differ from the manifest SHA-256",
        "table c is missing from the database",
    ]


def test_name_taken(database: Path, tmp_path: Path) -> None:
    backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    with pytest.raises(UsageError, match="already exists"):
        backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)


@pytest.mark.parametrize("name", ["", "../up", "-dash", "a b", "x" * 65])
def test_invalid_name(database: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="invalid backup name"):
        backup_sqlite(database, tmp_path / "b", name, timeout_s=5)


def test_failed_backup_leaves_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    with pytest.raises(OSError, match="file not found"):
        backup_sqlite(missing, tmp_path / "b", "good", timeout_s=1)
    assert list((tmp_path / "b").iterdir()) == []
    assert not missing.exists()


def test_backup_reads_wal_rows(crashed_wal: Path, tmp_path: Path) -> None:
    manifest = backup_sqlite(crashed_wal, tmp_path / "b", "good", timeout_s=5)
    assert manifest.tables["events"]["rows"] == 2000


def test_backup_keeps_wal_bytes(crashed_wal: Path, tmp_path: Path) -> None:
    before = file_bytes(crashed_wal)
    backup_sqlite(crashed_wal, tmp_path / "b", "good", timeout_s=5)
    assert sorted(before) == [
        "crashed.sqlite3",
        "crashed.sqlite3-shm",
        "crashed.sqlite3-wal",
    ]
    assert file_bytes(crashed_wal) == before


def test_failed_backup_keeps_wal_bytes(
    crashed_wal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The copy succeeds, then reading it back fails, as on a disk read error.
    def fail(path: Path) -> tuple[int, str]:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(backup_module, "file_digest", fail)
    before = file_bytes(crashed_wal)
    with pytest.raises(OSError, match="Input/output error"):
        backup_sqlite(crashed_wal, tmp_path / "b", "good", timeout_s=5)
    assert file_bytes(crashed_wal) == before
    assert list((tmp_path / "b").iterdir()) == []


@pytest.mark.parametrize(
    "file", ["/tmp/other.sqlite3", "../other.sqlite3", "sub/good.sqlite3", "..", ""]
)
def test_manifest_file_not_plain_name(file: str) -> None:
    with pytest.raises(UsageError, match="invalid backup file"):
        Manifest("good", "2020-01-01T00:00:00.000Z", file, 1, "00", {})


def test_manifest_file_outside_folder(database: Path, tmp_path: Path) -> None:
    folder = tmp_path / "b"
    manifest = backup_sqlite(database, folder, "good", timeout_s=5)
    stored = {**manifest.to_json(), "file": str(database)}
    (folder / "good.json").write_text(json.dumps(stored), encoding="utf-8")
    with pytest.raises(UsageError, match="invalid manifest"):
        read_manifest(folder, "good")
    manifests, problems = list_manifests(folder)
    assert manifests == []
    assert len(problems) == 1
    assert "invalid backup file" in problems[0]


def test_restore_brings_rows_back(database: Path, tmp_path: Path) -> None:
    manifest = backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    corrupt(database)
    assert live_digests(database, 5)["payments"]["sha256"] != PAYMENTS_SHA256
    restore_sqlite(database, tmp_path / "b", manifest, timeout_s=5)
    assert live_digests(database, 5) == manifest.tables
    assert live_integrity(database, 5) == []


def test_rejected_restore_changes_nothing(database: Path, tmp_path: Path) -> None:
    manifest = backup_sqlite(database, tmp_path / "b", "good", timeout_s=5)
    corrupt(database)
    before = live_digests(database, 5)
    (tmp_path / "b" / "good.sqlite3").write_bytes(b"SQLite format 3\x00 broken")
    with pytest.raises(BackupError, match="backup 'good' rejected"):
        restore_sqlite(database, tmp_path / "b", manifest, timeout_s=5)
    assert live_digests(database, 5) == before


def test_list_newest_first(database: Path, tmp_path: Path) -> None:
    folder = tmp_path / "b"
    first = backup_sqlite(database, folder, "first", timeout_s=5)
    older = Manifest(**{**first.__dict__, "created_at": "2020-01-01T00:00:00.000Z"})
    write_manifest(folder, older)
    backup_sqlite(database, folder, "second", timeout_s=5)
    (folder / "broken.json").write_text("{", encoding="utf-8")
    manifests, problems = list_manifests(folder)
    assert [m.name for m in manifests] == ["second", "first"]
    assert len(problems) == 1
    assert problems[0].startswith("backup 'broken': invalid manifest")


def test_emergency_name_is_utc() -> None:
    moment = datetime(2026, 3, 1, 14, 5, 9, tzinfo=UTC)
    assert emergency_name(moment) == "emergency_20260301_140509"


def test_reads_demo_manifests() -> None:
    # The demo's own backups verify with this module, so either can restore.
    with start_target("healthy", traffic_rate=0, seed=3) as target:
        create_backup(target.database_path, "demo_made")
        folder = target.data_dir / "backups"
        manifest = read_manifest(folder, "demo_made")
        assert manifest.engine == "sqlite"
        assert manifest.data_valid is True
        assert verify_sqlite_backup(folder, manifest) == []
