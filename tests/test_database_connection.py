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
import re
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
# A number glued to a percent sign ("100%"): the messages put a space before it.
GLUED_PERCENT = re.compile(r"\d%")


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


def _ranks(run: Run) -> list[int | None]:
    return [option["rank"] for option in _recovery(run)]


def _texts(run: Run) -> list[str]:
    """Return every check summary, note text and recovery evidence of the run."""
    texts = [str(e.get("summary") or e.get("text") or "") for e in run.events]
    texts += [option["evidence"] for option in _recovery(run)]
    return texts


def _plot_outputs(notebook: Path) -> list[dict[str, Any]]:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "".join(c["source"]) == "d.plot_pool()")
    return list(cell["outputs"])


def test_pool_exhaustion_completes(demo_runs: dict[str, Run]) -> None:
    run = demo_runs["pool-exhaustion"]
    assert run.outcome.status == "findings", run.outcome.reason
    assert run.outcome.exit_code == 1


def test_pool_exhaustion_diagnosis(demo_runs: dict[str, Run]) -> None:
    diagnosis = demo_runs["pool-exhaustion"].note("diagnosis")
    assert isinstance(diagnosis, str)
    assert "\n" not in diagnosis
    assert diagnosis.startswith("connection pool exhausted: pool 100 % in use")


def test_pool_exhaustion_pool_check(demo_runs: dict[str, Run]) -> None:
    # The scenario keeps all 20 of 20 connections in use, 10 or more clients waiting.
    check = demo_runs["pool-exhaustion"].check("connection pool")
    assert check["status"] == "fail"
    assert check["observed"] == 100.0
    assert check["evidence"]["max_waiting"] >= 10
    assert check["evidence"]["last"]["active"] == 20.0
    assert check["evidence"]["last"]["max"] == 20.0
    assert check["summary"].startswith("up to 100 % in use (20 of 20 at the end)")


def test_pool_exhaustion_restart(demo_runs: dict[str, Run]) -> None:
    run = demo_runs["pool-exhaustion"]
    restart = _recovery(run)[0]
    assert _ranks(run) == [1, None, None]
    assert restart["action"].startswith("Restart the application")
    assert "pool 100 % in use with up to" in restart["evidence"]
    assert "client pool timeouts in the error logs" in restart["evidence"]
    assert "the database accepts direct connections" in restart["evidence"]
    assert restart["confidence"] == "high"


def test_pool_exhaustion_log_errors(demo_runs: dict[str, Run]) -> None:
    check = demo_runs["pool-exhaustion"].check("database errors in logs")
    by_kind = check["evidence"]["by_kind"]
    assert list(by_kind) == ["client pool timeout"]
    assert by_kind["client pool timeout"] > 0
    assert (
        "error entries of the last 15 min (client pool timeout: " in (check["summary"])
    )


def test_pool_plot_is_drawn(demo_runs: dict[str, Run]) -> None:
    outputs = _plot_outputs(demo_runs["pool-exhaustion"].outcome.notebook)
    assert [o for o in outputs if "image/png" in o.get("data", {})] != []


def test_pool_table_has_clock_time(demo_runs: dict[str, Run]) -> None:
    assert "time (UTC)" in demo_runs["pool-exhaustion"].outputs
    assert "in use (%)" in demo_runs["pool-exhaustion"].outputs


def test_outage_endpoint_fails(demo_runs: dict[str, Run]) -> None:
    check = demo_runs["db-outage"].check("database endpoint")
    assert check["status"] == "fail"
    assert check["evidence"]["http_status"] == 503


def test_outage_integrity_is_skipped(demo_runs: dict[str, Run]) -> None:
    # The endpoint cannot check integrity while its database is unreachable.
    check = demo_runs["db-outage"].check("data integrity (endpoint)")
    assert check["status"] == "skip"
    assert check["summary"] == (
        "the database endpoint did not check integrity (skip): database unreachable"
    )


def test_outage_diagnosis(demo_runs: dict[str, Run]) -> None:
    diagnosis = demo_runs["db-outage"].note("diagnosis")
    # The demo's direct check opens its SQLite file, not the server at
    # 192.0.2.10:5432 that the application names, so it shows nothing about it.
    assert diagnosis == (
        "database unreachable from the application: connect ECONNREFUSED "
        "192.0.2.10:5432; the direct check opened a SQLite file while the "
        "application names a network database, so it says nothing about that "
        "server: check it and the application's DATABASE_URL"
    )


def test_outage_ranks_server_first(demo_runs: dict[str, Run]) -> None:
    run = demo_runs["db-outage"]
    options = _recovery(run)
    assert _ranks(run) == [1, None, None, None]
    assert options[0]["action"].startswith("Bring the database server")
    assert options[0]["source"] == "outage"
    assert options[0]["evidence"] == (
        "the application: connect ECONNREFUSED 192.0.2.10:5432"
    )
    assert options[1]["evidence"].startswith(
        "no evidence: the pool was exhausted in none of 2 scrapes (up to 0 % in use)"
    )


def test_outage_errors_are_refused(demo_runs: dict[str, Run]) -> None:
    check = demo_runs["db-outage"].check("database errors in logs")
    assert list(check["evidence"]["by_kind"]) == ["connection refused"]


def test_corruption_integrity_fails(demo_runs: dict[str, Run]) -> None:
    check = demo_runs["data-corruption"].check("data integrity (endpoint)")
    assert check["status"] == "fail"
    assert check["summary"] == "12 payments rows fail validation (checksum mismatch)"


def test_corruption_recommends_rollback(demo_runs: dict[str, Run]) -> None:
    run = demo_runs["data-corruption"]
    options = _recovery(run)
    assert _ranks(run) == [1, None, None]
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
    assert run.note("diagnosis") == "no database problem found"
    assert _ranks(run) == [None, None, None]


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


def test_percent_signs_are_spaced(demo_runs: dict[str, Run]) -> None:
    for scenario, run in demo_runs.items():
        glued = [text for text in _texts(run) if GLUED_PERCENT.search(text)]
        assert glued == [], scenario


def test_ranks_count_from_one(demo_runs: dict[str, Run]) -> None:
    for scenario, run in demo_runs.items():
        ranked = [rank for rank in _ranks(run) if rank is not None]
        assert ranked == list(range(1, len(ranked) + 1)), scenario
        assert _ranks(run)[: len(ranked)] == ranked, scenario


def test_nothing_executed(demo_runs: dict[str, Run]) -> None:
    for run in demo_runs.values():
        assert not [e for e in run.events if e["event"] == "action"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def down_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    archive = tmp_path_factory.mktemp("down")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DATABASE_URL", raising=False)
        patch.delenv("VEERUNBOOK_CONFIG", raising=False)
        return _run(archive, f"http://127.0.0.1:{_free_port()}", "INC-DB-DOWN")


def _base_url(run: Run) -> str:
    started = next(e for e in run.events if e["event"] == "run.started")
    return str(started["target"])


def test_down_target_completes(down_run: Run) -> None:
    assert down_run.outcome.exit_code == 1, down_run.outcome.reason
    assert down_run.outcome.status == "findings"


def test_down_target_is_one_error(down_run: Run) -> None:
    errors = [
        e for e in down_run.events if e["event"] == "check" and e["status"] == "error"
    ]
    assert [e["name"] for e in errors] == ["target"]
    assert errors[0]["summary"] == (
        f"target unreachable: connection refused at {_base_url(down_run)} (every "
        "request failed); check that the service is running, then run triage"
    )
    assert not [e for e in down_run.events if e.get("status") == "fail"]


def test_down_target_diagnosis(down_run: Run) -> None:
    assert down_run.note("diagnosis") == (
        f"target unreachable: connection refused at {_base_url(down_run)} (every "
        "request failed); check that the service is running, then run triage"
    )


def test_down_target_skips_its_steps(down_run: Run) -> None:
    reason = f"target unreachable: connection refused at {_base_url(down_run)}"
    pool = down_run.check("connection pool")
    logs = down_run.check("database errors in logs")
    assert pool["status"] == "skip"
    assert pool["summary"] == f"not sampled: {reason}"
    assert logs["status"] == "skip"
    assert logs["summary"] == f"error logs not read: {reason}"


def test_down_target_fails_fast(down_run: Run) -> None:
    # One retry, 3 s after the first scrape, and no sampling window.
    assert "retrying once in 3 s" in down_run.outputs
    assert "sampling metrics: scrape" not in down_run.outputs


def test_down_target_unset_url_is_skip(down_run: Run) -> None:
    check = down_run.check("database URL")
    assert check["status"] == "skip"
    assert check["summary"] == (
        "$DATABASE_URL is not set; set DATABASE_URL or the target's "
        "database_url_env to check the database directly"
    )


def test_down_target_ranks_nothing(down_run: Run) -> None:
    options = _recovery(down_run)
    assert _ranks(down_run) == [None, None, None, None]
    assert options[0]["action"] == (
        "Restart the application's service if triage confirms it is down"
    )
    assert options[0]["source"] == "service"


def test_named_url_variable_missing_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "veerunbook.toml"
    config.write_text(
        "[targets.staging]\n"
        f'base_url = "http://127.0.0.1:{_free_port()}"\n'
        'database_url_env = "VEERUNBOOK_TEST_MISSING_DB"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("VEERUNBOOK_CONFIG", str(config))
    monkeypatch.delenv("VEERUNBOOK_TEST_MISSING_DB", raising=False)
    run = _run(tmp_path / "archive", "staging", "INC-DB-NAMED")
    check = run.check("database URL")
    assert check["status"] == "warn"
    assert check["summary"] == (
        "$VEERUNBOOK_TEST_MISSING_DB is not set, although the target's "
        "database_url_env names it; set it to check the database directly"
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
    assert postgres_run.note("diagnosis").startswith("lock blocking: 2 sessions")
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
