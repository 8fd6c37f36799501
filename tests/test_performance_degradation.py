"""Runs of the real performance-degradation notebook against the demo and a dead port.

Each target is run once per module, with a 3 s window, and the tests read the
journal and the executed notebook of that run.
"""

from __future__ import annotations

import bisect
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.pgcluster import PgCluster
from veerunbook.journal import Journal
from veerunbook.perf_recovery import ACTIONS, CACHING, DATABASE, SCALING
from veerunbook.redact import Redactor
from veerunbook.runner import RunOutcome, run_procedure
from veerunbook.simulator import start_target

PROCEDURE = "performance-degradation"
PARAMS = {"window_seconds": 3.0, "samples": 3}
# Checks journal latencies rounded to 0.1 ms. The margin covers a half-way value
# such as 207.25, which binary floating point may round either way.
ROUNDING = 0.051


@dataclass
class Run:
    target: str
    outcome: RunOutcome
    events: list[dict[str, Any]]
    notebook: dict[str, Any]

    def checks(self, name: str) -> list[dict[str, Any]]:
        return [
            event
            for event in self.events
            if event["event"] == "check" and event["name"] == name
        ]

    def check(self, name: str) -> dict[str, Any]:
        found = self.checks(name)
        assert len(found) == 1, f"{len(found)} checks named {name!r}"
        return found[0]

    def note(self, field: str) -> Any:
        notes = [event for event in self.events if field in event]
        assert notes, f"no note with {field!r}"
        return notes[-1][field]

    def outputs(self, kind: str) -> list[str]:
        found = []
        for cell in self.notebook["cells"]:
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    found.append(f"error: {output['ename']}")
                data = output.get("data", {})
                if kind in data:
                    found.append("".join(data[kind]))
        return found


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def execute(archive: Path, target: str) -> Run:
    incident = "INC-" + target.replace(":", "-").replace("/", "").replace(".", "-")
    outcome = run_procedure(
        PROCEDURE,
        incident=incident[:60],
        target=target,
        params=PARAMS,
        archive=archive,
        redactor=Redactor(),
    )
    events = list(Journal(archive / outcome.incident).events())
    notebook = json.loads(outcome.notebook.read_text(encoding="utf-8"))
    return Run(target, outcome, events, notebook)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    archive = tmp_path_factory.mktemp("archive")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("VEERUNBOOK_DEMO_URL", raising=False)
        patch.delenv("DATABASE_URL", raising=False)
        yield {
            "slow": execute(archive, "demo:slow"),
            "pool-exhaustion": execute(archive, "demo:pool-exhaustion"),
            "healthy": execute(archive, "demo:healthy"),
            "down": execute(archive, f"http://127.0.0.1:{closed_port()}"),
        }


def user_p95_by_hand(run: Run) -> float:
    """Compute the user p95 in ms from the journaled buckets of the window's ends.

    The buckets' growth of every user route is summed by bound. The p95 is then
    interpolated linearly inside the bucket that contains rank 0.95 * total.
    """
    evidence = run.check("user API p95")["evidence"]
    growth: dict[float, float] = {}
    for key, sign in (("buckets_last", 1.0), ("buckets_first", -1.0)):
        for sample in evidence[key]:
            labels = sample["labels"]
            if labels["endpoint"].startswith(("/health", "/readyz", "/metrics")):
                continue
            bound = float(labels["le"])
            growth[bound] = growth.get(bound, 0.0) + sign * sample["value"]
    bounds = sorted(growth)
    counts = [growth[bound] for bound in bounds]
    rank = 0.95 * counts[-1]
    index = bisect.bisect_left(counts, rank)
    lower = bounds[index - 1] if index else 0.0
    below = counts[index - 1] if index else 0.0
    width = bounds[index] - lower
    return (lower + width * (rank - below) / (counts[index] - below)) * 1000


# demo:slow: every user route about 12 times slower.


def test_slow_finds_findings(runs: dict[str, Run]) -> None:
    outcome = runs["slow"].outcome
    assert outcome.status == "findings"
    assert outcome.exit_code == 1


def test_slow_user_p95_fails(runs: dict[str, Run]) -> None:
    check = runs["slow"].check("user API p95")
    assert check["status"] == "fail"
    assert check["observed"] > 2000


def test_slow_user_p95_matches_scrapes(runs: dict[str, Run]) -> None:
    run = runs["slow"]
    observed = run.check("user API p95")["observed"]
    assert observed == pytest.approx(user_p95_by_hand(run), abs=ROUNDING)


def test_slow_slowest_route_fails(runs: dict[str, Run]) -> None:
    check = runs["slow"].check("slowest route p95")
    assert check["status"] == "fail"
    assert check["evidence"]["route"]["p95_ms"] == check["observed"]


def test_slow_lcp_poor(runs: dict[str, Run]) -> None:
    run = runs["slow"]
    check = run.check("web vital LCP")
    audit = run.check("performance audit")["evidence"]["json"]
    assert check["status"] == "fail"
    assert check["evidence"]["rating"] == "poor"
    assert check["observed"] == audit["webVitals"]["lcpMs"]
    assert check["observed"] > 4000


def test_slow_ranks_caching_and_scaling(runs: dict[str, Run]) -> None:
    options = runs["slow"].note("recovery_options")
    assert {option["action"] for option in options[:2]} == {CACHING, SCALING}, options
    assert [option["rank"] for option in options[:2]] == [1, 2]
    assert options[0]["points"] > 0
    assert options[1]["points"] > 0


def test_slow_unsupported_options_unranked(runs: dict[str, Run]) -> None:
    options = runs["slow"].note("recovery_options")[2:]
    assert [option["rank"] for option in options] == [None, None]
    assert [option["evidence"] for option in options] == [
        "no evidence in this run",
        "no evidence in this run",
    ]


def test_slow_one_check_for_scrapes(runs: dict[str, Run]) -> None:
    run = runs["slow"]
    check = run.check("metrics scrapes")
    # window_seconds 3 with samples 3: scrapes at 0, 1, 2 and 3 s.
    assert check["status"] == "pass"
    assert check["summary"] == "4 of 4 metrics scrapes succeeded"
    assert run.checks("metrics scrape") == []


def test_slow_diagnosis_names_slowdown(runs: dict[str, Run]) -> None:
    diagnosis = runs["slow"].note("diagnosis")
    p95 = runs["slow"].check("user API p95")["observed"]
    assert diagnosis.startswith(
        f"slowdown: user p95 {p95:.0f} ms, above the warning alert line"
        " (p95 2000 ms for 5 min); slowest "
    )


def test_slow_diagnosis_one_note(runs: dict[str, Run]) -> None:
    notes = [event for event in runs["slow"].events if "diagnosis" in event]
    assert len(notes) == 1
    assert isinstance(notes[0]["diagnosis"], str)
    assert "\n" not in notes[0]["diagnosis"]
    assert notes[0]["text"] == f"diagnosis: {notes[0]['diagnosis']}"


def test_slow_table_columns_name_units(runs: dict[str, Run]) -> None:
    html = "\n".join(runs["slow"].outputs("text/html"))
    for column in ("p95 (ms)", "mean (ms)", "above largest bucket", "p95 above"):
        assert f"<th>{column}</th>" in html
    assert "<th>mean ms</th>" not in html
    assert "<th>at least</th>" not in html


def test_slow_no_incident_class_words(runs: dict[str, Run]) -> None:
    texts = [event.get("summary", "") for event in runs["slow"].events]
    texts += [event.get("expected") or "" for event in runs["slow"].events]
    texts.append(runs["slow"].note("diagnosis"))
    assert [text for text in texts if re.search(r"\bP[0-3]\b", str(text))] == []


def test_slow_notebook_shows_plot_and_tables(runs: dict[str, Run]) -> None:
    run = runs["slow"]
    assert len(run.outputs("image/png")) == 1
    html = "\n".join(run.outputs("text/html"))
    assert "GET /api/user" in html
    assert "probe" in html
    assert run.outputs("error") == []


# demo:healthy: nothing to find.


def test_healthy_passes(runs: dict[str, Run]) -> None:
    run = runs["healthy"]
    failing = [
        check["name"]
        for check in run.events
        if check["event"] == "check" and check["status"] in ("fail", "error")
    ]
    assert failing == []
    assert run.outcome.exit_code == 0


def test_healthy_user_p95_passes(runs: dict[str, Run]) -> None:
    run = runs["healthy"]
    check = run.check("user API p95")
    assert check["status"] == "pass"
    assert check["observed"] == pytest.approx(user_p95_by_hand(run), abs=ROUNDING)


def test_healthy_lcp_good(runs: dict[str, Run]) -> None:
    assert runs["healthy"].check("web vital LCP")["status"] == "pass"


def test_healthy_no_evidence_for_options(runs: dict[str, Run]) -> None:
    options = runs["healthy"].note("recovery_options")
    assert [option["points"] for option in options] == [0, 0, 0, 0]
    assert [option["rank"] for option in options] == [None] * 4
    assert [option["action"] for option in options] == list(ACTIONS)
    assert runs["healthy"].note("diagnosis").startswith("no slowdown")


def test_healthy_sqlite_has_no_slow_log(runs: dict[str, Run]) -> None:
    check = runs["healthy"].check("slow queries")
    assert check["status"] == "skip"
    assert check["summary"].startswith("the database is SQLite (sqlite:///")
    assert check["summary"].endswith("which keeps no slow-query log")


# demo:pool-exhaustion: every pool connection checked out, clients waiting.


def test_pool_full_fails(runs: dict[str, Run]) -> None:
    check = runs["pool-exhaustion"].check("connection pool")
    assert check["status"] == "fail"
    assert check["observed"] == 100.0
    assert check["evidence"]["active"] == 20
    assert check["evidence"]["max"] == 20
    assert check["evidence"]["waiting"] > 0


def test_pool_full_ranks_scaling_first(runs: dict[str, Run]) -> None:
    first = runs["pool-exhaustion"].note("recovery_options")[0]
    assert first["action"] == SCALING
    assert first["rank"] == 1
    assert first["evidence"].startswith("connection pool at 100 % (20 of 20)")


def test_pool_full_summary_counts(runs: dict[str, Run]) -> None:
    check = runs["pool-exhaustion"].check("connection pool")
    waiting = check["evidence"]["waiting"]
    assert check["summary"] == (
        f"20 of 20 connections in use (100 %), {waiting:g} requests waiting"
    )


# A target where nothing listens.


def test_down_completes_with_findings(runs: dict[str, Run]) -> None:
    run = runs["down"]
    assert run.outcome.status == "findings"
    assert run.outcome.exit_code == 1
    assert run.outputs("error") == []


def test_down_one_target_error(runs: dict[str, Run]) -> None:
    run = runs["down"]
    errors = [
        event["name"]
        for event in run.events
        if event["event"] == "check" and event["status"] in ("error", "fail")
    ]
    check = run.check("target")
    assert errors == ["target"]
    assert check["observed"] == "connection refused"
    assert check["summary"] == down_diagnosis(run)


def test_down_stops_after_one_retry(runs: dict[str, Run]) -> None:
    problems = runs["down"].check("target")["evidence"]["metrics scrapes"]
    # The first scrape and its one retry; the 3 s window's other scrapes are skipped.
    assert len(problems) == 2
    assert runs["down"].checks("metrics scrape") == []


def test_down_steps_skip_with_reason(runs: dict[str, Run]) -> None:
    run = runs["down"]
    reason = down_diagnosis(run).split(" (every request failed)")[0]
    for name in (
        "user API p95",
        "slowest route p95",
        "performance audit",
        "connection pool",
        "database query latency",
    ):
        check = run.check(name)
        assert check["status"] == "skip", name
        assert check["summary"] == reason, name
    assert run.checks("database health") == []


def test_down_diagnosis_target_unreachable(runs: dict[str, Run]) -> None:
    assert runs["down"].note("diagnosis") == down_diagnosis(runs["down"])


def test_down_ranks_no_option(runs: dict[str, Run]) -> None:
    options = runs["down"].note("recovery_options")
    assert [option["rank"] for option in options] == [None] * 4
    assert {option["evidence"] for option in options} == {
        "not assessed: the target sent no response"
    }


def down_diagnosis(run: Run) -> str:
    return (
        f"target unreachable: connection refused at {run.target} (every request"
        " failed); check that the service is running, then run triage"
    )


def test_down_has_no_database_url(runs: dict[str, Run]) -> None:
    summary = runs["down"].check("slow queries")["summary"]
    assert summary.startswith("no database URL configured")


# A PostgreSQL database with pg_stat_statements behind the demo service.


@pytest.fixture
def slow_statement_dsn(pg_cluster: PgCluster) -> Iterator[str]:
    """A database of its own with one statement that took 300 ms three times.

    pg_stat_statements is read per database, so statements that other tests ran
    on the shared cluster do not appear in it.
    """
    name = "perf_slow_statement"
    with pg_cluster.open_admin("slow-statement") as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    dsn = make_conninfo(pg_cluster.admin_dsn, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        # Forget this database's statements so far, CREATE EXTENSION among them.
        conn.execute(
            "SELECT pg_stat_statements_reset(0, oid, 0)"
            " FROM pg_database WHERE datname = current_database()"
        )
        for _ in range(3):
            conn.execute("SELECT pg_sleep(0.3)")
    yield dsn
    with pg_cluster.open_admin("slow-statement") as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_postgres_slow_statement_ranks_database(
    pg_cluster: PgCluster,
    slow_statement_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reached by its URL, the demo is a configured target that reads DATABASE_URL.
    monkeypatch.setenv("DATABASE_URL", slow_statement_dsn)
    service = start_target("healthy")
    try:
        run = execute(tmp_path, service.base_url)
    finally:
        service.stop()
    check = run.check("slow queries")
    slow = [text for text in check["evidence"] if text.startswith("SELECT pg_sleep")]
    options = {option["action"]: option for option in run.note("recovery_options")}

    assert check["status"] == "warn"
    # Three calls of pg_sleep(0.3) have a mean of at least 300 ms.
    assert check["observed"] >= 300.0
    assert len(slow) == 1
    assert "over 3 calls" in slow[0]
    assert options[DATABASE]["rank"] == 1
    assert ", slowest: SELECT pg_sleep" in options[DATABASE]["evidence"]
    assert "workspaces" not in options[DATABASE]["evidence"]
    assert pg_cluster.app_password not in outcome_text(run)


def outcome_text(run: Run) -> str:
    journal = run.outcome.notebook.parents[1] / "journal.jsonl"
    return journal.read_text() + run.outcome.notebook.read_text()
