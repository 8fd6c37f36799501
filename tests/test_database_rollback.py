"""Runs of the real database-rollback notebook through the runner.

The demo target runs in the test process, so that ``tests/targetstate.py`` can
snapshot it before and after a run. The notebook's kernel reaches it through
``VEERUNBOOK_DEMO_URL``, as a drill's procedures do. The demo uses its configured
commands (the ``veerunbook.simulator.ops`` operations). The other targets are
configured in a ``veerunbook.toml`` of the test: a SQLite file without commands (the
direct path), the same with a ``db_backup`` command that fails, and the real
PostgreSQL test cluster with pg_dump and pg_restore.

The data-corruption scenario changes 12 of the 15 payments rows behind the
application's back and keeps a baseline backup from before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.targetstate import difference, snapshot
from veerunbook.backup_manifest import read_manifest
from veerunbook.backup_pg import dump_pg, split_dsn
from veerunbook.journal import Journal
from veerunbook.pg_content import live_pg_digests
from veerunbook.redact import Redactor
from veerunbook.runner import RunOutcome, run_procedure
from veerunbook.simulator import RunningTarget, start_target
from veerunbook.simulator.backups import create_backup

PROCEDURE = "database-rollback"
TOKEN = "rollback-test-admin-token"
DB_ENV = "VEERUNBOOK_TEST_ROLLBACK_DB"
ACTIONS = [
    "stop-traffic",
    "emergency-backup",
    "restore",
    "validate",
    "resume-health-only",
    "resume-read-only",
    "resume-full",
]
EVIDENCE = "12 payments rows fail validation (checksum mismatch)"
BEFORE = " before the restore"
AFTER = " after the restore"


@dataclass
class Run:
    """A finished run: its outcome, its journal events and its notebook's outputs."""

    outcome: RunOutcome
    events: list[dict[str, Any]]
    outputs: str

    def checks(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "check" and e["name"] == name]

    def ends(self) -> dict[str, dict[str, Any]]:
        """Return the last journaled step of each action, by name."""
        ends = {}
        for event in self.events:
            if event["event"] == "action" and event["mode"] != "intent":
                ends[event["name"]] = event
        return ends

    def modes(self) -> list[str]:
        ends = self.ends()
        return [ends[name]["mode"] for name in ACTIONS if name in ends]

    def diagnosis(self) -> str:
        notes = [e for e in self.events if e["event"] == "note" and "diagnosis" in e]
        assert len(notes) == 1
        return str(notes[0]["diagnosis"])

    def options(self) -> list[dict[str, Any]]:
        notes = [
            e for e in self.events if e["event"] == "note" and "recovery_options" in e
        ]
        assert len(notes) == 1
        options: list[dict[str, Any]] = notes[0]["recovery_options"]
        return options


def _outputs(notebook: Path) -> str:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    texts = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")))
            texts += ["".join(value) for value in output.get("data", {}).values()]
            texts.append(str(output.get("evalue", "")))
    return "\n".join(texts)


def _run(archive: Path, target: str, incident: str, **params: Any) -> Run:
    outcome = run_procedure(
        PROCEDURE,
        incident=incident,
        target=target,
        params={"window_seconds": 2.0, **params},
        archive=archive,
        redactor=Redactor(),
    )
    events = [
        event
        for event in Journal(archive / incident).events()
        if event.get("run") == outcome.run_id
    ]
    return Run(outcome, events, _outputs(outcome.notebook))


def _confirmed(archive: Path, target: str, incident: str, **params: Any) -> Run:
    return _run(archive, target, incident, confirm=incident, **params)


@contextlib.contextmanager
def _demo(scenario: str, data_dir: Path, **options: Any) -> Iterator[RunningTarget]:
    """Start the demo target here and point procedure kernels at it."""
    with (
        pytest.MonkeyPatch.context() as patch,
        start_target(scenario, data_dir=data_dir, seed=5, **options) as running,
    ):
        patch.setenv("VEEFORE_ADMIN_TOKEN", TOKEN)
        patch.setenv("VEERUNBOOK_DEMO_URL", running.base_url)
        patch.setenv("VEERUNBOOK_DEMO_DATA_DIR", str(data_dir))
        patch.delenv("VEERUNBOOK_CONFIG", raising=False)
        yield running


@contextlib.contextmanager
def _configured(
    folder: Path, running: RunningTarget, database_url: str, commands: dict[str, str]
) -> Iterator[str]:
    """Configure target ``file-db`` at ``running`` with a database URL and commands."""
    lines = [
        "[targets.file-db]",
        f'base_url = "{running.base_url}"',
        f'database_url_env = "{DB_ENV}"',
        "[targets.file-db.commands]",
        *[f"{name} = {json.dumps(command)}" for name, command in commands.items()],
    ]
    config = folder / "veerunbook.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VEERUNBOOK_CONFIG", str(config))
        patch.setenv(DB_ENV, database_url)
        patch.setenv("VEEFORE_ADMIN_TOKEN", TOKEN)
        patch.delenv("VEERUNBOOK_DEMO_URL", raising=False)
        yield "file-db"


def _health(running: RunningTarget, path: str = "/health") -> dict[str, Any]:
    with httpx.Client(base_url=running.base_url, timeout=10.0) as client:
        body: dict[str, Any] = client.get(path).json()
    return body


def _baseline(running: RunningTarget) -> str:
    names = sorted(p.stem for p in (running.data_dir / "backups").glob("*.json"))
    assert len(names) == 1
    assert names[0].startswith("baseline_")
    return names[0]


def _payments(database: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(
        sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)
    ) as db:
        return db.execute("SELECT * FROM payments ORDER BY id").fetchall()


# The demo, dry-run: everything planned, nothing changed.


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("dry")
    with _demo("data-corruption", folder / "target") as running:
        before = snapshot(running)
        run = _run(folder / "archive", "demo:data-corruption", "INC-DBR-DRY")
        yield {
            "run": run,
            "changes": difference(before, snapshot(running)),
            "baseline": _baseline(running),
            "mode": _health(running)["maintenance"]["mode"],
        }


def test_dry_run_changes_nothing(dry_run: dict[str, Any]) -> None:
    assert dry_run["changes"] == {}
    assert dry_run["mode"] == "full"


def test_dry_run_exits_with_findings(dry_run: dict[str, Any]) -> None:
    assert dry_run["run"].outcome.exit_code == 1, dry_run["run"].outcome.reason


def test_dry_run_plans_every_step(dry_run: dict[str, Any]) -> None:
    run = dry_run["run"]
    assert run.modes() == ["dry-run"] * len(ACTIONS)


def test_dry_run_plans_the_baseline(dry_run: dict[str, Any]) -> None:
    restore = dry_run["run"].ends()["restore"]
    assert f"Restore backup {dry_run['baseline']} (made " in restore["detail"]
    assert "-p confirm INC-DBR-DRY" in restore["detail"]


def test_dry_run_skips_traffic_check(dry_run: dict[str, Any]) -> None:
    [check] = dry_run["run"].checks("traffic stopped")
    assert check["status"] == "skip"
    assert check["summary"].startswith("not measured in a dry-run")


def test_dry_run_banner(dry_run: dict[str, Any]) -> None:
    assert "DRY-RUN: nothing will be changed" in dry_run["run"].outputs


def test_dry_run_diagnosis(dry_run: dict[str, Any]) -> None:
    diagnosis = dry_run["run"].diagnosis()
    assert diagnosis.startswith(
        f"data corruption: {EVIDENCE} (found by the database endpoint and "
        "db_validate); dry-run: would stop traffic, take emergency backup emergency_"
    )
    assert f"restore {dry_run['baseline']} (made " in diagnosis
    assert "validate and resume traffic in 3 stages; " in diagnosis


def test_dry_run_states_assumption(dry_run: dict[str, Any]) -> None:
    diagnosis = dry_run["run"].diagnosis()
    assert "; corruption start assumed: now (" in diagnosis
    assert "), because corrupted_since is empty; give -p corrupted_since " in diagnosis


def test_dry_run_states_backup_age(dry_run: dict[str, Any]) -> None:
    diagnosis = dry_run["run"].diagnosis()
    assert f"; backup {dry_run['baseline']} is 0 min old (made " in diagnosis


def test_dry_run_states_dropped_rows(dry_run: dict[str, Any]) -> None:
    diagnosis = dry_run["run"].diagnosis()
    assert diagnosis.endswith(
        "; the restore changes payments: same row count, changed rows (live 15,"
        " backup 15)"
    )


def test_dry_run_impact_table(dry_run: dict[str, Any]) -> None:
    [note] = [e for e in dry_run["run"].events if "restore_impact" in e]
    rows = {row["table"]: row for row in note["restore_impact"]}
    assert len(rows) == 7
    assert rows["payments"] == {
        "table": "payments",
        "live rows": 15,
        "backup rows": 15,
        "restore": "same row count, changed rows",
    }
    unchanged = [row for row in rows.values() if row["restore"] == "unchanged"]
    assert len(unchanged) == 6


def test_dry_run_ranks_restore(dry_run: dict[str, Any]) -> None:
    [option] = dry_run["run"].options()
    assert option["rank"] == 1
    assert option["action"].startswith(f"restore backup {dry_run['baseline']} (made ")
    assert option["evidence"] == (
        f"{EVIDENCE} (found by the database endpoint and db_validate)"
    )


def test_evidence_checks(dry_run: dict[str, Any]) -> None:
    run = dry_run["run"]
    [endpoint] = run.checks("data integrity (endpoint)" + BEFORE)
    [command] = run.checks("db_validate command" + BEFORE)
    [own] = run.checks("database integrity check" + BEFORE)
    assert endpoint["status"] == "fail"
    assert endpoint["summary"] == EVIDENCE
    assert command["status"] == "fail"
    assert command["observed"] == 1
    assert own["status"] == "pass"
    assert own["summary"] == "integrity_check: ok"


# The demo, confirmed: restored, validated, resumed; then a second run.


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("confirmed")
    with _demo("data-corruption", folder / "target") as running:
        baseline = _baseline(running)
        backup_file = running.data_dir / "backups" / f"{baseline}.sqlite3"
        before = snapshot(running)
        run = _confirmed(folder / "archive", "demo:data-corruption", "INC-DBR-GO")
        after = snapshot(running)
        health = _health(running)
        integrity = _health(running, "/health/database")["integrity"]
        backups = running.data_dir / "backups"
        [emergency] = [p.stem for p in backups.glob("emergency_*.json")]
        manifest = read_manifest(backups, emergency)
        again = _confirmed(folder / "archive", "demo:data-corruption", "INC-DBR-GO")
        changes_again = difference(after, snapshot(running))
        live_payments = _payments(running.database_path)
        # Restoring the emergency backup brings the damage back, so validation fails.
        undo = _confirmed(
            folder / "archive",
            "demo:data-corruption",
            "INC-DBR-GO",
            force=True,
            backup=emergency,
        )
        yield {
            "run": run,
            "again": again,
            "undo": undo,
            "undo_mode": _health(running)["maintenance"]["mode"],
            "before": before,
            "changes": difference(before, after),
            "changes_again": changes_again,
            "baseline": baseline,
            "baseline_payments": _payments(backup_file),
            "live_payments": live_payments,
            "health": health,
            "integrity": integrity,
            "emergency": manifest,
        }


def test_confirmed_carries_out_every_step(confirmed: dict[str, Any]) -> None:
    run = confirmed["run"]
    assert run.modes() == ["executed"] * len(ACTIONS), run.ends()


def test_confirmed_restores_baseline(confirmed: dict[str, Any]) -> None:
    assert confirmed["live_payments"] == confirmed["baseline_payments"]
    assert confirmed["integrity"] == {
        "status": "pass",
        "detail": "15 payments rows pass validation",
    }


def test_confirmed_changes_only_data(confirmed: dict[str, Any]) -> None:
    # The restored payments rows and the emergency backup's two files, nothing else.
    assert sorted(confirmed["changes"]) == ["backups", "tables.payments"]


def test_confirmed_replaces_corrupt_rows(confirmed: dict[str, Any]) -> None:
    payments = confirmed["changes"]["tables.payments"]
    assert len(payments["removed"]) == 12
    assert len(payments["added"]) == 12
    baseline = [list(row) for row in confirmed["baseline_payments"]]
    assert all(row in baseline for row in payments["added"])


def test_confirmed_adds_emergency_backup(confirmed: dict[str, Any]) -> None:
    listing = confirmed["changes"]["backups"]["after"]
    names = [entry["name"] for entry in listing]
    added = [name for name in names if name.startswith("emergency_")]
    assert len(names) == 4
    assert len(added) == 2
    assert {Path(name).suffix for name in added} == {".json", ".sqlite3"}


def test_confirmed_measures_traffic(confirmed: dict[str, Any]) -> None:
    [check] = confirmed["run"].checks("traffic stopped")
    assert check["status"] == "pass"
    assert check["observed"] == 0
    assert check["summary"] == "0 user requests in 2 s; mode stopped"


def test_confirmed_backup_verified(confirmed: dict[str, Any]) -> None:
    backup = confirmed["run"].ends()["emergency-backup"]
    assert backup["verified"] is True
    assert backup["detail"].startswith("db_backup command exited 0")
    manifest = confirmed["emergency"]
    rows = sum(table["rows"] for table in manifest.tables.values())
    assert f"{manifest.file}: {manifest.size_bytes} bytes, SHA-256 " in backup["detail"]
    assert f"7 tables with {rows} rows match the manifest" in backup["detail"]
    assert manifest.data_valid is False  # the demo's own manifest: payments invalid


def test_confirmed_validation_passes(confirmed: dict[str, Any]) -> None:
    run = confirmed["run"]
    [tables] = run.checks("tables match the backup")
    [before] = run.checks("db_validate command" + BEFORE)
    [after] = run.checks("db_validate command" + AFTER)
    assert tables["status"] == "pass"
    assert tables["summary"] == f"7 tables match backup {confirmed['baseline']}"
    assert before["status"] == "fail"
    assert after["status"] == "pass"


def test_confirmed_endpoint_checks(confirmed: dict[str, Any]) -> None:
    run = confirmed["run"]
    [before] = run.checks("data integrity (endpoint)" + BEFORE)
    [after] = run.checks("data integrity (endpoint)" + AFTER)
    assert before["status"] == "fail"
    assert after["status"] == "pass"
    assert run.checks("data integrity (endpoint)") == []


def test_confirmed_verdict_ok(confirmed: dict[str, Any]) -> None:
    assert "verdict: ok" in confirmed["run"].outputs
    assert "verdict: findings" in confirmed["undo"].outputs


def test_confirmed_resumes_in_stages(confirmed: dict[str, Any]) -> None:
    run = confirmed["run"]
    names = [
        event["name"]
        for event in run.events
        if event["event"] == "check" and event["name"].startswith("resume ")
    ]
    assert names == [
        "resume health-only: health",
        "resume health-only: readyz",
        "resume read-only: login",
        "resume read-only: dashboard",
        "resume full: login",
        "resume full: instagram publish",
    ]
    assert confirmed["health"]["maintenance"]["mode"] == "full"


def test_confirmed_diagnosis(confirmed: dict[str, Any]) -> None:
    diagnosis = confirmed["run"].diagnosis()
    assert diagnosis.startswith(f"data corruption: {EVIDENCE}")
    assert f"; restored {confirmed['baseline']} (made " in diagnosis
    assert "; validation passed; traffic back to full; " in diagnosis


def test_confirmed_names_emergency_file(confirmed: dict[str, Any]) -> None:
    manifest = confirmed["emergency"]
    diagnosis = confirmed["run"].diagnosis()
    assert f" after emergency backup {manifest.name} (" in diagnosis
    assert f"/backups/{manifest.file}); " in diagnosis


def test_confirmed_tells_undo(confirmed: dict[str, Any]) -> None:
    name = confirmed["emergency"].name
    assert (
        confirmed["run"]
        .diagnosis()
        .endswith(
            "; to undo, restore the emergency backup: veerunbook run database-rollback "
            "--target demo --incident INC-DBR-GO -p confirm INC-DBR-GO "
            f"-p backup {name} -p force True (on a target kept with veerunbook"
            " simulate --data-dir; a demo target is gone after its run)"
        )
    )


def test_second_run_changes_nothing(confirmed: dict[str, Any]) -> None:
    assert confirmed["changes_again"] == {}


def test_second_run_refuses(confirmed: dict[str, Any]) -> None:
    again = confirmed["again"]
    assert again.modes() == ["refused"] * len(ACTIONS)
    detail = again.ends()["stop-traffic"]["detail"]
    assert detail.startswith(
        "precondition 'corruption evidence' not met: no evidence of corruption"
    )
    assert again.outcome.exit_code == 0, again.outcome.counts
    assert again.diagnosis().endswith(
        "nothing was changed, because the runbook restores a backup only when data "
        "corruption is detected (-p force True acts anyway)"
    )


def test_second_run_ranks_nothing(confirmed: dict[str, Any]) -> None:
    [option] = confirmed["again"].options()
    assert option["rank"] is None
    assert option["evidence"].startswith("no evidence of corruption (")


def test_undo_fails_validation(confirmed: dict[str, Any]) -> None:
    undo = confirmed["undo"]
    modes = ["executed"] * 3 + ["failed"] + ["refused"] * 3
    assert undo.modes() == modes, undo.ends()
    assert confirmed["undo_mode"] == "stopped"
    assert undo.outcome.exit_code == 1


def test_undo_diagnosis_end_state(confirmed: dict[str, Any]) -> None:
    name = confirmed["emergency"].name
    diagnosis = confirmed["undo"].diagnosis()
    assert diagnosis.startswith(f"validation failed after restoring {name} (made ")
    assert f"): db_validate: payments: {EVIDENCE}; " in diagnosis
    assert "; traffic stays stopped (traffic mode now stopped); " in diagnosis
    assert "; before the restore: no evidence of corruption (" in diagnosis


def test_undo_diagnosis_resume_command(confirmed: dict[str, Any]) -> None:
    diagnosis = confirmed["undo"].diagnosis()
    assert "; to resume traffic: run the target's traffic command: " in diagnosis
    assert " full; emergency backup emergency_" in diagnosis


def test_undo_resume_cause_once(confirmed: dict[str, Any]) -> None:
    ends = confirmed["undo"].ends()
    assert ends["resume-health-only"]["detail"] == (
        "precondition 'validate passed' not met: traffic stays stopped: "
        "validation failed"
    )
    assert ends["resume-full"]["detail"] == (
        "precondition 'resume-read-only passed' not met: traffic stays stopped: "
        "validation failed"
    )


# Force on intact data: the live tables equal the newest backup, so the restore
# ends already-done, and the diagnosis must not claim a restore.


@pytest.fixture(scope="module")
def forced_intact(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("forced")
    with start_target(
        "healthy", data_dir=folder / "target", seed=5, traffic_rate=0
    ) as running:
        create_backup(running.database_path, "nightly")
        url = f"sqlite:///{running.database_path}"
        with _configured(folder, running, url, {}) as target:
            return _confirmed(folder / "archive", target, "INC-DBR-FORCE", force=True)


def test_forced_run_restores_nothing(forced_intact: Run) -> None:
    modes = ["executed"] * len(ACTIONS)
    modes[ACTIONS.index("restore")] = "already-done"
    assert forced_intact.modes() == modes, forced_intact.ends()


def test_forced_run_diagnosis(forced_intact: Run) -> None:
    diagnosis = forced_intact.diagnosis()
    assert diagnosis.startswith("no evidence of corruption (")
    assert ("; force is set; the tables already matched nightly (made ") in diagnosis
    assert "so nothing was restored (emergency backup emergency_" in diagnosis
    assert "; restored " not in diagnosis
    assert diagnosis.endswith("; validation passed; traffic back to full")


def test_unknown_backup_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # force passes the missing evidence, so the next precondition decides.
    monkeypatch.delenv("VEERUNBOOK_DEMO_URL", raising=False)
    monkeypatch.delenv("VEERUNBOOK_CONFIG", raising=False)
    run = _run(tmp_path, "demo:healthy", "INC-DBR-NOPE", force=True, backup="nope")
    assert run.modes()[0] == "refused"
    assert run.ends()["stop-traffic"]["detail"].startswith(
        "precondition 'backup to restore' not met: nothing to restore: backup "
        "'nope' not found in "
    )
    # Without evidence of corruption a missing backup only warns.
    [check] = run.checks("backups")
    assert check["status"] == "warn"


# A failing backup: the restore is refused and the data stays byte-identical.


def _file_digests(data_dir: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(data_dir.glob("veefore.sqlite3*"))
    }


@pytest.fixture(scope="module")
def failed_backup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("failing")
    data_dir = folder / "target"
    with start_target(
        "data-corruption", data_dir=data_dir, seed=5, traffic_rate=0
    ) as running:
        url = f"sqlite:///{running.database_path}"
        failing = "echo 'backup volume full' >&2; exit 1"
        with _configured(folder, running, url, {"db_backup": failing}) as target:
            before = snapshot(running)
            files = _file_digests(data_dir)
            run = _confirmed(folder / "archive", target, "INC-DBR-FAIL")
            return {
                "run": run,
                "changes": difference(before, snapshot(running)),
                "files_before": files,
                "files_after": _file_digests(data_dir),
            }


def test_failed_backup_refuses_restore(failed_backup: dict[str, Any]) -> None:
    run = failed_backup["run"]
    assert run.modes() == ["executed", "failed"] + ["refused"] * 5
    backup = run.ends()["emergency-backup"]["detail"]
    restore = run.ends()["restore"]["detail"]
    assert "db_backup command exited 1" in backup
    assert "backup volume full" in backup
    assert restore.startswith(
        "precondition 'emergency-backup verified' not met: emergency-backup ended "
        "failed"
    )


def test_failed_backup_cause_once(failed_backup: dict[str, Any]) -> None:
    ends = failed_backup["run"].ends()
    assert ends["validate"]["detail"] == (
        "precondition 'restore done' not met: emergency-backup ended failed"
    )
    assert ends["resume-full"]["detail"] == (
        "precondition 'resume-read-only passed' not met: traffic stays stopped: "
        "emergency-backup ended failed"
    )


def test_failed_backup_keeps_bytes(failed_backup: dict[str, Any]) -> None:
    assert failed_backup["files_after"] == failed_backup["files_before"]
    assert failed_backup["changes"] == {}


def test_failed_backup_diagnosis(failed_backup: dict[str, Any]) -> None:
    diagnosis = failed_backup["run"].diagnosis()
    assert "; stopped at emergency-backup (failed): " in diagnosis
    assert diagnosis.endswith("; traffic mode now stopped")


# A db_backup command that copies the old baseline under the new name and exits 0:
# the copy does not match the live database, so the restore is refused.


@pytest.fixture(scope="module")
def stale_backup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("stale")
    data_dir = folder / "target"
    with start_target(
        "data-corruption", data_dir=data_dir, seed=5, traffic_rate=0
    ) as running:
        backups = running.data_dir / "backups"
        baseline = backups / f"{_baseline(running)}.sqlite3"
        url = f"sqlite:///{running.database_path}"
        stale = f"cp {baseline} {backups}/{{backup}}.sqlite3"
        with _configured(folder, running, url, {"db_backup": stale}) as target:
            before = _payments(running.database_path)
            run = _confirmed(folder / "archive", target, "INC-DBR-STALE")
            return {
                "run": run,
                "payments_before": before,
                "payments_after": _payments(running.database_path),
            }


def test_stale_backup_fails_verification(stale_backup: dict[str, Any]) -> None:
    run = stale_backup["run"]
    assert run.modes() == ["executed", "failed"] + ["refused"] * 5
    backup = run.ends()["emergency-backup"]
    assert backup["verified"] is False
    assert "does not match the live database (" in backup["detail"]
    assert "table payments rows differ from the manifest SHA-256" in backup["detail"]


def test_stale_backup_refuses_restore(stale_backup: dict[str, Any]) -> None:
    restore = stale_backup["run"].ends()["restore"]["detail"]
    assert restore.startswith(
        "precondition 'emergency-backup verified' not met: emergency-backup ended "
        "failed"
    )
    assert stale_backup["payments_after"] == stale_backup["payments_before"]


# The direct SQLite path: no commands, the admin endpoint for the traffic.


@pytest.fixture(scope="module")
def direct_sqlite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("direct")
    with start_target("data-corruption", data_dir=folder / "target", seed=5) as running:
        baseline = _baseline(running)
        url = f"sqlite:///{running.database_path}"
        with _configured(folder, running, url, {}) as target:
            run = _confirmed(folder / "archive", target, "INC-DBR-SQLITE")
        backups = running.data_dir / "backups"
        emergency = sorted(p.stem for p in backups.glob("emergency_*.json"))
        return {
            "run": run,
            "baseline": baseline,
            "integrity": _health(running, "/health/database")["integrity"],
            "mode": _health(running)["maintenance"]["mode"],
            "emergency": [read_manifest(backups, name) for name in emergency],
        }


def test_direct_sqlite_restores(direct_sqlite: dict[str, Any]) -> None:
    run = direct_sqlite["run"]
    assert run.modes() == ["executed"] * len(ACTIONS), run.ends()
    assert direct_sqlite["integrity"]["status"] == "pass"
    assert direct_sqlite["mode"] == "full"


def test_direct_sqlite_methods(direct_sqlite: dict[str, Any]) -> None:
    ends = direct_sqlite["run"].ends()
    assert ends["stop-traffic"]["detail"].startswith("POST /admin/traffic answered 200")
    assert ends["emergency-backup"]["detail"].startswith(
        "SQLite online backup API wrote emergency_"
    )
    assert ends["restore"]["detail"].startswith(
        f"copied {direct_sqlite['baseline']}.sqlite3 into "
    )


def test_direct_sqlite_manifest(direct_sqlite: dict[str, Any]) -> None:
    [manifest] = direct_sqlite["emergency"]
    assert manifest.engine == "sqlite"
    assert manifest.data_valid is False  # a backup of corrupt data
    assert manifest.tables["payments"]["rows"] == 15


# PostgreSQL: pg_dump and pg_restore against the real test cluster.

PG_DATABASE = "rollback_e2e"
VALIDATE_SCRIPT = f"""
import os, sys
import psycopg
with psycopg.connect(os.environ["{DB_ENV}"]) as conn:
    (bad,) = conn.execute("SELECT count(*) FROM payments WHERE cents <= 0").fetchone()
print(f"payments: {{bad}} rows fail validation" if bad else "payments: all valid")
sys.exit(1 if bad else 0)
"""


def _pg_database(pg_cluster: Any, name: str = PG_DATABASE) -> str:
    with pg_cluster.open_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    dsn: str = pg_cluster.admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE payments (id int PRIMARY KEY, cents int)")
        conn.execute(
            "INSERT INTO payments SELECT g, g * 100 FROM generate_series(1, 20) g"
        )
    return dsn


@pytest.fixture(scope="module")
def postgres(
    pg_cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("postgres")
    dsn = _pg_database(pg_cluster)
    backups = folder / "backups"
    masking = Redactor([dsn, split_dsn(dsn).password or dsn])
    good = dump_pg(dsn, backups, "nightly", timeout_s=60, redactor=masking)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE payments SET cents = -cents WHERE id IN (3, 7, 11)")
    script = folder / "validate.py"
    script.write_text(VALIDATE_SCRIPT, encoding="utf-8")
    commands = {"db_validate": f"{sys.executable} {script}"}
    with start_target("healthy", data_dir=folder / "target", seed=5) as running:
        with _configured(folder, running, dsn, commands) as target:
            run = _confirmed(
                folder / "archive", target, "INC-DBR-PG", backup_dir=str(backups)
            )
        yield {
            "run": run,
            "good": good,
            "live": live_pg_digests(dsn, 10),
            "archive": folder / "archive",
            "backups": backups,
        }
    with pg_cluster.open_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


def test_postgres_restores(postgres: dict[str, Any]) -> None:
    run = postgres["run"]
    assert run.modes() == ["executed"] * len(ACTIONS), run.ends()
    assert postgres["live"] == postgres["good"].tables


def test_postgres_evidence_from_command(postgres: dict[str, Any]) -> None:
    [before] = postgres["run"].checks("db_validate command" + BEFORE)
    [after] = postgres["run"].checks("db_validate command" + AFTER)
    assert before["status"] == "fail"
    assert after["status"] == "pass"
    assert before["summary"].endswith("payments: 3 rows fail validation")


def test_postgres_emergency_dump(postgres: dict[str, Any]) -> None:
    dumps = sorted(p.name for p in postgres["backups"].glob("emergency_*"))
    assert len(dumps) == 2
    assert dumps[1].endswith(".json")
    assert dumps[0].endswith(".dump")
    detail = postgres["run"].ends()["emergency-backup"]["detail"]
    assert detail.startswith("pg_dump wrote emergency_")
    assert "pg_restore --list reads it" in detail


def test_postgres_amcheck_skipped(postgres: dict[str, Any]) -> None:
    [first] = postgres["run"].checks("database integrity check" + BEFORE)
    assert first["status"] == "skip"
    assert first["summary"] == (
        "amcheck is not installed (CREATE EXTENSION amcheck enables it)"
    )


def test_postgres_password_not_archived(
    pg_cluster: Any, postgres: dict[str, Any]
) -> None:
    password = split_dsn(pg_cluster.admin_dsn).password
    assert password
    secret = password.encode()
    leaked = [
        str(path)
        for path in postgres["archive"].rglob("*")
        if path.is_file() and secret in path.read_bytes()
    ]
    assert leaked == []


PG_STALE_DATABASE = "rollback_stale"


@pytest.fixture(scope="module")
def postgres_stale(
    pg_cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A db_backup command that copies an older pg_dump archive under the new name."""
    folder = tmp_path_factory.mktemp("postgres-stale")
    dsn = _pg_database(pg_cluster, PG_STALE_DATABASE)
    backups = folder / "backups"
    masking = Redactor([dsn, split_dsn(dsn).password or dsn])
    dump_pg(dsn, backups, "nightly", timeout_s=60, redactor=masking)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE payments SET cents = -cents WHERE id IN (3, 7, 11)")
    before = live_pg_digests(dsn, 10)
    script = folder / "validate.py"
    script.write_text(VALIDATE_SCRIPT, encoding="utf-8")
    commands = {
        "db_validate": f"{sys.executable} {script}",
        "db_backup": f"cp {backups / 'nightly.dump'} {backups}/{{backup}}.dump",
    }
    with start_target("healthy", data_dir=folder / "target", seed=5) as running:
        with _configured(folder, running, dsn, commands) as target:
            run = _confirmed(
                folder / "archive", target, "INC-DBR-PGSTALE", backup_dir=str(backups)
            )
        yield {"run": run, "before": before, "after": live_pg_digests(dsn, 10)}
    with pg_cluster.open_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_STALE_DATABASE} WITH (FORCE)")


def test_postgres_stale_backup_fails(postgres_stale: dict[str, Any]) -> None:
    run = postgres_stale["run"]
    assert run.modes() == ["executed", "failed"] + ["refused"] * 5
    detail = run.ends()["emergency-backup"]["detail"]
    assert "has the same SHA-256 as backup nightly" in detail
    assert postgres_stale["after"] == postgres_stale["before"]


# A target where nothing listens: the run completes and changes nothing.


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def down_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("down")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DATABASE_URL", raising=False)
        patch.delenv("VEERUNBOOK_CONFIG", raising=False)
        target = f"http://127.0.0.1:{_free_port()}"
        return _run(folder / "archive", target, "INC-DBR-DOWN")


def test_down_target_completes(down_run: Run) -> None:
    assert down_run.outcome.exit_code == 1, down_run.outcome.reason
    assert down_run.outcome.status == "findings"


def test_down_target_refuses_all(down_run: Run) -> None:
    assert down_run.modes() == ["refused"] * len(ACTIONS)
    detail = down_run.ends()["stop-traffic"]["detail"]
    assert detail.startswith(
        "precondition 'corruption evidence' not met: no evidence either way "
        "(target: unreachable: connection refused"
    )


def test_down_target_diagnosis(down_run: Run) -> None:
    started = next(e for e in down_run.events if e["event"] == "run.started")
    assert down_run.diagnosis() == (
        f"target unreachable: connection refused at {started['target']} (every "
        "request failed); check that the service is running, then run triage"
    )


def test_requested_restore_refused_findings(tmp_path: Path) -> None:
    # A forced restore of a backup that does not exist changes nothing, so the run
    # must not end ok although every check passes, and no backup is taken.
    incident = "INC-REFUSED"
    run = _confirmed(
        tmp_path / "archive",
        "demo:healthy",
        incident,
        force=True,
        backup="emergency_20990101_000000",
    )
    assert run.outcome.status == "findings"
    assert run.outcome.exit_code == 1
    assert run.ends()["restore"]["mode"] == "refused"
    assert run.ends()["emergency-backup"]["mode"] == "refused"
