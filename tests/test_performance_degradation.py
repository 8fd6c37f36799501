"""Runs of the real performance-degradation notebook against the demo and a dead port.

Each target is run once per module, with a 3 s window, and the tests read the
journal and the executed notebook of that run.
"""

from __future__ import annotations

import bisect
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.pgcluster import PgCluster
from veerunbook import metrics
from veerunbook.journal import Journal
from veerunbook.perf_recovery import CACHING, DATABASE, SCALING
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
    return Run(outcome, events, notebook)


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
    """Compute the user p95 in ms from the first and last journaled scrapes.

    The buckets' growth of every user route is summed by bound; the p95 is then
    interpolated linearly inside the bucket that contains rank 0.95 * total.
    """
    scrapes = [check["evidence"] for check in run.checks("metrics scrape")]
    assert not any(scrape["text_truncated"] for scrape in scrapes)
    first, last = (
        metrics.parse_exposition(s["text"]) for s in (scrapes[0], scrapes[-1])
    )
    growth: dict[float, float] = {}
    for scrape, sign in ((last, 1.0), (first, -1.0)):
        for sample in scrape.find("http_request_duration_seconds_bucket"):
            if sample.labels["endpoint"].startswith(("/health", "/readyz", "/metrics")):
                continue
            bound = float(sample.labels["le"])
            growth[bound] = growth.get(bound, 0.0) + sign * sample.value
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
    assert options[0]["points"] > 0
    assert options[1]["points"] > 0


def test_slow_diagnosis_names_slowdown(runs: dict[str, Run]) -> None:
    diagnosis = runs["slow"].note("diagnosis")
    p95 = runs["slow"].check("user API p95")["observed"]
    assert diagnosis.startswith(f"slowdown: user p95 {p95:.0f} ms")


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
    assert first["evidence"][0].startswith("connection pool at 100 % (20 of 20)")


# A target where nothing listens.


def test_down_completes_with_findings(runs: dict[str, Run]) -> None:
    run = runs["down"]
    assert run.outcome.status == "findings"
    assert run.outcome.exit_code == 1
    assert run.outputs("error") == []


def test_down_records_refused(runs: dict[str, Run]) -> None:
    run = runs["down"]
    for name in ("performance audit", "database health"):
        check = run.check(name)
        assert check["status"] == "error"
        assert check["evidence"]["error_kind"] == "connection refused"
    scrapes = run.checks("metrics scrape")
    assert len(scrapes) == 4
    assert {scrape["status"] for scrape in scrapes} == {"error"}


def test_down_leaves_latency_unknown(runs: dict[str, Run]) -> None:
    run = runs["down"]
    assert run.check("user API p95")["status"] == "skip"
    assert "refused the connection" in run.check("user API p95")["summary"]
    assert run.check("connection pool")["status"] == "skip"
    assert run.note("diagnosis").startswith("latency unknown")


def test_down_has_no_database_url(runs: dict[str, Run]) -> None:
    summary = runs["down"].check("slow queries")["summary"]
    assert summary.startswith("no database URL configured")


# A PostgreSQL database with pg_stat_statements behind the demo service.


def test_postgres_slow_statement_ranks_database(
    pg_cluster: PgCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg_cluster.open_admin("slow-statement") as conn:
        for _ in range(3):
            conn.execute("SELECT pg_sleep(0.3)")
    # Reached by its URL, the demo is a configured target that reads DATABASE_URL.
    monkeypatch.setenv("DATABASE_URL", pg_cluster.admin_dsn)
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
    assert slow == [slow[0]]
    assert "over 3 calls" in slow[0]
    assert options[DATABASE]["rank"] == 1
    assert options[DATABASE]["evidence"][0].startswith(
        "1 slow statement, slowest: SELECT pg_sleep"
    )
    assert pg_cluster.app_password not in outcome_text(run)


def outcome_text(run: Run) -> str:
    journal = run.outcome.notebook.parents[1] / "journal.jsonl"
    return journal.read_text() + run.outcome.notebook.read_text()
