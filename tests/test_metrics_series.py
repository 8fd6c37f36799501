"""Tests of veerunbook.metrics_series and metrics_sampling on scrapes built by hand
and a loopback server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from veerunbook import metrics
from veerunbook import session as vr_session
from veerunbook.metrics_sampling import UNREACHABLE_RETRY_SECONDS
from veerunbook.metrics_series import (
    SERIES_COLUMNS,
    Sample,
    ScrapeResult,
    error_rate_series,
    intervals,
    sample_series,
    session_fetch,
    status_counts,
    unreachable_line,
    unreachable_reason,
    window_rate,
)


def exposition(start: float, ok: float, errors: float, scrapes: float) -> str:
    return (
        "# TYPE process_start_time_seconds gauge\n"
        f"process_start_time_seconds {start}\n"
        "# TYPE http_requests_total counter\n"
        f'http_requests_total{{method="GET",endpoint="/api/a",status_code="200"}}'
        f" {ok}\n"
        f'http_requests_total{{method="GET",endpoint="/api/a",status_code="500"}}'
        f" {errors}\n"
        f'http_requests_total{{method="GET",endpoint="/metrics",status_code="200"}}'
        f" {scrapes}\n"
    )


# Five scrapes 10 s apart from t=100; the third fails, and the process restarts
# (its start time changes from 50 to 135) between the fourth and the fifth.
# Interval t=100..110: user requests (150-100)+(20-10) = 60, 5xx 10, rate 1/6;
#   probe 6-5 = 1.
# Interval t=110..130 (over the failed scrape): (250-150)+(20-20) = 100, 5xx 0,
#   rate 0; probe 8-6 = 2.
# Interval t=130..140 (restart: later values count fully): 30+10 = 40, 5xx 10,
#   rate 0.25; probe 1.
SCRAPES: list[tuple[str | None, float]] = [
    (exposition(50, 100, 10, 5), 100.0),
    (exposition(50, 150, 20, 6), 110.0),
    (None, 120.0),
    (exposition(50, 250, 20, 8), 130.0),
    (exposition(135, 30, 10, 1), 140.0),
]


class Fetcher:
    """Returns the prepared scrapes in order, like a target that fails once."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> ScrapeResult:
        text, at = SCRAPES[self.calls]
        self.calls += 1
        if text is None:
            return ScrapeResult(None, "HTTP 503:\n  the exporter is restarting.")
        return ScrapeResult(metrics.parse_exposition(text, scraped_at=at))


@pytest.fixture
def series() -> list[Sample]:
    return sample_series(Fetcher(), window_seconds=0, samples=4)


def test_series_scrape_count(series: list[Sample]) -> None:
    assert len(series) == 5


def test_series_keeps_failed_scrape(series: list[Sample]) -> None:
    assert series[2].scrape is None
    assert series[2].problem == "HTTP 503: the exporter is restarting."


def test_series_times_aware_utc(series: list[Sample]) -> None:
    assert all(sample.at.tzinfo is UTC for sample in series)


def test_series_success_has_no_problem(series: list[Sample]) -> None:
    assert series[0].problem is None


def test_intervals_skip_failed(series: list[Sample]) -> None:
    pairs = intervals(series)
    assert [(before, after) for before, after in pairs] == [
        (series[0], series[1]),
        (series[1], series[3]),
        (series[3], series[4]),
    ]


def test_error_rate_series_requests(series: list[Sample]) -> None:
    rates = error_rate_series(series)
    assert rates["requests"].tolist() == [60.0, 100.0, 40.0]


def test_error_rate_series_errors(series: list[Sample]) -> None:
    assert error_rate_series(series)["5xx"].tolist() == [10.0, 0.0, 10.0]


def test_error_rate_series_rates(series: list[Sample]) -> None:
    rates = error_rate_series(series)["rate"].tolist()
    assert rates == pytest.approx([1 / 6, 0.0, 0.25])


def test_error_rate_series_seconds(series: list[Sample]) -> None:
    assert error_rate_series(series)["seconds"].tolist() == [10.0, 20.0, 10.0]


def test_error_rate_series_probe_apart(series: list[Sample]) -> None:
    rates = error_rate_series(series)
    assert rates["probe requests"].tolist() == [1.0, 2.0, 1.0]
    assert rates["probe 5xx"].tolist() == [0.0, 0.0, 0.0]


def test_error_rate_series_restart_partial(series: list[Sample]) -> None:
    assert error_rate_series(series)["partial"].tolist() == [False, False, True]


def test_error_rate_series_restart_note(series: list[Sample]) -> None:
    notes = error_rate_series(series)["notes"].tolist()
    assert "process_start_time_seconds changed from 50 to 135" in notes[2]


def test_error_rate_series_end_times(series: list[Sample]) -> None:
    ends = error_rate_series(series)["end"].tolist()
    assert ends == [series[1].at, series[3].at, series[4].at]


def test_error_rate_series_empty() -> None:
    rates = error_rate_series([])
    assert rates.empty
    assert tuple(rates.columns) == SERIES_COLUMNS


def test_error_rate_series_no_exclude(series: list[Sample]) -> None:
    # Without exclusion the /metrics scrapes count as user requests: 61, 102, 41.
    rates = error_rate_series(series, exclude=None)
    assert rates["requests"].tolist() == [61.0, 102.0, 41.0]


def test_window_rate_sums_intervals(series: list[Sample]) -> None:
    # 60 + 100 + 40 = 200 requests, 10 + 0 + 10 = 20 5xx: 10 %, over 40 s.
    window = window_rate(series)
    assert window is not None
    assert window.requests == 200.0
    assert window.errors == 20.0
    assert window.rate == pytest.approx(0.10)
    assert window.window_seconds == 40.0


def test_window_rate_probe_apart(series: list[Sample]) -> None:
    window = window_rate(series)
    assert window is not None
    assert window.probe_requests == 4.0
    assert window.probe_errors == 0.0


def test_window_rate_routes(series: list[Sample]) -> None:
    window = window_rate(series)
    assert window is not None
    route = window.route("/api/a", "GET")
    assert route is not None
    assert route.requests == 200.0
    assert route.errors == 20.0


def test_window_rate_restart_flags(series: list[Sample]) -> None:
    window = window_rate(series)
    assert window is not None
    assert window.restart_detected
    assert window.partial


def test_window_rate_needs_interval() -> None:
    only = sample_series(
        lambda: ScrapeResult(None, "HTTP 500: down"), window_seconds=0, samples=1
    )
    assert window_rate(only) is None


def test_status_counts(series: list[Sample]) -> None:
    # 200: 50 + 100 + 30 = 180; 500: 10 + 0 + 10 = 20; /metrics is left out.
    assert status_counts(series) == {"200": 180.0, "500": 20.0}


def test_status_counts_single_reset() -> None:
    # Only the 500 series fell (12 -> 3) and the start time stayed, so that series
    # was reset: its increase is 3. The 200 series grew 40 -> 70: 30.
    texts = [exposition(50, 40, 12, 1), exposition(50, 70, 3, 2)]
    scrapes = iter(texts)
    series = sample_series(
        lambda: ScrapeResult(metrics.parse_exposition(next(scrapes))),
        window_seconds=0,
        samples=1,
    )
    assert status_counts(series) == {"200": 30.0, "500": 3.0}


def test_scraped_at_filled_in() -> None:
    series = sample_series(
        lambda: ScrapeResult(metrics.parse_exposition(exposition(1, 1, 0, 0))),
        window_seconds=0,
        samples=1,
    )
    scrape = series[0].scrape
    assert scrape is not None
    assert scrape.scraped_at == series[0].at.timestamp()


class FakeClock:
    """A monotonic clock that only the recorded sleeps advance."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def test_sleeps_spread_over_window() -> None:
    # 20 s over 4 intervals: a scrape is due every 5 s.
    clock = FakeClock()
    sample_series(
        Fetcher(), window_seconds=20, samples=4, sleep=clock.sleep, clock=clock
    )
    assert clock.sleeps == [5.0, 5.0, 5.0, 5.0]


def test_slow_scrape_shortens_wait() -> None:
    # Each scrape takes 2 s of the 5 s between scrapes, so the waits are 3 s.
    clock = FakeClock()
    fetcher = Fetcher()

    def slow_fetch() -> ScrapeResult:
        clock.now += 2.0
        return fetcher()

    sample_series(
        slow_fetch, window_seconds=20, samples=4, sleep=clock.sleep, clock=clock
    )
    assert clock.sleeps == [3.0, 3.0, 3.0, 3.0]


def test_wait_work_counts_toward_wait() -> None:
    # The work takes 1.5 s of the first 5 s wait and runs once.
    clock = FakeClock()
    calls: list[float] = []

    def work() -> None:
        calls.append(clock.now)
        clock.now += 1.5

    sample_series(
        Fetcher(),
        window_seconds=20,
        samples=4,
        sleep=clock.sleep,
        clock=clock,
        while_waiting=work,
    )
    assert calls == [0.0]
    assert clock.sleeps == [3.5, 5.0, 5.0, 5.0]


def test_no_wait_work_without_window() -> None:
    calls: list[int] = []
    sample_series(
        Fetcher(), window_seconds=0, samples=2, while_waiting=lambda: calls.append(1)
    )
    assert calls == []


def test_long_wait_split_for_progress() -> None:
    # 24 s in one interval: pieces of 5, 5, 5, 5 and 4 s.
    clock = FakeClock()
    texts = iter([exposition(1, 1, 0, 0)] * 2)
    sample_series(
        lambda: ScrapeResult(metrics.parse_exposition(next(texts))),
        window_seconds=24,
        samples=1,
        sleep=clock.sleep,
        clock=clock,
    )
    assert clock.sleeps == [5.0, 5.0, 5.0, 5.0, 4.0]


def test_progress_reports() -> None:
    clock = FakeClock()
    lines: list[str] = []
    sample_series(
        Fetcher(),
        window_seconds=20,
        samples=4,
        progress=lines.append,
        sleep=clock.sleep,
        clock=clock,
    )
    assert lines[0] == "sampling metrics: scrape 2 of 5 next, 20 s of the window left"
    assert lines[-1] == "5 scrapes done, 1 failed"


def test_progress_at_most_every_five_seconds() -> None:
    # Scrapes 1 s apart over 10 s: reports with 10 s and 5 s left, then the total.
    clock = FakeClock()
    lines: list[str] = []
    texts = iter([exposition(1, 1, 0, 0)] * 11)
    sample_series(
        lambda: ScrapeResult(metrics.parse_exposition(next(texts))),
        window_seconds=10,
        samples=10,
        progress=lines.append,
        sleep=clock.sleep,
        clock=clock,
    )
    assert lines == [
        "sampling metrics: scrape 2 of 11 next, 10 s of the window left",
        "sampling metrics: scrape 7 of 11 next, 5 s of the window left",
        "11 scrapes done, 0 failed",
    ]


def test_samples_must_be_positive() -> None:
    with pytest.raises(ValueError, match="samples must be at least 1"):
        sample_series(Fetcher(), window_seconds=1, samples=0)


def test_window_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="window_seconds must not be negative"):
        sample_series(Fetcher(), window_seconds=-1, samples=1)


# A target that does not respond: one retry, then sampling stops.

REFUSED = ScrapeResult(None, "127.0.0.1 refused the connection.", "connection refused")


class Answers:
    """Returns the given results in order, then successful scrapes."""

    def __init__(self, *results: ScrapeResult) -> None:
        self.results = list(results)
        self.calls = 0

    def __call__(self) -> ScrapeResult:
        self.calls += 1
        if self.results:
            return self.results.pop(0)
        return ScrapeResult(metrics.parse_exposition(exposition(1, 1, 0, 0)))


def test_unreachable_stops_after_retry() -> None:
    clock = FakeClock()
    fetch = Answers(REFUSED, REFUSED)
    series = sample_series(
        fetch, window_seconds=30, samples=6, sleep=clock.sleep, clock=clock
    )
    assert fetch.calls == 2
    assert len(series) == 2
    assert clock.sleeps == [UNREACHABLE_RETRY_SECONDS]


def test_unreachable_reason_of_series() -> None:
    series = sample_series(Answers(REFUSED, REFUSED), window_seconds=0, samples=6)
    assert unreachable_reason(series) == "connection refused"


def test_unreachable_progress() -> None:
    lines: list[str] = []
    clock = FakeClock()
    sample_series(
        Answers(REFUSED, REFUSED),
        window_seconds=30,
        samples=6,
        progress=lines.append,
        sleep=clock.sleep,
        clock=clock,
    )
    assert lines == [
        "the first scrape got no response (connection refused); retrying once in 3 s",
        "2 scrapes done, 2 failed; sampling stopped because the target did not"
        " answer: connection refused",
    ]


def test_retry_success_continues() -> None:
    # Refused at t=0 and a response at t=3. Scrapes are due every 5 s until t=20.
    clock = FakeClock()
    series = sample_series(
        Answers(REFUSED), window_seconds=20, samples=4, sleep=clock.sleep, clock=clock
    )
    assert len(series) == 6
    assert clock.sleeps == [3.0, 2.0, 5.0, 5.0, 5.0]
    assert unreachable_reason(series) is None


def test_retry_skips_passed_scrapes() -> None:
    # Scrapes due every 1 s until t=4; those due at t=1 and t=2 passed during the
    # retry at t=3, so the series is: refused, retry, t=3, t=4.
    clock = FakeClock()
    series = sample_series(
        Answers(REFUSED), window_seconds=4, samples=4, sleep=clock.sleep, clock=clock
    )
    assert len(series) == 4
    assert clock.sleeps == [3.0, 1.0]


def test_http_error_not_retried() -> None:
    # A 503 is a response, so the window is sampled as planned.
    clock = FakeClock()
    fetch = Answers(ScrapeResult(None, "HTTP 503: restarting"))
    series = sample_series(
        fetch, window_seconds=20, samples=4, sleep=clock.sleep, clock=clock
    )
    assert len(series) == 5
    assert clock.sleeps == [5.0, 5.0, 5.0, 5.0]
    assert unreachable_reason(series) is None


def test_later_refusal_keeps_sampling() -> None:
    fetch = Answers(ScrapeResult(metrics.parse_exposition("")), REFUSED, REFUSED)
    series = sample_series(fetch, window_seconds=0, samples=4)
    assert len(series) == 5
    assert unreachable_reason(series) is None


def test_unreachable_line() -> None:
    assert unreachable_line("connection refused", "http://127.0.0.1:9") == (
        "target unreachable: connection refused at http://127.0.0.1:9"
        " (every request failed); check that the service is running, then run"
        " triage"
    )


# Series that appear within the window.

NEW_SERIES = [
    # Only /api/a 200 before the window.
    "# TYPE http_requests_total counter\n"
    'http_requests_total{method="GET",endpoint="/api/a",status_code="200"} 10\n',
    # Then /api/a 500 and /api/b 200 appear.
    "# TYPE http_requests_total counter\n"
    'http_requests_total{method="GET",endpoint="/api/a",status_code="200"} 12\n'
    'http_requests_total{method="GET",endpoint="/api/a",status_code="500"} 1\n'
    'http_requests_total{method="GET",endpoint="/api/b",status_code="200"} 4\n',
]


def new_series() -> list[Sample]:
    texts = iter(NEW_SERIES)
    return sample_series(
        lambda: ScrapeResult(metrics.parse_exposition(next(texts))),
        window_seconds=0,
        samples=1,
    )


def test_new_series_counted() -> None:
    # 2 + 1 + 4 = 7 requests, all of the new series counted.
    window = window_rate(new_series())
    assert window is not None
    assert window.requests == 7.0


def test_new_series_window_note() -> None:
    window = window_rate(new_series())
    assert window is not None
    assert window.notes == [
        "2 route and status combinations had no requests before the window;"
        " all their requests count."
    ]


def test_new_series_interval_note() -> None:
    notes = error_rate_series(new_series())["notes"].tolist()
    assert notes == [
        "2 route and status combinations had no requests before the interval;"
        " all their requests count."
    ]


# session_fetch against a real metrics endpoint on loopback.

METRICS_TEXT = exposition(50, 9, 1, 2)


class MetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/broken":
            self.send_error(503, "restarting")
            return
        body = METRICS_TEXT.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture
def metrics_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_session_fetch_parses(metrics_url: str, tmp_path: Path) -> None:
    session = vr_session.begin("series-test", target=metrics_url, archive=str(tmp_path))
    try:
        result = session_fetch(session)()
    finally:
        session.close()
    assert result.problem is None
    assert result.unreachable is None
    assert result.scrape is not None
    assert metrics.gauge(result.scrape, "process_start_time_seconds") == 50.0


def test_session_fetch_records_probe(metrics_url: str, tmp_path: Path) -> None:
    session = vr_session.begin("series-test", target=metrics_url, archive=str(tmp_path))
    try:
        session_fetch(session)()
        session_fetch(session, record=False)()
        names = [check.name for check in session.run.checks]
    finally:
        session.close()
    assert names == ["metrics scrape"]


def test_session_fetch_refused(tmp_path: Path) -> None:
    url = closed_port_url()
    session = vr_session.begin("series-test", target=url, archive=str(tmp_path))
    try:
        result = session_fetch(session)()
    finally:
        session.close()
    assert result.scrape is None
    assert result.unreachable == "connection refused"
    assert result.problem == "127.0.0.1 refused the connection."


def test_session_fetch_http_error(metrics_url: str, tmp_path: Path) -> None:
    session = vr_session.begin("series-test", target=metrics_url, archive=str(tmp_path))
    try:
        result = session_fetch(session, "/broken", record=False)()
    finally:
        session.close()
    assert result.scrape is None
    assert result.unreachable is None
    assert result.problem is not None
    assert result.problem.startswith("HTTP 503: ")


def test_refused_target_sampled_briefly(tmp_path: Path) -> None:
    url = closed_port_url()
    clock = FakeClock()
    session = vr_session.begin("series-test", target=url, archive=str(tmp_path))
    try:
        series = sample_series(
            session_fetch(session, record=False),
            window_seconds=30,
            samples=6,
            sleep=clock.sleep,
            clock=clock,
        )
    finally:
        session.close()
    assert len(series) == 2
    assert clock.sleeps == [UNREACHABLE_RETRY_SECONDS]
    assert unreachable_reason(series) == "connection refused"
