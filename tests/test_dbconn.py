"""Tests of the database-connection procedure's library: pool window, log errors,
recovery options and diagnosis, on inputs built here or copied from real cases.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from httpfixture import RawServer, replay, silent

from veerunbook import metrics
from veerunbook.db_migrations import Migrations
from veerunbook.dbcheck import read_database_url
from veerunbook.dbconn import DatabaseConnection
from veerunbook.dbconn_advice import (
    DbFacts,
    diagnose,
    recovery_options,
    unreachable_from_application,
)
from veerunbook.dbconn_logs import DatabaseErrors, classify_entries
from veerunbook.dbconn_pg import analyse
from veerunbook.dbconn_pool import check_pool, draw_pool, pool_window
from veerunbook.journal import Journal
from veerunbook.metrics_series import Sample
from veerunbook.pg_activity import PgSettings, Snapshot, backends_from_rows
from veerunbook.record import start_run
from veerunbook.redact import Redactor
from veerunbook.session import Session, begin
from veerunbook.sqlite_check import SqliteReport

CASE = Path(__file__).parent / "fixtures" / "pg-connection-exhaustion"
HEALTH_CASE = Path(__file__).parent / "fixtures" / "health-misbehaving-responses"
PROCEDURE = "database-connection"
START = datetime(2026, 12, 4, 14, 50, tzinfo=UTC)


def _sample(second: float, active: float | None, waiting: float = 0.0) -> Sample:
    at = START + timedelta(seconds=second)
    if active is None:
        return Sample(at, None, "metrics scrape ERROR HTTP - refused")
    text = (
        "# TYPE database_connections gauge\n"
        f'database_connections{{state="active"}} {active}\n'
        f'database_connections{{state="idle"}} {20 - active}\n'
        f'database_connections{{state="waiting"}} {waiting}\n'
        "# TYPE database_connections_max gauge\n"
        "database_connections_max 20\n"
    )
    return Sample(at, metrics.parse_exposition(text), None)


def test_pool_window_figures() -> None:
    # 20/20 = 100 %, 20/20 = 100 %, 17/20 = 85 %; 10 and 12 waiting, then none.
    pool = pool_window([_sample(0, 20, 10), _sample(5, 20, 12), _sample(10, 17)])
    assert pool.seconds == [0.0, 5.0, 10.0]
    assert pool.max_utilisation == 1.0
    assert pool.max_waiting == 12.0
    assert pool.exhausted_samples == 2
    assert pool.high_samples == 3
    assert [row["utilisation %"] for row in pool.rows()] == [100.0, 100.0, 85.0]


def test_pool_window_keeps_failures() -> None:
    pool = pool_window([_sample(0, None), _sample(5, 4)])
    assert pool.failed == ["metrics scrape ERROR HTTP - refused"]
    assert pool.seconds == [5.0]
    assert pool.max_utilisation == 0.2


@pytest.fixture
def run(tmp_path: Path) -> Any:
    context = start_run(
        "database-connection", archive=str(tmp_path), redactor=Redactor()
    )
    yield context
    context.finish()


def _last_check(run: Any) -> dict[str, Any]:
    events = Journal(run.incident_dir).events()
    return [event for event in events if event["event"] == "check"][-1]


def test_pool_check_fails_when_always_exhausted(run: Any) -> None:
    check_pool(run, pool_window([_sample(0, 20, 10), _sample(5, 20, 11)]))
    check = _last_check(run)
    assert check["status"] == "fail"
    assert check["observed"] == 100.0
    assert check["evidence"]["max_waiting"] == 11.0
    assert check["evidence"]["exhausted"] == 2


def test_pool_check_warns_when_exhausted_once(run: Any) -> None:
    check_pool(run, pool_window([_sample(0, 20, 10), _sample(5, 17)]))
    check = _last_check(run)
    assert check["status"] == "warn"
    assert check["summary"] == (
        "up to 100% in use (17 of 20 at the end), up to 10 requests waiting; above "
        "80 % in 2 and exhausted in 1 of 2 scrapes"
    )


def test_pool_check_passes_below_80_percent(run: Any) -> None:
    # 16/20 = 80 %, which is not above the 80 % threshold.
    check_pool(run, pool_window([_sample(0, 4), _sample(5, 16)]))
    check = _last_check(run)
    assert check["status"] == "pass"
    assert check["observed"] == 80.0


def test_pool_check_errors_when_every_scrape_failed(run: Any) -> None:
    check_pool(run, pool_window([_sample(0, None), _sample(5, None)]))
    check = _last_check(run)
    assert check["status"] == "error"
    assert "refused" in check["summary"]


def test_pool_plot_has_threshold_line() -> None:
    figure = draw_pool(pool_window([_sample(0, 20, 10), _sample(5, 20, 12)]))
    axes = figure.axes[0]
    assert axes.get_ylabel() == "pool utilisation (%)"
    assert axes.get_xlabel() == "time since the first scrape (s)"
    labels = axes.get_legend_handles_labels()[1]
    assert "80 % (information alert)" in labels


def _app_log() -> list[dict[str, Any]]:
    lines = (CASE / "app-errors.log").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_case_app_log_kinds() -> None:
    errors = classify_entries(_app_log())
    kinds = [error.error.kind for error in errors]
    # Five wordings of SQLSTATE 53300, one pg-pool checkout timeout, one PgBouncer.
    assert kinds.count("connection limit") == 5
    assert kinds.count("client pool timeout") == 1
    assert kinds.count("pooler limit") == 1


def test_case_app_log_sqlstates() -> None:
    found = DatabaseErrors("1h", entries=7, errors=classify_entries(_app_log()))
    assert found.sqlstates == {"53300": 5, "08P01": 1}


def test_case_app_log_peak_per_minute() -> None:
    # The seven entries are 67 s or more apart, so no minute contains two of them.
    found = DatabaseErrors("1h", entries=7, errors=classify_entries(_app_log()))
    assert found.peak_per_minute == 1


def _refused(second: float) -> dict[str, Any]:
    moment = START + timedelta(seconds=second)
    return {
        "level": 50,
        "time": int(moment.timestamp() * 1000),
        "msg": "request errored",
        "err": {"type": "Error", "message": "connect ECONNREFUSED 192.0.2.10:5432"},
    }


def test_peak_counts_the_busiest_minute() -> None:
    # 12 failures 4 s apart span 44 s; 3 more come 5 minutes later.
    entries = [_refused(4 * n) for n in range(12)]
    entries += [_refused(300 + n) for n in range(3)]
    found = DatabaseErrors("15m", entries=15, errors=classify_entries(entries))
    assert found.count("connection refused") == 15
    assert found.peak_per_minute == 12


def test_node_error_code_is_not_a_sqlstate() -> None:
    entry = {"level": 50, "msg": "failed", "err": {"message": "x", "code": "EPIPE"}}
    assert classify_entries([entry]) == []


def test_entries_without_errors_are_left_out() -> None:
    assert classify_entries([{"level": 50, "msg": "payment declined"}]) == []


def _pool_facts(**changes: Any) -> DbFacts:
    pool = pool_window([_sample(0, 20, 10), _sample(5, 20, 12)])
    sqlite = SqliteReport("/srv/app.db", ok=True, seconds=0.001, integrity=["ok"])
    sqlite.integrity_ok = True
    facts = DbFacts(pool=pool, sqlite=sqlite)
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


def test_restart_when_pool_exhausted() -> None:
    options = recovery_options(_pool_facts())
    assert len(options) == 1
    assert options[0].action.startswith("Restart the application")
    assert options[0].evidence == (
        "pool 100% in use with up to 12 requests waiting (2 of 2 scrapes); "
        "the database accepts direct connections"
    )
    assert options[0].confidence == "medium"


def test_restart_with_two_sources_is_high() -> None:
    errors = DatabaseErrors("15m", errors=classify_entries(_app_log()))
    options = recovery_options(_pool_facts(errors=errors))
    assert options[0].confidence == "high"
    assert "1 client pool timeouts in the error logs" in options[0].evidence


def test_no_restart_when_database_is_down() -> None:
    sqlite = SqliteReport("/srv/app.db", ok=False, error="file not found")
    assert recovery_options(_pool_facts(sqlite=sqlite)) == []


def test_scale_on_connection_limit_errors() -> None:
    errors = DatabaseErrors("15m", errors=classify_entries(_app_log()))
    options = recovery_options(DbFacts(errors=errors))
    assert [option.action.split(":")[0] for option in options] == ["Scale the database"]
    assert options[0].evidence == "5 errors with SQLSTATE 53300 in the error logs"


def test_rollback_on_integrity_failure() -> None:
    migrations = Migrations(
        "migrations table",
        "migrations",
        applied=10,
        latest="0010_create_security_tables",
        latest_applied_at="2026-12-04T18:39:51.840Z",
    )
    facts = DbFacts(
        integrity_problem="12 payments rows fail validation (checksum mismatch)",
        migrations=[migrations],
    )
    options = recovery_options(facts)
    assert options[0].action.startswith(
        "Roll back the recent migration (0010_create_security_tables, applied "
        "2026-12-04T18:39:51.840Z)"
    )
    assert options[0].evidence == (
        "integrity check of the endpoint: 12 payments rows fail validation "
        "(checksum mismatch)"
    )


def test_rollback_on_dirty_migration() -> None:
    dirty = Migrations("golang-migrate", "schema_migrations", failed=("v7 is dirty",))
    options = recovery_options(DbFacts(migrations=[dirty]))
    assert options[0].evidence == "golang-migrate: v7 is dirty"


def _case_snapshot() -> Snapshot:
    def read(name: str) -> list[dict[str, str]]:
        with (CASE / name).open(newline="") as stream:
            return list(csv.DictReader(stream))

    settings = PgSettings.from_rows(read("settings.csv"))
    backends = backends_from_rows(
        read("pg_stat_activity.csv"), superuser_roles={"postgres"}
    )
    return Snapshot(START, settings, tuple(backends), own_pid=43290)


def test_case_snapshot_options() -> None:
    facts = DbFacts(activity=analyse(_case_snapshot()))
    options = recovery_options(facts)
    # 98 client backends of max_connections 100; 100 - 3 reserved = 97 usable.
    assert options[0].evidence == (
        "98 client backends hold all 97 slots open to roles without SUPERUSER "
        "(max_connections 100)"
    )
    assert "pg_terminate_backend(41109)" in options[1].action
    assert options[1].source == "postgres"
    # 14 sessions wait on pid 41109; 41 of veefore-api's 46 idle sessions are older
    # than 5 min, plus psql's one: 42 of 47.
    assert options[1].evidence.startswith("14 sessions wait for locks, longest 13 min")
    assert options[3].action.startswith("Fix the connection release path of veefore")
    assert options[3].evidence.startswith(
        "47 sessions idle in transaction, 42 for more than 5 min (veefore-api 41 of 46"
    )
    assert options[4].evidence.startswith("15 queries running for 30 s or more")


def test_case_snapshot_diagnosis() -> None:
    problems = diagnose(DbFacts(activity=analyse(_case_snapshot())))
    assert problems[0].startswith("database connection limit reached: 98 client")
    assert problems[1].startswith("lock blocking: 14 sessions wait for locks")


def test_diagnosis_of_an_outage() -> None:
    facts = DbFacts(
        endpoint_error="connect ECONNREFUSED 192.0.2.10:5432",
        errors=DatabaseErrors("15m", errors=classify_entries([_refused(0)])),
        sqlite=SqliteReport("/srv/app.db", ok=True),
    )
    problems = diagnose(facts)
    assert problems[0].startswith(
        "database unreachable from the application: 1 refused connections in the "
        "error logs (connect ECONNREFUSED 192.0.2.10:5432); the database accepts "
        "direct connections from here"
    )
    assert recovery_options(facts) == []


def test_diagnosis_of_a_missing_url() -> None:
    facts = DbFacts(url=read_database_url("DATABASE_URL", {}))
    assert diagnose(facts) == [
        "database URL: $DATABASE_URL is not set; the application cannot find its "
        "database"
    ]


def test_healthy_facts_have_no_problem() -> None:
    pool = pool_window([_sample(0, 4), _sample(5, 5)])
    facts = DbFacts(pool=pool, sqlite=SqliteReport("/srv/app.db", ok=True))
    assert diagnose(facts) == []
    assert recovery_options(facts) == []


@pytest.fixture
def session_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], Session]]:
    """Open sessions on a configured target at ``base_url`` with a 1 s read limit."""
    opened: list[Session] = []

    def open_session(base_url: str) -> Session:
        config = tmp_path / "veerunbook.toml"
        config.write_text(
            f'[targets.app]\nbase_url = "{base_url}"\n'
            "[targets.app.timeouts]\nread_seconds = 1.0\n",
            encoding="utf-8",
        )
        monkeypatch.setenv("VEERUNBOOK_CONFIG", str(config))
        monkeypatch.delenv("VEERUNBOOK_RUN_ID", raising=False)
        session = begin(PROCEDURE, target="app", archive=str(tmp_path / "archive"))
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        session.close()


def test_endpoint_html_is_not_healthy(session_for: Callable[[str], Session]) -> None:
    raw = (HEALTH_CASE / "GET_healthz_200-html-maintenance.http").read_bytes()
    with RawServer(replay(raw)) as server:
        steps = DatabaseConnection(session_for(server.url("")))
        steps.probe_database_endpoint()
    endpoint = steps.facts.endpoint
    assert endpoint is not None
    assert endpoint.status == "fail"
    assert endpoint.http_status == 200
    assert steps.facts.endpoint_pool == {}
    assert unreachable_from_application(steps.facts) is None


def test_endpoint_timeout_is_recorded(session_for: Callable[[str], Session]) -> None:
    with RawServer(silent()) as server:
        steps = DatabaseConnection(session_for(server.url("")))
        steps.probe_database_endpoint()
    endpoint = steps.facts.endpoint
    assert endpoint is not None
    assert endpoint.status == "error"
    assert endpoint.error_kind == "timeout"
    assert diagnose(steps.facts)[0].startswith(
        "the application does not answer at its database endpoint (No response from"
    )
