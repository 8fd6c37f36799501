"""Runs of the real database-connection notebook through the runner.

Each run starts a papermill kernel against one of three kinds of target. The first
is the embedded demo target in one of its scenarios, the second a target where
nothing listens. The third is a demo target whose database URL points at the real
PostgreSQL test cluster, where the test keeps sessions idle in transaction and a
blocking lock during the run. The expected values follow from each scenario's
documented symptoms.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from veerunbook.journal import Journal
from veerunbook.redact import Redactor
from veerunbook.runner import RunOutcome, run_procedure
from veerunbook.simulator import start_target

PROCEDURE = "database-connection"
WINDOW = {"window_seconds": 2.0}


@dataclass
class Run:
    """A finished run: its outcome, its journal events and its notebook's outputs."""

    outcome: RunOutcome
    events: list[dict[str, Any]]
    outputs: str

    def checks(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "check" and e["name"] == name]

    def check(self, name: str) -> dict[str, Any]:
        found = self.checks(name)
        assert len(found) == 1, [e.get("name") for e in self.events]
        return found[0]

    def note(self, key: str) -> Any:
        notes = [e for e in self.events if e["event"] == "note" and key in e]
        assert len(notes) == 1
        return notes[0][key]


def _outputs(notebook: Path) -> str:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    texts = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")))
            texts += ["".join(value) for value in output.get("data", {}).values()]
            texts.append(str(output.get("evalue", "")))
    return "\n".join(texts)


def _run(archive: Path, target: str, incident: str) -> Run:
    outcome = run_procedure(
        PROCEDURE,
        incident=incident,
        target=target,
        params=WINDOW,
        archive=archive,
        redactor=Redactor(),
    )
    run_events = [
        event
        for event in Journal(archive / incident).events()
        if event.get("run") == outcome.run_id
    ]
    return Run(outcome, run_events, _outputs(outcome.notebook))


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    archive = tmp_path_factory.mktemp("archive")
    runs = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("VEERUNBOOK_DEMO_URL", raising=False)
        patch.delenv("VEERUNBOOK_CONFIG", raising=False)
        for scenario in ("pool-exhaustion", "db-outage", "data-corruption", "healthy"):
            incident = f"INC-DB-{scenario.upper()}"
            runs[scenario] = _run(archive, f"demo:{scenario}", incident)
    return runs


def _recovery(run: Run) -> list[dict[str, Any]]:
    options = run.note("recovery_options")
    assert isinstance(options, list)
    return options


def _actions(run: Run) -> list[str]:
    return [option["action"] for option in _recovery(run)]


def test_pool_exhaustion_completes(demo_runs: dict[str, Run]) -> None:
    run = demo_runs["pool-exhaustion"]
    assert run.outcome.status == "findings", run.outcome.reason
    assert run.outcome.exit_code == 1


def test_pool_exhaustion_diagnosis(demo_runs: dict[str, Run]) -> None:
    diagnosis = demo_runs["pool-exhaustion"].note("diagnosis")
    assert diagnosis[0].startswith("connection pool exhausted: pool 100% in use")


def test_pool_exhaustion_pool_check(demo_runs: dict[str, Run]) -> None:
    # The scenario keeps all 20 of 20 connections in use, 10 or more clients waiting.
    check = demo_runs["pool-exhaustion"].check("connection pool")
    assert check["status"] == "fail"
    assert check["observed"] == 100.0
    assert check["evidence"]["max_waiting"] >= 10
    assert check["evidence"]["last"]["active"] == 20.0
    assert check["evidence"]["last"]["max"] == 20.0


def test_pool_exhaustion_restart(demo_runs: dict[str, Run]) -> None:
    options = _recovery(demo_runs["pool-exhaustion"])
    restart = [o for o in options if o["action"].startswith("Restart the application")]
    assert len(restart) == 1
    assert "pool 100% in use with up to" in restart[0]["evidence"]
    assert "client pool timeouts in the error logs" in restart[0]["evidence"]
    assert "the database accepts direct connections" in restart[0]["evidence"]
    assert restart[0]["confidence"] == "high"


def test_pool_exhaustion_log_errors(demo_runs: dict[str, Run]) -> None:
    check = demo_runs["pool-exhaustion"].check("database errors in logs")
    by_kind = check["evidence"]["by_kind"]
    assert list(by_kind) == ["client pool timeout"]
    assert by_kind["client pool timeout"] > 0


def test_outage_endpoint_fails(demo_runs: dict[str, Run]) -> None:
    check = demo_runs["db-outage"].check("database endpoint")
    assert check["status"] == "fail"
    assert check["evidence"]["http_status"] == 503


def test_outage_diagnosis(demo_runs: dict[str, Run]) -> None:
    diagnosis = demo_runs["db-outage"].note("diagnosis")
    assert diagnosis[0].startswith(
        "database unreachable from the application: connect ECONNREFUSED "
        "192.0.2.10:5432"
    )
    assert "restarting the application will not help" in diagnosis[0]


def test_outage_recommends_no_restart(demo_runs: dict[str, Run]) -> None:
    assert not any(
        action.startswith("Restart") for action in _actions(demo_runs["db-outage"])
    )


def test_outage_errors_are_refused(demo_runs: dict[str, Run]) -> None:
    check = demo_runs["db-outage"].check("database errors in logs")
    assert list(check["evidence"]["by_kind"]) == ["connection refused"]


def test_corruption_integrity_fails(demo_runs: dict[str, Run]) -> None:
    check = demo_runs["data-corruption"].check("data integrity (endpoint)")
    assert check["status"] == "fail"
    assert check["summary"] == "12 payments rows fail validation (checksum mismatch)"


def test_corruption_recommends_rollback(demo_runs: dict[str, Run]) -> None:
    options = _recovery(demo_runs["data-corruption"])
    assert len(options) == 1
    assert options[0]["action"].startswith(
        "Roll back the recent migration (0010_create_security_tables, applied "
    )
    assert options[0]["evidence"] == (
        "integrity check of the endpoint: 12 payments rows fail validation "
        "(checksum mismatch)"
    )


def test_healthy_exits_0(demo_runs: dict[str, Run]) -> None:
    run = demo_runs["healthy"]
    assert run.outcome.exit_code == 0, run.outcome.counts
    assert run.note("diagnosis") == []
    assert _recovery(run) == []


def test_healthy_pool_is_low(demo_runs: dict[str, Run]) -> None:
    check = demo_runs["healthy"].check("connection pool")
    assert check["status"] == "pass"
    assert check["observed"] <= 80.0


def test_demo_sqlite_checks_ran(demo_runs: dict[str, Run]) -> None:
    run = demo_runs["healthy"]
    assert run.check("database URL")["evidence"]["state"] == "sqlite"
    assert run.check("direct connection")["status"] == "pass"
    assert run.check("sqlite quick_check")["status"] == "pass"
    assert run.check("sqlite write lock")["status"] in ("pass", "warn")


def test_demo_migrations_from_command(demo_runs: dict[str, Run]) -> None:
    check = demo_runs["healthy"].check("migrations (db_status command)")
    assert check["status"] == "pass"
    # The simulator's database has 10 migrations applied, none pending.
    assert check["observed"] == 10
    assert check["evidence"]["pending"] == 0


def test_pool_plot_is_drawn(demo_runs: dict[str, Run]) -> None:
    assert "<Figure size" in demo_runs["pool-exhaustion"].outputs


def test_nothing_executed(demo_runs: dict[str, Run]) -> None:
    for run in demo_runs.values():
        assert not [e for e in run.events if e["event"] == "action"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_down_target_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("VEERUNBOOK_CONFIG", raising=False)
    run = _run(tmp_path, f"http://127.0.0.1:{_free_port()}", "INC-DB-DOWN")
    endpoint = run.check("database endpoint")
    assert run.outcome.exit_code == 1, run.outcome.reason
    assert run.outcome.status == "findings"
    assert endpoint["status"] == "error"
    assert "refused the connection" in endpoint["summary"]
    assert run.check("connection pool")["status"] == "error"
    assert "refused the connection" in run.check("connection pool")["summary"]
    assert run.check("database URL")["summary"] == (
        "$DATABASE_URL is not set; the application cannot find its database"
    )
    assert run.note("diagnosis")[0].startswith(
        "the application does not answer at its database endpoint"
    )


@contextlib.contextmanager
def _blocking_lock(cluster: Any) -> Iterator[int]:
    """Hold a row lock from an idle transaction while two sessions wait for it."""
    blocker = cluster.open_app("veefore-admin")
    blocker.execute("UPDATE workspaces SET credits = credits + 1 WHERE id = 'ws_1'")
    waiters = [
        threading.Thread(target=_wait_for_row, args=(cluster,)) for _ in range(2)
    ]
    try:
        for waiter in waiters:
            waiter.start()
        assert cluster.wait_for(
            "SELECT count(*) = 2 FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND application_name = 'veefore-worker'"
        )
        yield int(blocker.info.backend_pid)
    finally:
        blocker.rollback()
        for waiter in waiters:
            waiter.join(30)
        blocker.close()


def _wait_for_row(cluster: Any) -> None:
    with cluster.open_app("veefore-worker") as conn:
        conn.execute("SET lock_timeout = '60s'")
        conn.execute("UPDATE workspaces SET plan = plan WHERE id = 'ws_1'")
        conn.rollback()


@contextlib.contextmanager
def _idle_sessions(cluster: Any, count: int) -> Iterator[None]:
    """Leave ``count`` sessions of veefore-api idle inside a transaction."""
    sessions = [cluster.open_app("veefore-api") for _ in range(count)]
    try:
        for session in sessions:
            session.execute("SELECT plan FROM workspaces WHERE id = 'ws_2'")
        yield
    finally:
        for session in sessions:
            session.rollback()
            session.close()


@pytest.fixture(scope="module")
def postgres_run(pg_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("postgres")
    config = folder / "veerunbook.toml"
    with (
        start_target("healthy", traffic_rate=5) as running,
        pytest.MonkeyPatch.context() as patch,
        _idle_sessions(pg_cluster, 3),
        _blocking_lock(pg_cluster) as blocker_pid,
    ):
        config.write_text(
            "[targets.veefore-pg]\n"
            f'base_url = "{running.base_url}"\n'
            'database_url_env = "VEERUNBOOK_TEST_PG_URL"\n',
            encoding="utf-8",
        )
        patch.setenv("VEERUNBOOK_CONFIG", str(config))
        patch.setenv("VEERUNBOOK_TEST_PG_URL", pg_cluster.app_dsn)
        patch.delenv("VEERUNBOOK_DEMO_URL", raising=False)
        run = _run(folder / "archive", "veefore-pg", "INC-DB-PG")
    run.events.append({"event": "test", "blocker_pid": blocker_pid})
    return run


def _blocker_pid(run: Run) -> int:
    return int(next(e for e in run.events if e["event"] == "test")["blocker_pid"])


def test_postgres_run_completes(postgres_run: Run) -> None:
    # Waits shorter than 60 s and transactions idle for less than 5 min only warn.
    assert postgres_run.outcome.status == "ok", postgres_run.outcome.reason
    assert postgres_run.note("diagnosis")[0].startswith("lock blocking: 2 sessions")
    assert postgres_run.check("direct connection")["status"] == "pass"
    assert postgres_run.check("database URL")["evidence"]["state"] == "postgresql"


def test_postgres_root_blocker(postgres_run: Run) -> None:
    check = postgres_run.check("postgres lock blocking")
    roots = check["evidence"]["roots"]
    assert roots[0]["pid"] == _blocker_pid(postgres_run)
    assert roots[0]["application_name"] == "veefore-admin"
    assert roots[0]["blocks_total"] == 2
    assert check["evidence"]["waiting"] == 2


def test_postgres_idle_counts(postgres_run: Run) -> None:
    summary = postgres_run.note("postgres_sessions")
    by_application = summary["idle_in_transaction_by_application"]
    # Three veefore-api sessions read in a transaction; the blocker updated a row.
    assert by_application["veefore-api"] == 3
    assert by_application["veefore-admin"] == 1
    assert summary["lock_waiters"] == 2
    assert summary["root_blockers"][0]["pid"] == _blocker_pid(postgres_run)


def test_postgres_terminate_recommended(postgres_run: Run) -> None:
    pid = _blocker_pid(postgres_run)
    actions = _actions(postgres_run)
    assert any(f"pg_terminate_backend({pid})" in action for action in actions)


def test_postgres_migrations_read(postgres_run: Run) -> None:
    check = postgres_run.check("migrations")
    assert check["status"] == "skip"
    assert check["summary"].startswith("no migration table of drizzle")


def test_password_not_in_archive(pg_cluster: Any, postgres_run: Run) -> None:
    archive = postgres_run.outcome.notebook.parents[2]
    secret = pg_cluster.app_password.encode()
    leaked = [
        str(path)
        for path in archive.rglob("*")
        if path.is_file() and secret in path.read_bytes()
    ]
    assert leaked == []


def test_password_not_in_outputs(pg_cluster: Any, postgres_run: Run) -> None:
    assert pg_cluster.app_password not in postgres_run.outputs
    assert "veefore_app:***@127.0.0.1" in postgres_run.outputs
