"""The simulator's operations, run as the runbook runs them: as separate processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_simulator import StartTarget, client_for, error_rate_over, start

from veerunbook.simulator import RunningTarget, start_target

__all__ = ["start"]  # the fixture, imported for pytest

INTEGRITY_DETAIL = "12 payments rows fail validation (checksum mismatch)"


@pytest.fixture(scope="module")
def shared_ops_target() -> Iterator[RunningTarget]:
    """A healthy target without traffic, for operations that change nothing."""
    with start_target(seed=11, traffic_rate=0) as target:
        yield target


def run(
    target: RunningTarget, operation: str, *arguments: str
) -> subprocess.CompletedProcess[str]:
    command = [*target.ops_command(operation), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def integrity(target: RunningTarget) -> dict[str, str]:
    with client_for(target) as client:
        body: dict[str, str] = client.get("/health/database").json()["integrity"]
    return body


def test_ops_command_argv(start: StartTarget, tmp_path: Path) -> None:
    target = start(traffic_rate=0, data_dir=tmp_path)
    assert target.ops_command("db-status") == [
        sys.executable,
        "-m",
        "veerunbook.simulator.ops",
        "--data-dir",
        str(tmp_path),
        "db-status",
    ]
    with pytest.raises(ValueError, match="db-restore"):
        target.ops_command("db-drop")


def test_baseline_backup_seeded(start: StartTarget, tmp_path: Path) -> None:
    target = start(traffic_rate=0, data_dir=tmp_path)
    listed = run(target, "db-backups")
    backups = json.loads(listed.stdout)
    files = sorted(path.suffix for path in (tmp_path / "backups").iterdir())
    assert listed.returncode == 0
    assert len(backups) == 1
    assert backups[0]["name"].startswith("baseline_")
    assert backups[0]["paymentsValid"] is True
    assert files == [".json", ".sqlite3"]


def test_db_status_lists_migrations(start: StartTarget) -> None:
    target = start(traffic_rate=0)
    fresh = run(target, "db-status")
    connection = sqlite3.connect(target.database_path)
    with connection:
        connection.execute(
            "DELETE FROM migrations WHERE name = '0009_add_deploys_note'"
        )
    connection.close()
    pending = run(target, "db-status")
    assert fresh.returncode == 0
    assert "Migrations: 10 applied, 0 pending" in fresh.stdout
    assert "applied  0010_create_security_tables" in fresh.stdout
    assert "Current version: 1.4.2" in fresh.stdout
    assert "Migrations: 9 applied, 1 pending" in pending.stdout
    assert "pending  0009_add_deploys_note" in pending.stdout


def test_backup_manifest(start: StartTarget, tmp_path: Path) -> None:
    target = start(traffic_rate=0, data_dir=tmp_path)
    result = run(target, "db-backup", "before-change")
    backup = tmp_path / "backups" / "before-change.sqlite3"
    manifest = json.loads((tmp_path / "backups" / "before-change.json").read_text())
    assert result.returncode == 0
    assert "Backup before-change written" in result.stdout
    assert manifest["sizeBytes"] == backup.stat().st_size
    assert manifest["createdAt"].endswith("Z")
    assert manifest["paymentsValid"] is True
    assert manifest["tables"]["payments"]["rows"] == 15
    assert manifest["tables"]["accounts"]["rows"] == 5
    assert len(manifest["tables"]["deploys"]["sha256"]) == 64
    assert len(manifest["sha256"]) == 64


def test_backup_corrupt_validate_restore(start: StartTarget, tmp_path: Path) -> None:
    target = start(traffic_rate=20, data_dir=tmp_path)
    backup = run(target, "db-backup", "good")
    target.set_scenario("data-corruption")
    invalid = run(target, "db-validate")
    corrupted = integrity(target)
    emergency = run(target, "db-backup", "emergency")
    restore = run(target, "db-restore", "good")
    valid = run(target, "db-validate")
    restored = integrity(target)
    listed = {
        item["name"]: item for item in json.loads(run(target, "db-backups").stdout)
    }

    assert backup.returncode == 0
    assert invalid.returncode == 1
    assert "integrity_check: ok" in invalid.stdout
    assert f"payments: {INTEGRITY_DETAIL}" in invalid.stdout
    assert invalid.stdout.count("checksum mismatch") == 13
    assert "amount not positive" in invalid.stdout
    assert corrupted == {"status": "fail", "detail": INTEGRITY_DETAIL}
    assert emergency.returncode == 0
    assert restore.returncode == 0
    assert "Restored backup good" in restore.stdout
    assert valid.returncode == 0
    assert "payments: 15 payments rows pass validation" in valid.stdout
    assert restored == {"status": "pass", "detail": "15 payments rows pass validation"}
    assert listed["good"]["paymentsValid"] is True
    assert listed["emergency"]["paymentsValid"] is False


@pytest.mark.parametrize("damage", ["manifest", "file"])
def test_restore_rejects_mismatch(
    start: StartTarget, tmp_path: Path, damage: str
) -> None:
    target = start("data-corruption", traffic_rate=0, data_dir=tmp_path)
    assert run(target, "db-backup", "suspect").returncode == 0
    if damage == "manifest":
        path = tmp_path / "backups" / "suspect.json"
        manifest = json.loads(path.read_text())
        manifest["tables"]["payments"]["rows"] = 99
        path.write_text(json.dumps(manifest))
    else:
        with (tmp_path / "backups" / "suspect.sqlite3").open("ab") as handle:
            handle.write(b"\0")
    result = run(target, "db-restore", "suspect")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "does not match its manifest" in result.stderr
    assert integrity(target)["status"] == "fail"


@pytest.mark.parametrize(
    ("operation", "argument", "message"),
    [
        ("db-restore", "missing", "not found"),
        ("db-backup", "../escape", "invalid backup name"),
        ("deploy-rollback", "9.9.9", "unknown version '9.9.9'"),
    ],
)
def test_ops_reject_bad_argument(
    shared_ops_target: RunningTarget, operation: str, argument: str, message: str
) -> None:
    result = run(shared_ops_target, operation, argument)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr


def test_backup_name_taken(start: StartTarget) -> None:
    target = start(traffic_rate=0)
    first = run(target, "db-backup", "twice")
    second = run(target, "db-backup", "twice")
    assert first.returncode == 0
    assert second.returncode == 2
    assert "already exists" in second.stderr


def test_ops_without_database(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "veerunbook.simulator.ops"]
    command += ["--data-dir", str(tmp_path), "db-validate"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no simulator database" in result.stderr
    assert not (tmp_path / "veefore.sqlite3").exists()


def test_rollback_fixes_bad_deploy(start: StartTarget) -> None:
    target = start("bad-deploy", traffic_rate=1000)
    with client_for(target) as client:
        broken = error_rate_over(client, 800)
        result = run(target, "deploy-rollback", "1.4.2")
        fixed = error_rate_over(client, 800)
        current = client.get("/api/deployments").json()["current"]
    again = run(target, "deploy-rollback", "1.4.2")
    assert broken > 0.1
    assert result.returncode == 0
    assert result.stdout == "Rolled back from 1.5.0 to 1.4.2.\n"
    assert fixed < 0.01
    assert current == "1.4.2"
    assert target.scenario == "bad-deploy"
    assert again.returncode == 0
    assert "nothing changed" in again.stdout


def test_security_audit_healthy(start: StartTarget) -> None:
    result = run(start(traffic_rate=0), "security-audit")
    summary = json.loads(result.stdout)
    assert result.returncode == 0
    assert summary["blockedIps"]["total"] == 0
    assert summary["highSeverityEvents"]["total"] == 0
    assert summary["privilegeEscalationAttempts"] == []


def test_security_audit_attack(start: StartTarget) -> None:
    target = start("attack", traffic_rate=0)
    deadline = time.monotonic() + 20.0
    result = run(target, "security-audit")
    while json.loads(result.stdout)["blockedIps"]["lastMinute"] <= 10:
        assert time.monotonic() < deadline, "fewer than 11 blocks within 20 s"
        time.sleep(0.5)
        result = run(target, "security-audit")
    summary = json.loads(result.stdout)
    escalation = summary["privilegeEscalationAttempts"][0]
    assert result.returncode == 1
    assert summary["highSeverityEvents"]["byType"]["failed_login"] >= 40
    assert len(summary["privilegeEscalationAttempts"]) == 1
    assert escalation["severity"] == "high"
    assert escalation["ip"].startswith(("203.0.113.", "198.51.100."))
