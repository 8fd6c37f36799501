"""Tests of the database-connection procedure's library: pool window, plot, log
errors, URL check, recovery options and diagnosis, on inputs built here or copied
from real cases.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from httpfixture import RawServer, replay, response_bytes, silent

from veerunbook import metrics
from veerunbook.db_migrations import Migrations
from veerunbook.dbcheck import parse_database_url, read_database_url
from veerunbook.dbconn import DatabaseConnection
from veerunbook.dbconn_advice import (
    DbFacts,
    diagnose,
    diagnosis_line,
    unreachable_from_application,
)
from veerunbook.dbconn_logs import DatabaseErrors, classify_entries, span
from veerunbook.dbconn_pg import analyse
from veerunbook.dbconn_plot import draw_pool
from veerunbook.dbconn_pool import check_pool, pool_window
from veerunbook.dbconn_recovery import RecoveryOption, recovery_options
from veerunbook.dbconn_url import url_status, url_summary
from veerunbook.journal import Journal
from veerunbook.metrics_series import Sample
from veerunbook.pg_snapshot import PgSettings, Snapshot, backends_from_rows
from veerunbook.record import start_run
from veerunbook.redact import Redactor
from veerunbook.session import Session, begin
from veerunbook.sqlite_check import SqliteReport

CASE = Path(__file__).parent / "fixtures" / "pg-connection-exhaustion"
HEALTH_CASE = Path(__file__).parent / "fixtures" / "health-misbehaving-responses"
PROCEDURE = "database-connection"
START = datetime(2026, 12, 4, 14, 50, tzinfo=UTC)
# A number glued to a percent sign ("100%"): the messages put a space before it.
GLUED_PERCENT = re.compile(r"\d%")


def _sample(second: float, active: float | None, waiting: float = 0.0) -> Sample:
    at = START + timedelta(seconds=second)
    if active is None:
        return Sample(at, None, "127.0.0.1 refused the connection.")
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
    assert pool.times == [START + timedelta(seconds=s) for s in (0, 5, 10)]
    assert pool.max_utilisation == 1.0
    assert pool.max_waiting == 12.0
    assert pool.exhausted_samples == 2
    assert pool.high_samples == 3
    assert [row["in use (%)"] for row in pool.rows()] == [100.0, 100.0, 85.0]


def test_pool_rows_show_utc_clock_time() -> None:
    pool = pool_window([_sample(0, 4), _sample(65, 5)])
    assert [row["time (UTC)"] for row in pool.rows()] == ["14:50:00", "14:51:05"]


def test_pool_window_keeps_failures() -> None:
    pool = pool_window([_sample(0, None), _sample(5, 4)])
    assert pool.failed == ["127.0.0.1 refused the connection."]
    assert pool.scrapes == 2
    assert pool.times == [START + timedelta(seconds=5)]
    assert pool.max_utilisation == 0.2


@pytest.fixture
def run(tmp_path: Path) -> Any:
    context = start_run(
        "database-connection", archive=str(tmp_path), redactor=Redactor()
    )
    yield context
    context.finish()


def _checks(run: Any) -> list[dict[str, Any]]:
    events = Journal(run.incident_dir).events()
    return [event for event in events if event["event"] == "check"]


def _last_check(run: Any) -> dict[str, Any]:
    return _checks(run)[-1]


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
        "up to 100 % in use (17 of 20 at the end), up to 10 requests waiting; above "
        "80 % in 2 and exhausted in 1 of 2 scrapes"
    )
    assert check["expected"] == (
        "at most 80 % (information alert line: 80 % for 15 min)"
    )


def test_pool_check_counts_in_singular(run: Any) -> None:
    # One scrape, 17/20 = 85 %, one request waiting.
    check_pool(run, pool_window([_sample(0, 17, 1)]))
    assert _last_check(run)["summary"] == (
        "up to 85 % in use (17 of 20 at the end), up to 1 request waiting; above "
        "80 % in 1 and exhausted in 0 of 1 scrape"
    )


def test_pool_check_passes_below_80_percent(run: Any) -> None:
    # 16/20 = 80 %, which is not above the 80 % threshold.
    check_pool(run, pool_window([_sample(0, 4), _sample(5, 16)]))
    check = _last_check(run)
    assert check["status"] == "pass"
    assert check["observed"] == 80.0


def test_pool_check_all_scrapes_failed(run: Any) -> None:
    check_pool(run, pool_window([_sample(s, None) for s in (0, 5, 10)]))
    checks = _checks(run)
    assert len(checks) == 1
    assert checks[0]["status"] == "error"
    assert checks[0]["summary"] == (
        "metrics scrapes: 0 of 3 succeeded: 127.0.0.1 refused the connection."
    )


def test_pool_check_names_failed_scrapes(run: Any) -> None:
    check_pool(run, pool_window([_sample(0, None), _sample(5, 4)]))
    summary = _last_check(run)["summary"]
    assert summary.endswith("; 1 scrape failed")


def test_pool_plot_axes() -> None:
    figure = draw_pool(pool_window([_sample(0, 20, 10), _sample(5, 20, 12)]))
    utilisation, waiting = figure.axes
    assert utilisation.get_ylabel() == "pool in use (%)"
    assert waiting.get_ylabel() == "requests waiting"
    assert waiting.get_xlabel() == "time (UTC)"
    assert utilisation.get_title() == "database connection pool over the window"


def test_pool_plot_has_alert_line() -> None:
    figure = draw_pool(pool_window([_sample(0, 20, 10), _sample(5, 20, 12)]))
    utilisation = figure.axes[0]
    labels = utilisation.get_legend_handles_labels()[1]
    assert "80 % for 15 min: information alert line" in labels
    lines = [line for line in utilisation.get_lines() if line.get_linestyle() == "--"]
    assert [list(line.get_ydata()) for line in lines] == [[80.0, 80.0]]


def test_pool_plot_time_axis_is_utc_clock() -> None:
    figure = draw_pool(pool_window([_sample(0, 20, 10), _sample(65, 20, 12)]))
    waiting = figure.axes[1]
    formatter = waiting.xaxis.get_major_formatter()
    # 2026-12-04 14:51:05 UTC in matplotlib's date numbers (days since 1970).
    moment = (START + timedelta(seconds=65) - datetime(1970, 1, 1, tzinfo=UTC)) / (
        timedelta(days=1)
    )
    assert formatter(moment) == "14:51:05"


def test_pool_plot_legends_sit_outside() -> None:
    figure = draw_pool(pool_window([_sample(0, 20, 10), _sample(5, 20, 12)]))
    figure.canvas.draw()
    for axes in figure.axes:
        legend = axes.get_legend().get_window_extent()
        assert legend.x0 >= axes.get_window_extent().x1


def test_pool_plot_without_gauges() -> None:
    assert draw_pool(pool_window([_sample(0, None)])) is None


def test_pool_plot_waiting_axis_starts_at_0() -> None:
    figure = draw_pool(pool_window([_sample(0, 4), _sample(5, 5)]))
    assert figure.axes[1].get_ylim() == (0.0, 1.0)


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


def test_log_span_in_words() -> None:
    assert span("15m") == "15 min"
    assert span("2h") == "2 h"
    assert span("soon") == "soon"


def test_empty_log_table_names_the_span() -> None:
    table = DatabaseErrors("15m").table()
    assert repr(table) == "no database errors in the last 15 min"


def test_missing_default_url_is_a_skip() -> None:
    url = read_database_url("DATABASE_URL", {})
    assert url_status(url) == "skip"
    assert url_summary(url) == (
        "$DATABASE_URL is not set; set DATABASE_URL or the target's "
        "database_url_env to check the database directly"
    )


def test_missing_named_url_warns() -> None:
    url = read_database_url("STAGING_DB", {})
    assert url_status(url) == "warn"
    assert url_summary(url) == (
        "$STAGING_DB is not set, although the target's database_url_env names it; "
        "set it to check the database directly"
    )


def test_url_statuses() -> None:
    assert url_status(parse_database_url("sqlite:////srv/app.db", "DB")) == "pass"
    assert url_status(parse_database_url("ftp://files.example.com/db", "DB")) == (
        "fail"
    )
    assert url_status(parse_database_url("mysql://app@db/veefore", "DB")) == "warn"
    assert url_status(parse_database_url("sqlite:///:memory:", "DB")) == "skip"


def _pool_facts(**changes: Any) -> DbFacts:
    pool = pool_window([_sample(0, 20, 10), _sample(5, 20, 12)])
    sqlite = SqliteReport("/srv/app.db", ok=True, seconds=0.001, integrity=["ok"])
    sqlite.integrity_ok = True
    facts = DbFacts(pool=pool, sqlite=sqlite)
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


def _ranks(options: list[RecoveryOption]) -> list[int | None]:
    return [option.rank for option in options]


def test_restart_when_pool_exhausted() -> None:
    options = recovery_options(_pool_facts())
    assert _ranks(options) == [1, None, None]
    assert options[0].action.startswith("Restart the application")
    assert options[0].evidence == (
        "pool 100 % in use with up to 12 requests waiting (2 of 2 scrapes); "
        "the database accepts direct connections"
    )
    assert options[0].confidence == "medium"


def test_unranked_options_say_what_is_missing() -> None:
    options = recovery_options(_pool_facts())
    assert options[1].action.startswith("Scale the database")
    assert options[1].evidence == (
        "no evidence: the error logs were not read; the server's sessions were not read"
    )
    assert options[1].confidence is None
    assert options[2].action.startswith("Roll back the recent migration: follow")
    assert options[2].evidence == "no evidence: SQLite quick_check passed"


def test_restart_with_two_sources_is_high() -> None:
    errors = DatabaseErrors("15m", errors=classify_entries(_app_log()))
    options = recovery_options(_pool_facts(errors=errors))
    assert _ranks(options) == [1, 2, None]
    assert options[0].confidence == "high"
    assert options[0].evidence.startswith(
        "pool 100 % in use with up to 12 requests waiting (2 of 2 scrapes); "
        "1 client pool timeout in the error logs; "
    )


def test_no_restart_rank_when_database_is_down() -> None:
    sqlite = SqliteReport("/srv/app.db", ok=False, error="file not found")
    options = recovery_options(_pool_facts(sqlite=sqlite))
    assert _ranks(options) == [None, None, None]
    assert options[0].evidence == (
        "no evidence that a restart frees the pool: pool 100 % in use with up to 12 "
        "requests waiting (2 of 2 scrapes), but the database does not accept "
        "connections either"
    )


def test_scale_on_connection_limit_errors() -> None:
    errors = DatabaseErrors("15m", errors=classify_entries(_app_log()))
    options = recovery_options(DbFacts(errors=errors))
    assert _ranks(options) == [1, None, None]
    assert options[0].action.startswith("Scale the database")
    assert options[0].evidence == "5 errors with SQLSTATE 53300 in the error logs"
    # The client pool timeout alone does not show that the database accepts.
    assert options[1].evidence == (
        "no evidence that a restart frees the pool: 1 client pool timeout in the "
        "error logs, but nothing shows that the database accepts connections"
    )


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
    assert options[0].rank == 1
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
    assert options[0].rank == 1
    assert options[0].evidence == "golang-migrate: v7 is dirty"


def test_unreachable_target_ranks_nothing() -> None:
    facts = DbFacts(unreachable="connection refused", base_url="http://127.0.0.1:9")
    options = recovery_options(facts)
    assert _ranks(options) == [None, None, None, None]
    assert options[0].action == (
        "Restart the application's service if triage confirms it is down"
    )
    assert options[0].evidence == (
        "the target did not respond (connection refused at "
        "http://127.0.0.1:9), so the pool and the logs could not be read; triage "
        "checks whether the process is down"
    )
    assert options[1].evidence == (
        "no evidence: the pool could not be read (target unreachable)"
    )


def test_unreachable_target_ranks_no_session_remedy() -> None:
    facts = DbFacts(
        unreachable="connection refused",
        base_url="http://127.0.0.1:9",
        activity=analyse(_case_snapshot()),
    )
    assert {option.rank for option in recovery_options(facts)} == {None}


def test_options_are_json_values() -> None:
    option = recovery_options(_pool_facts())[0].to_dict()
    assert sorted(option) == ["action", "confidence", "evidence", "rank", "source"]
    assert option["rank"] == 1
    assert json.loads(json.dumps(option)) == option


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
    assert _ranks(options) == [1, 2, 3, 4, 5, None, None]
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
    assert options[5].action.startswith("Restart the application")


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
    assert diagnosis_line(facts) == (
        "database unreachable from the application: 1 refused connection in the "
        "error logs (connect ECONNREFUSED 192.0.2.10:5432); the database accepts "
        "direct connections from here, so check the application's network path to "
        "it and its database URL"
    )
    assert {option.rank for option in recovery_options(facts)} == {None}


def test_diagnosis_of_an_unreachable_target() -> None:
    facts = DbFacts(
        unreachable="connection refused",
        base_url="http://127.0.0.1:9",
        url=read_database_url("DATABASE_URL", {}),
    )
    assert diagnosis_line(facts) == (
        "target unreachable: connection refused at http://127.0.0.1:9 (every request "
        "failed); check that the service is running, then run triage"
    )


def test_unreachable_target_keeps_direct_findings() -> None:
    facts = DbFacts(
        unreachable="connection refused",
        base_url="http://127.0.0.1:9",
        sqlite=SqliteReport("/srv/app.db", ok=False, error="file not found"),
    )
    line = diagnosis_line(facts)
    assert line.startswith("target unreachable: connection refused at ")
    assert line.endswith(
        "then run triage; also the database rejects direct connections: file not found"
    )


def test_missing_url_is_not_a_problem() -> None:
    facts = DbFacts(url=read_database_url("DATABASE_URL", {}))
    assert diagnose(facts) == []
    assert diagnosis_line(facts) == (
        "no database problem found at the endpoint, in the pool or in the logs; the "
        "database itself was not checked directly ($DATABASE_URL is not set)"
    )


def test_invalid_url_is_a_problem() -> None:
    facts = DbFacts(url=parse_database_url("ftp://files.example.com/db", "DB"))
    assert diagnose(facts) == [
        "database URL: $DB is not a valid database URL: unknown scheme 'ftp'"
    ]


def test_high_pool_names_the_alert_line() -> None:
    # 17 of 20 = 85 % in both scrapes, no request waiting: above 80 %, not exhausted.
    pool = pool_window([_sample(0, 17), _sample(5, 17)])
    facts = DbFacts(pool=pool, sqlite=SqliteReport("/srv/app.db", ok=True))
    assert diagnosis_line(facts) == (
        "connection pool above the information alert line (80 % for 15 min): up to "
        "85 % in use"
    )


def test_healthy_facts_have_no_problem() -> None:
    pool = pool_window([_sample(0, 4), _sample(5, 5)])
    facts = DbFacts(pool=pool, sqlite=SqliteReport("/srv/app.db", ok=True))
    assert diagnosis_line(facts) == "no database problem found"
    assert {option.rank for option in recovery_options(facts)} == {None}


def test_messages_space_the_percent_sign() -> None:
    errors = DatabaseErrors("15m", errors=classify_entries(_app_log()))
    facts = _pool_facts(errors=errors)
    texts = [diagnosis_line(facts)]
    texts += [option.evidence for option in recovery_options(facts)]
    assert [text for text in texts if GLUED_PERCENT.search(text)] == []


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
        steps.probe_database_endpoint(progress=None)
    endpoint = steps.facts.endpoint
    assert endpoint is not None
    assert endpoint.status == "fail"
    assert endpoint.http_status == 200
    assert steps.facts.endpoint_pool == {}
    assert steps.facts.unreachable is None
    assert unreachable_from_application(steps.facts) is None


def test_endpoint_skipped_integrity_is_no_pass(
    session_for: Callable[[str], Session],
) -> None:
    body = {
        "status": "unhealthy",
        "error": "connect ECONNREFUSED 192.0.2.10:5432",
        "integrity": {"status": "skip", "detail": "database unreachable"},
    }
    raw = response_bytes(json.dumps(body).encode())
    with RawServer(replay(raw)) as server:
        session = session_for(server.url(""))
        steps = DatabaseConnection(session)
        steps.probe_database_endpoint(progress=None)
    check = next(c for c in session.run.checks if c.name.startswith("data integrity"))
    assert check.status == "skip"
    assert check.summary == (
        "the database endpoint did not check integrity (skip): database unreachable"
    )
    assert recovery_options(steps.facts)[-1].evidence == (
        "no evidence: no integrity check and no migration status was read"
    )


def test_silent_target_is_unreachable(session_for: Callable[[str], Session]) -> None:
    # The endpoint, a metrics scrape and its retry 3 s later each wait for the
    # 1 s read limit to pass.
    with RawServer(silent()) as server:
        session = session_for(server.url(""))
        steps = DatabaseConnection(session)
        steps.probe_database_endpoint(progress=None)
        steps.sample_pool(2.0, progress=None)
        steps.read_connection_errors()
    statuses = {check.name: check.status for check in session.run.checks}
    assert steps.facts.unreachable == "no response before the timeout"
    assert statuses == {
        "target": "error",
        "connection pool": "skip",
        "database errors in logs": "skip",
    }
    assert session.run.checks[0].summary.startswith(
        f"target unreachable: no response before the timeout at {server.url('')}"
    )
    # Three requests: the endpoint, the scrape and its retry; none for the pool.
    assert len(server.requests) == 3
