"""Tests of the application-rollback library: versions, choice, watch, action.

The version choice runs on hand-built deployment histories, the watch figures on
hand-written Prometheus scrapes whose rates and quantiles the comments compute by
hand, and on the copied veefore-counter-reset-between-scrapes case. The action runs
against the simulated service on loopback, through its admin endpoint and through a
configured command.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from veerunbook import metrics
from veerunbook.actions import Guard, perform
from veerunbook.approllback import ApplicationRollback
from veerunbook.approllback_action import (
    ADMIN_ROLLBACK_PATH,
    read_running_version,
    rollback_action,
    rollback_method,
)
from veerunbook.approllback_choice import Choice, choose_version, record_choice
from veerunbook.approllback_plot import plot_watch
from veerunbook.approllback_report import diagnosis
from veerunbook.approllback_versions import (
    Deployment,
    VersionHistory,
    parse_deployments,
    read_history,
)
from veerunbook.approllback_watch import (
    Figures,
    SampleReporter,
    figures,
    timeline,
    verdict,
)
from veerunbook.metrics_series import Sample, ScrapeResult
from veerunbook.record import RUN_ID_ENV
from veerunbook.run_summary import finding_line
from veerunbook.session import Session, begin
from veerunbook.simulator import RunningTarget, start_target

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
RESET_CASE = (
    Path(__file__).parent / "fixtures" / "veefore-counter-reset-between-scrapes"
)


def deployment(version: str, minutes: float, status: str = "succeeded") -> Deployment:
    """A deployment ``minutes`` after T0 (negative: before)."""
    return Deployment(version, T0 + timedelta(minutes=minutes), status)


def bad_deploy_history() -> VersionHistory:
    """The simulated service's history after release 1.5.0 shipped at T0."""
    return VersionHistory(
        deployments=[
            deployment("1.5.0", 0),
            deployment("1.4.2", -1.3 * 1440),
            deployment("1.4.1", -5.9 * 1440),
            deployment("1.4.0", -6.5 * 1440, "rolled_back"),
            deployment("1.3.1", -14.2 * 1440),
        ],
        current="1.5.0",
    )


def rolled_back_history() -> VersionHistory:
    """The same history after a rollback to 1.4.2, two minutes after T0."""
    history = bad_deploy_history()
    history.deployments = [
        deployment("1.4.2", 2),
        deployment("1.5.0", 0, "rolled_back"),
        *history.deployments[1:],
    ]
    history.current = "1.4.2"
    return history


# Parsing the deployment history.


def test_parse_list_under_key() -> None:
    body = {
        "current": "1.5.0",
        "deployments": [
            {"version": "1.4.2", "deployedAt": "2026-03-01T12:00:00Z"},
            {"version": "1.5.0", "deployedAt": "2026-03-02T12:00:00Z"},
        ],
    }
    parsed = parse_deployments(body)
    assert parsed is not None
    deployments, current = parsed
    assert [item.version for item in deployments] == ["1.5.0", "1.4.2"]
    assert deployments[0].time == T0
    assert current == "1.5.0"


def test_parse_current_from_statuses() -> None:
    # Without "current", the newest deployment that was not rolled back runs.
    body = [
        {"version": "2.0.0", "time": "2026-03-02T12:00:00Z", "status": "failed"},
        {"version": "1.9.0", "time": "2026-03-01T12:00:00Z", "status": "succeeded"},
    ]
    parsed = parse_deployments(body)
    assert parsed is not None
    assert parsed[1] == "1.9.0"


def test_parse_rejects_no_list() -> None:
    assert parse_deployments({"status": "ok"}) is None
    assert parse_deployments("<html>") is None


def test_known_versions_once() -> None:
    history = rolled_back_history()
    assert history.known() == ["1.4.2", "1.5.0", "1.4.1", "1.4.0", "1.3.1"]


def test_redeployed_after_rollback() -> None:
    assert rolled_back_history().redeployed("1.4.2")
    assert not bad_deploy_history().redeployed("1.5.0")
    assert not bad_deploy_history().redeployed("1.4.2")


# Choosing by evidence.


def test_choice_before_suspect() -> None:
    # The errors start 3 s after 1.5.0 shipped: 1.4.2 ran before it.
    choice = choose_version(bad_deploy_history(), T0 + timedelta(seconds=3))
    assert choice.version == "1.4.2"
    assert choice.by == "evidence"
    assert choice.status == "pass"
    assert choice.suspect is not None
    assert choice.suspect.version == "1.5.0"


def test_choice_names_evidence() -> None:
    choice = choose_version(
        bad_deploy_history(),
        T0 + timedelta(seconds=3),
        start_evidence="first error log entry at 12:00:03 UTC",
    )
    assert choice.reason == (
        "the errors started at 12:00:03 UTC (first error log entry at 12:00:03 UTC);"
        " 1.5.0 was deployed 3 s before; the newest earlier good deployment is"
        " 1.4.2, deployed 2026-03-01 04:48 UTC"
    )


def test_choice_skips_rolled_back() -> None:
    history = VersionHistory(
        deployments=[
            deployment("1.5.0", 0),
            deployment("1.4.0", -60, "rolled_back"),
            deployment("1.3.1", -120),
        ],
        current="1.5.0",
    )
    choice = choose_version(history, T0 + timedelta(minutes=5))
    assert choice.version == "1.3.1"


def test_choice_skips_same_version() -> None:
    # 1.5.0 was deployed twice; the version before it is 1.4.2.
    history = VersionHistory(
        deployments=[
            deployment("1.5.0", 0),
            deployment("1.5.0", -30),
            deployment("1.4.2", -600),
        ],
        current="1.5.0",
    )
    assert choose_version(history, T0 + timedelta(minutes=1)).version == "1.4.2"


def test_choice_after_rollback_same() -> None:
    # The errors began with 1.5.0; 1.4.2 runs again, which the action finds done.
    choice = choose_version(rolled_back_history(), T0 + timedelta(seconds=3))
    assert choice.version == "1.4.2"
    assert choice.suspect is not None
    assert choice.suspect.version == "1.5.0"


def test_clock_skew_allowed() -> None:
    # A deployment 4 s after the first error counts (skew up to 5 s); 6 s does not.
    history = bad_deploy_history()
    near = choose_version(history, T0 - timedelta(seconds=4))
    far = choose_version(history, T0 - timedelta(seconds=6))
    assert near.suspect is not None
    assert near.suspect.version == "1.5.0"
    assert far.suspect is not None
    assert far.suspect.version == "1.4.2"


def test_nothing_without_errors() -> None:
    choice = choose_version(bad_deploy_history(), None)
    assert choice.version is None
    assert choice.status == "pass"
    assert choice.reason.startswith("nothing to roll back: no errors were found")


def test_old_deploy_not_suspect() -> None:
    # Errors 2 h after 1.5.0 lie outside the 60 min a deployment stays suspect.
    choice = choose_version(bad_deploy_history(), T0 + timedelta(hours=2), "", 60)
    assert choice.version is None
    assert choice.status == "warn"
    assert choice.reason.startswith(
        "the newest deployment before the errors, 1.5.0, came 2.0 h before"
        " them, outside the 60 min a deployment stays suspect"
    )


def test_no_deploy_before_errors() -> None:
    history = VersionHistory([deployment("1.5.0", 0)], current="1.5.0")
    choice = choose_version(history, T0 - timedelta(minutes=10))
    assert choice.version is None
    assert choice.status == "warn"
    assert "no deployment in the history before the errors" in choice.reason


def test_no_good_version_before() -> None:
    history = VersionHistory(
        [deployment("1.5.0", 0), deployment("1.4.0", -60, "failed")], current="1.5.0"
    )
    choice = choose_version(history, T0 + timedelta(seconds=1))
    assert choice.version is None
    assert choice.reason.startswith("no good deployment older than 1.5.0")


def test_unread_history_error() -> None:
    history = VersionHistory(problem="HTTP 503")
    choice = choose_version(history, T0)
    assert choice.version is None
    assert choice.status == "error"
    assert "(HTTP 503)" in choice.reason


# Checking a version the operator gives.


def test_requested_known_version() -> None:
    choice = choose_version(bad_deploy_history(), None, "1.4.1")
    assert choice.version == "1.4.1"
    assert choice.by == "parameter"
    assert choice.status == "pass"


def test_requested_unknown_lists_known() -> None:
    choice = choose_version(bad_deploy_history(), None, "9.9.9")
    assert choice.version is None
    assert choice.status == "fail"
    assert choice.reason == (
        "unknown version '9.9.9': the deployment history does not list it;"
        " known versions, newest first: 1.5.0, 1.4.2, 1.4.1, 1.4.0, 1.3.1"
    )


def long_history(count: int) -> VersionHistory:
    """A history of ``count`` versions 0.1, 0.2, ..., newest last; 2.0.0 runs."""
    deployments = [deployment(f"0.{i}", i - count) for i in range(1, count + 1)]
    deployments.reverse()
    return VersionHistory([deployment("2.0.0", 1), *deployments], current="2.0.0")


def test_requested_unknown_caps_list() -> None:
    choice = choose_version(long_history(20_000), None, "9.9.9")
    assert choice.reason == (
        "unknown version '9.9.9': the deployment history does not list it;"
        " known versions, newest first: 2.0.0, 0.20000, 0.19999, 0.19998, 0.19997,"
        " 0.19996, 0.19995, 0.19994, 0.19993, 0.19992 and 19991 more"
    )


def test_requested_running_caps_list() -> None:
    choice = choose_version(long_history(30), None, "2.0.0")
    assert choice.reason.endswith(
        "choose an older version: 0.30, 0.29, 0.28, 0.27, 0.26, 0.25, 0.24, 0.23,"
        " 0.22, 0.21 and 20 more"
    )


def test_parse_deployments_clips_text() -> None:
    body = {
        "current": "x" * 100_000,
        "deployments": [{"version": "v" * 100_000, "note": "n" * 100_000}],
    }
    parsed = parse_deployments(body)
    assert parsed is not None
    deployments, current = parsed
    assert current == "x" * 63 + "…"
    assert deployments[0].version == "v" * 63 + "…"
    assert len(deployments[0].note) == 200


def test_clipped_version_never_chosen() -> None:
    body = {"deployments": [{"version": "1" * 70, "status": "succeeded"}]}
    parsed = parse_deployments(body)
    assert parsed is not None
    history = VersionHistory(parsed[0], current="2.0.0")
    assert choose_version(history, None, "1" * 64).status == "fail"


@pytest.mark.parametrize(
    "text", ["1.4.2; rm -rf /", "$(id)", "-rf", "../1.4.2", "a" * 65, "1.4.2\n"]
)
def test_requested_strict_charset(text: str) -> None:
    choice = choose_version(bad_deploy_history(), None, text)
    assert choice.version is None
    assert choice.reason.startswith("invalid version")


def test_requested_running_rejected() -> None:
    choice = choose_version(bad_deploy_history(), None, "1.5.0")
    assert choice.version is None
    assert choice.reason == (
        "1.5.0 is the running version, so a rollback to it changes nothing;"
        " choose an older version: 1.4.2, 1.4.1, 1.4.0, 1.3.1"
    )


def test_requested_running_after_rollback() -> None:
    # A rollback to 1.4.2 already happened, so the action finds it done.
    choice = choose_version(rolled_back_history(), None, "1.4.2")
    assert choice.version == "1.4.2"


def test_requested_rolled_back_warns() -> None:
    choice = choose_version(bad_deploy_history(), None, "1.4.0")
    assert choice.version == "1.4.0"
    assert choice.status == "warn"
    assert choice.reason.endswith("every deployment of it was rolled back or failed")


def test_requested_needs_history() -> None:
    choice = choose_version(VersionHistory(problem="timeout"), None, "1.4.2")
    assert choice.version is None
    assert choice.status == "error"


# The watch: figures, verdict, progress lines and plot.


def exposition(ok: float, errors: float, buckets: dict[str, float]) -> str:
    """A scrape of one user route: 200 and 500 counters and a latency histogram."""
    route = 'endpoint="/api/user",method="GET"'
    lines = [
        f'http_requests_total{{{route},status_code="200"}} {ok}',
        f'http_requests_total{{{route},status_code="500"}} {errors}',
        'http_requests_total{endpoint="/health",method="GET",status_code="200"} 7',
    ]
    for le, count in buckets.items():
        lines.append(
            f'http_request_duration_seconds_bucket{{{route},le="{le}"}} {count}'
        )
    lines.append(f"http_request_duration_seconds_count{{{route}}} {buckets['+Inf']}")
    return "\n".join(lines) + "\n"


def sample(at_seconds: float, text: str) -> Sample:
    at = T0 + timedelta(seconds=at_seconds)
    scrape = metrics.parse_exposition(text, scraped_at=at.timestamp())
    return Sample(at, scrape, None)


# Cumulative buckets: at t=0 nothing; at t=10 s, 100 requests of which 50 took at
# most 0.1 s, 90 at most 0.5 s and all 100 at most 1 s. 10 of them returned 500.
EMPTY = {"0.1": 0, "0.5": 0, "1": 0, "+Inf": 0}
FIRST = {"0.1": 50, "0.5": 90, "1": 100, "+Inf": 100}
# From t=10 s to t=20 s, 100 more requests, all within 0.1 s, none failed.
SECOND = {"0.1": 150, "0.5": 190, "1": 200, "+Inf": 200}


def test_figures_one_interval() -> None:
    series = [sample(0, exposition(0, 0, EMPTY)), sample(10, exposition(90, 10, FIRST))]
    found = figures(series)
    assert found is not None
    assert found.requests == 100
    assert found.errors == 10
    # 10 of 100 requests: 10 %.
    assert found.rate == pytest.approx(0.10)
    # Rank 95 of 100 lies in (0.5 s, 1 s], which contains requests 91 to 100:
    # 0.5 + (95 - 90) / (100 - 90) * 0.5 = 0.75 s.
    assert found.p95_ms == 750.0
    assert found.seconds == 10.0


def test_figures_last_seconds() -> None:
    series = [
        sample(0, exposition(0, 0, EMPTY)),
        sample(10, exposition(90, 10, FIRST)),
        sample(20, exposition(190, 10, SECOND)),
    ]
    # The last 10 s start at the scrape at t=10 s: 100 requests, no 500, and all of
    # them in (0 s, 0.1 s], so p95 = 0 + 95 / 100 * 0.1 s = 0.095 s = 95 ms.
    found = figures(series, last_seconds=10)
    assert found is not None
    assert found.requests == 100
    assert found.errors == 0
    assert found.p95_ms == 95.0


def test_figures_whole_when_short() -> None:
    series = [
        sample(0, exposition(0, 0, EMPTY)),
        sample(10, exposition(90, 10, FIRST)),
        sample(20, exposition(190, 10, SECOND)),
    ]
    found = figures(series, last_seconds=300)
    assert found is not None
    # 10 errors in 200 requests: 5 %.
    assert found.rate == pytest.approx(0.05)


def test_figures_need_two_scrapes() -> None:
    failed = Sample(T0, None, "HTTP 503: unavailable")
    assert figures([sample(0, exposition(0, 0, EMPTY)), failed]) is None


def test_figures_counter_reset_case() -> None:
    # The process restarted between the scrapes, as after a rollback that restarts
    # it: every series counts from 0, so 642 user requests and 52 5xx (8.10 %).
    texts = [(RESET_CASE / f"scrape-{i}.txt").read_text() for i in (0, 1)]
    series = [sample(0, texts[0]), sample(120, texts[1])]
    found = figures(series)
    assert found is not None
    assert found.requests == 642
    assert found.errors == 52
    assert round((found.rate or 0) * 100, 2) == 8.10
    assert verdict(found)[0] == "not held"


def test_verdict_held() -> None:
    state, reason = verdict(Figures(300.0, 400, 2, 0.005, 120.0))
    assert state == "held"
    assert reason == (
        "5xx 0.5 % of 400 user requests, p95 120 ms over 300 s:"
        " below 1 % 5xx and 2000 ms p95"
    )


def test_verdict_rate_at_line() -> None:
    # 1 % is not below 1 %.
    assert verdict(Figures(60.0, 100, 1, 0.01, 100.0))[0] == "not held"


def test_verdict_slow_not_held() -> None:
    state, reason = verdict(Figures(60.0, 100, 0, 0.0, 2500.0))
    assert state == "not held"
    assert reason.endswith("the p95 is at or above 2000 ms")


def test_verdict_unknown_without_traffic() -> None:
    assert verdict(Figures(60.0, 0, 0, None, None))[0] == "unknown"
    assert verdict(None)[0] == "unknown"


def test_verdict_lower_bound_unknown() -> None:
    # A p95 "at least 1000 ms" could be above 2000 ms.
    assert verdict(Figures(60.0, 100, 0, 0.0, 1000.0, True))[0] == "unknown"


def test_timeline_rows() -> None:
    series = [
        sample(0, exposition(0, 0, EMPTY)),
        sample(10, exposition(90, 10, FIRST)),
        sample(20, exposition(190, 10, SECOND)),
    ]
    table = timeline(series)
    assert list(table.columns) == [
        "end",
        "seconds",
        "requests",
        "5xx",
        "5xx (%)",
        "p95 (ms)",
    ]
    assert table["requests"].tolist() == [100, 100]
    assert table["5xx (%)"].tolist() == [10.0, 0.0]
    assert table["p95 (ms)"].tolist() == [750.0, 95.0]


def test_timeline_whole_counts() -> None:
    series = [
        sample(0, exposition(0, 0, EMPTY)),
        sample(9.962442, exposition(90, 10, FIRST)),
    ]
    table = timeline(series)
    assert table["seconds"].tolist() == [9.96]
    assert "100.0" not in table[["requests", "5xx"]].to_string()


def test_figures_brief_minutes() -> None:
    found = Figures(60.2, 1141, 0, 0.0, 120.0)
    assert found.brief() == "5xx 0.0 %, p95 120 ms over 1 min"


def test_figures_brief_seconds() -> None:
    found = Figures(45.0, 100, 0, 0.0, None)
    assert found.brief() == "5xx 0.0 %, no p95 over 45 s"


def test_reporter_one_line_each() -> None:
    texts = [exposition(0, 0, EMPTY), exposition(90, 10, FIRST)]
    results = [
        ScrapeResult(metrics.parse_exposition(texts[0], scraped_at=0.0)),
        ScrapeResult(metrics.parse_exposition(texts[1], scraped_at=10.0)),
        ScrapeResult(None, "HTTP 503: service unavailable"),
    ]
    lines: list[str] = []
    reporter = SampleReporter(lambda: results.pop(0), 3, lines.append)
    for _ in range(3):
        reporter()
    assert lines == [
        "sample 1 of 3: first scrape",
        "sample 2 of 3: 5xx 10.0 % of 100 user requests, p95 750 ms over 10 s",
        "sample 3 of 3: failed: HTTP 503: service unavailable",
    ]


def test_plot_alert_lines() -> None:
    series = [
        sample(0, exposition(0, 0, EMPTY)),
        sample(10, exposition(90, 10, FIRST)),
        sample(20, exposition(190, 10, SECOND)),
    ]
    figure = plot_watch(timeline(series), "after the rollback", T0)
    assert figure is not None
    rates, latency = figure.axes
    labels = {line.get_label() for line in rates.get_lines()}
    assert "warning alert line: 1 % for 5 min" in labels
    assert "critical alert line: 5 % for 2 min" in labels
    assert "rollback at 12:00:00 UTC" in labels
    latency_labels = {line.get_label() for line in latency.get_lines()}
    assert "warning alert line: 2000 ms for 5 min" in latency_labels
    assert "information alert line: 1500 ms for 15 min" in latency_labels
    assert rates.get_title() == "after the rollback"
    assert latency.get_xlabel() == "time (UTC)"
    assert latency.get_ylabel() == "p95 latency (ms)"


def test_plot_baseline_and_watch() -> None:
    baseline = [
        sample(0, exposition(0, 0, EMPTY)),
        sample(10, exposition(90, 10, FIRST)),
    ]
    watch = [
        sample(30, exposition(90, 10, FIRST)),
        sample(40, exposition(190, 10, SECOND)),
    ]
    rolled_back = T0 + timedelta(seconds=20)
    figure = plot_watch(timeline(baseline), "both", rolled_back, timeline(watch))
    assert figure is not None
    rates, latency = figure.axes
    lines = {line.get_label(): line for line in rates.get_lines()}
    assert lines["5xx before the rollback"].get_ydata().tolist() == [10.0]
    assert lines["5xx after the rollback"].get_ydata().tolist() == [0.0]
    assert "rollback at 12:00:20 UTC" in lines
    legend = [text.get_text() for text in rates.get_legend().get_texts()]
    assert "5xx before the rollback" in legend
    assert "5xx after the rollback" in legend
    p95 = {line.get_label() for line in latency.get_lines()}
    assert "p95 before the rollback" in p95
    assert "p95 after the rollback" in p95


def test_plot_nothing_without_traffic() -> None:
    series = [sample(0, exposition(0, 0, EMPTY)), sample(10, exposition(0, 0, EMPTY))]
    assert plot_watch(timeline(series), "baseline") is None


# The action against the simulated service.

INCIDENT = "INC-AR-UNIT"
TOKEN = "vbtok_0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f"


@pytest.fixture
def service() -> Iterator[RunningTarget]:
    running = start_target("bad-deploy", traffic_rate=0)
    yield running
    running.stop()


def open_session(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    commands: str = "",
    token_env: str = "VEEFORE_ADMIN_TOKEN",
) -> Session:
    config = tmp_path / "veerunbook.toml"
    text = f'[targets.svc]\nbase_url = "{url}"\nadmin_token_env = "{token_env}"\n'
    if commands:
        text += f"[targets.svc.commands]\n{commands}\n"
    config.write_text(text, encoding="utf-8")
    monkeypatch.setenv("VEERUNBOOK_CONFIG", str(config))
    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    return begin(
        "rollback-test", incident=INCIDENT, target="svc", archive=str(tmp_path / "a")
    )


def chosen(version: str) -> Choice:
    return Choice(version, "parameter", "given with -p version", "pass")


def test_admin_endpoint_rollback(
    service: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEEFORE_ADMIN_TOKEN", TOKEN)
    session = open_session(tmp_path, monkeypatch, service.base_url)
    try:
        assert rollback_method(session) == ("admin endpoint", ADMIN_ROLLBACK_PATH)
        action = rollback_action(session, chosen("1.4.2"), 10.0)
        first = perform(session, Guard(INCIDENT, True), action)
        second = perform(session, Guard(INCIDENT, True), action)
        running = read_running_version(session)
    finally:
        session.close()
    assert first.mode == "executed"
    assert first.before == {"version": "1.5.0", "source": "deployment history"}
    assert second.mode == "already-done"
    assert running["version"] == "1.4.2"
    journal = (tmp_path / "a" / INCIDENT / "journal.jsonl").read_text()
    assert TOKEN not in journal


def test_wrong_token_fails(
    service: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service in this process reads VEEFORE_ADMIN_TOKEN; the client sends the
    # value of another variable.
    monkeypatch.setenv("VEEFORE_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("ROLLBACK_TOKEN", "vbtok_9f8e7d6c5b4a39281706f5e4d3c2b1a0")
    session = open_session(
        tmp_path, monkeypatch, service.base_url, token_env="ROLLBACK_TOKEN"
    )
    try:
        action = rollback_action(session, chosen("1.4.2"), 10.0)
        result = perform(session, Guard(INCIDENT, True), action)
        running = read_running_version(session)
    finally:
        session.close()
    assert result.mode == "failed"
    assert result.detail.startswith(f"POST {ADMIN_ROLLBACK_PATH} answered 401")
    assert running["version"] == "1.5.0"


def test_failing_command_failed(
    service: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VEEFORE_ADMIN_TOKEN", raising=False)
    command = 'deploy_rollback = "echo no release {version} >&2; exit 4"'
    session = open_session(tmp_path, monkeypatch, service.base_url, command)
    try:
        action = rollback_action(session, chosen("1.4.2"), 10.0)
        result = perform(session, Guard(INCIDENT, True), action)
        running = read_running_version(session)
    finally:
        session.close()
    assert result.mode == "failed"
    assert "the rollback command exited 4" in result.detail
    assert ": no release 1.4.2;" in result.detail
    assert running["version"] == "1.5.0"


def test_command_full_stop_dropped(
    service: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VEEFORE_ADMIN_TOKEN", raising=False)
    command = 'deploy_rollback = "echo Rolled back to {version}."'
    session = open_session(tmp_path, monkeypatch, service.base_url, command)
    try:
        action = rollback_action(session, chosen("1.4.2"), 10.0)
        result = perform(session, Guard(INCIDENT, True), action)
    finally:
        session.close()
    assert ": Rolled back to 1.4.2;" in result.detail
    assert ".;" not in result.detail


def test_failed_diagnosis_wording(
    service: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VEEFORE_ADMIN_TOKEN", raising=False)
    command = 'deploy_rollback = "exit 4"'
    session = open_session(tmp_path, monkeypatch, service.base_url, command)
    guard = Guard(INCIDENT, True)
    try:
        result = perform(session, guard, rollback_action(session, chosen("1.4.2"), 10))
        rollback = ApplicationRollback(
            session, guard, choice=chosen("1.4.2"), result=result
        )
        text = diagnosis(rollback)
    finally:
        session.close()
    assert text.startswith(
        "the rollback to 1.4.2 failed: the rollback command exited 4"
    )


def test_command_last_line_clipped(
    service: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VEEFORE_ADMIN_TOKEN", raising=False)
    command = "deploy_rollback = \"printf 'x%.0s' $(seq 5000) >&2; exit 4\""
    session = open_session(tmp_path, monkeypatch, service.base_url, command)
    try:
        action = rollback_action(session, chosen("1.4.2"), 10.0)
        result = perform(session, Guard(INCIDENT, True), action)
    finally:
        session.close()
    assert result.mode == "failed"
    assert ": " + "x" * 199 + "…;" in result.detail
    assert "x" * 200 not in result.detail


def test_no_method_refused(
    service: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VEEFORE_ADMIN_TOKEN", raising=False)
    session = open_session(tmp_path, monkeypatch, service.base_url)
    try:
        action = rollback_action(session, chosen("1.4.2"), 10.0)
        result = perform(session, Guard(INCIDENT, True), action)
    finally:
        session.close()
    assert result.mode == "refused"
    assert "target 'svc' has no deploy_rollback command" in result.detail
    assert "$VEEFORE_ADMIN_TOKEN is not set" in result.detail


def test_refused_diagnosis_wording(
    service: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VEEFORE_ADMIN_TOKEN", raising=False)
    session = open_session(tmp_path, monkeypatch, service.base_url)
    guard = Guard(INCIDENT, True)
    try:
        result = perform(session, guard, rollback_action(session, chosen("1.4.2"), 10))
        rollback = ApplicationRollback(
            session, guard, choice=chosen("1.4.2"), result=result
        )
        text = diagnosis(rollback)
    finally:
        session.close()
    assert text.startswith(
        "the rollback to 1.4.2 was refused: precondition 'rollback method' not met"
    )


class HugeHistory(BaseHTTPRequestHandler):
    """A target whose deployment history lists 20,000 versions, limit or not."""

    def do_GET(self) -> None:
        deployments = [
            {"version": f"0.{i}", "deployedAt": at_minutes(i - 20_000)}
            for i in range(20_000)
        ]
        body = json.dumps({"current": "2.0.0", "deployments": deployments}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def at_minutes(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def huge_history() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HugeHistory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_huge_history_refusal_sentence(
    huge_history: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = open_session(tmp_path, monkeypatch, huge_history)
    try:
        history = read_history(session)
        choice = choose_version(history, None, "9.9.9")
        record_choice(session.run, choice, history.current)
    finally:
        session.close()
    journal = (tmp_path / "a" / INCIDENT / "journal.jsonl").read_text()
    events = [json.loads(line) for line in journal.splitlines()]
    check = next(e for e in events if e.get("name") == "version to roll back to")
    assert isinstance(check["summary"], str)
    assert finding_line(check) == (
        "FAIL  version to roll back to: unknown version '9.9.9': the deployment"
        " history does not list it; known versions, newest first: 0.19999, 0.19998,"
        " 0.19997, 0.19996, 0.19995, 0.19994, 0.19993, 0.19992, 0.19991, 0.19990"
        " and 19990 more"
    )


def test_no_version_refused(
    service: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEEFORE_ADMIN_TOKEN", TOKEN)
    session = open_session(tmp_path, monkeypatch, service.base_url)
    choice = Choice(None, "", "unknown version '9.9.9'", "fail")
    try:
        result = perform(
            session, Guard(INCIDENT, True), rollback_action(session, choice, 10.0)
        )
        running = read_running_version(session)
    finally:
        session.close()
    assert result.mode == "refused"
    assert result.detail == (
        "precondition 'version chosen' not met: unknown version '9.9.9'"
    )
    assert running["version"] == "1.5.0"
