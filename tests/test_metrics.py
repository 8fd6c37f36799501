"""Tests of veerunbook.metrics: parsing, error rates, latency quantiles and gauges.

The three fixture folders are expositions written the way a Node.js service's exporter
writes them, each with a README that states the values a correct tool must produce.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.parser import text_string_to_metric_families

from veerunbook.metrics import (
    Quantile,
    Scrape,
    database_pool,
    error_rate,
    gauge,
    histogram_quantile,
    latency_quantiles,
    parse_exposition,
    process_memory,
)

FIXTURES = Path(__file__).parent / "fixtures"
NO_INF = FIXTURES / "veefore-histogram-no-inf-bucket"
UNESCAPED = FIXTURES / "veefore-unescaped-label-values"
RESET = FIXTURES / "veefore-counter-reset-between-scrapes"

DASHBOARD = "/api/dashboard/analytics"


def read(path: Path, scraped_at: float | None = None) -> Scrape:
    return parse_exposition(path.read_text(encoding="utf-8"), scraped_at=scraped_at)


def reset_scrapes() -> tuple[Scrape, Scrape]:
    """Return the two scrapes of the reset fixture, timed as scrapes.json records."""
    meta = json.loads((RESET / "scrapes.json").read_text(encoding="utf-8"))
    before, after = (
        read(RESET / item["file"], datetime.fromisoformat(item["time"]).timestamp())
        for item in meta["scrapes"]
    )
    return before, after


def q(stats_quantile: Quantile | None) -> Quantile:
    assert stats_quantile is not None
    return stats_quantile


# Histograms without a +Inf bucket.


def test_no_inf_scrape_is_valid() -> None:
    scrape = read(NO_INF / "metrics.txt")
    assert scrape.valid
    assert scrape.rejected_lines == []


def test_no_inf_warned_per_series() -> None:
    scrape = read(NO_INF / "metrics.txt")
    flagged = [w for w in scrape.warnings if 'no le="+Inf" bucket' in w.message]
    assert [w.line for w in flagged] == [22, 32, 42, 52, 64, 72]
    assert sum("http_request_duration_seconds{" in w.message for w in flagged) == 4
    assert sum("api_response_size_bytes{" in w.message for w in flagged) == 2


def test_no_inf_bucket_synthesized_from_count() -> None:
    scrape = read(NO_INF / "metrics.txt")
    added = [
        s
        for s in scrape.find("http_request_duration_seconds_bucket")
        if s.labels.get("le") == "+Inf" and s.labels["endpoint"] == DASHBOARD
    ]
    assert len(added) == 1
    assert added[0].value == 1000
    assert added[0].line is None


def test_dashboard_p95_is_at_least_10s() -> None:
    stats = latency_quantiles(None, read(NO_INF / "metrics.txt")).route(DASHBOARD)
    assert stats is not None
    p95 = q(stats.quantile(0.95))
    assert p95.value == 10.0
    assert p95.lower_bound
    assert p95.exceeds(2.0) is True
    assert stats.count == 1000
    assert stats.overflow == 60
    assert stats.largest_bound == 10.0


def test_generate_image_p95_is_at_least_10s() -> None:
    report = latency_quantiles(None, read(NO_INF / "metrics.txt"))
    stats = report.route("/api/ai/generate-image", "POST")
    assert stats is not None
    p95 = q(stats.quantile(0.95))
    assert p95.value == 10.0
    assert p95.lower_bound
    assert stats.overflow == 22


def test_user_quantiles_interpolated() -> None:
    stats = latency_quantiles(None, read(NO_INF / "metrics.txt")).route("/api/user")
    assert stats is not None
    p95 = q(stats.quantile(0.95))
    p99 = q(stats.quantile(0.99))
    assert p95.value == pytest.approx(0.0903, abs=5e-5)
    assert p99.value == pytest.approx(0.0996, abs=5e-5)
    assert not p95.lower_bound
    assert not p99.lower_bound
    assert stats.overflow == 0


def test_aggregate_p95_excludes_metrics_route() -> None:
    aggregate = latency_quantiles(None, read(NO_INF / "metrics.txt")).aggregate
    assert aggregate is not None
    assert aggregate.count == 3480
    p95 = q(aggregate.quantile(0.95))
    assert p95.value == pytest.approx(0.5 + 0.5 * 28 / 44)
    assert p95.value == pytest.approx(0.818, abs=5e-4)
    p99 = q(aggregate.quantile(0.99))
    assert p99.value == 10.0
    assert p99.lower_bound


def test_aggregate_p95_including_metrics_route() -> None:
    scrape = read(NO_INF / "metrics.txt")
    aggregate = latency_quantiles(None, scrape, exclude=None).aggregate
    assert aggregate is not None
    assert aggregate.count == 3600
    assert q(aggregate.quantile(0.95)).value == pytest.approx(0.750, abs=5e-4)


def test_metrics_route_marked_as_probe() -> None:
    stats = latency_quantiles(None, read(NO_INF / "metrics.txt")).route("/metrics")
    assert stats is not None
    assert stats.probe


def test_histogram_means() -> None:
    report = latency_quantiles(None, read(NO_INF / "metrics.txt"))
    dashboard = report.route(DASHBOARD)
    generate = report.route("/api/ai/generate-image")
    assert dashboard is not None
    assert generate is not None
    assert dashboard.mean == pytest.approx(1.969, abs=5e-4)
    assert generate.mean == pytest.approx(15.53, abs=5e-3)


def test_size_histogram_unusable() -> None:
    scrape = read(NO_INF / "metrics.txt")
    report = latency_quantiles(None, scrape, metric="api_response_size_bytes")
    assert len(report.series) == 2
    for stats in report.series:
        assert not stats.usable
        assert all(quantile.value is None for quantile in stats.quantiles)
        assert stats.overflow == stats.count
        assert any("unit" in note for note in stats.notes)


def test_size_histogram_means() -> None:
    scrape = read(NO_INF / "metrics.txt")
    report = latency_quantiles(None, scrape, metric="api_response_size_bytes")
    dashboard = report.route(DASHBOARD)
    user = report.route("/api/user")
    assert dashboard is not None
    assert user is not None
    assert dashboard.mean == pytest.approx(18734)
    assert user.mean == pytest.approx(1843)


def test_no_inf_error_rate_without_probes() -> None:
    rate = error_rate(None, read(NO_INF / "metrics.txt"))
    assert rate.requests == 3480
    assert rate.errors == 9
    assert rate.rate == pytest.approx(0.00259, abs=5e-6)
    assert rate.probe_requests == 120
    assert not rate.partial


def test_no_inf_error_rate_with_probes() -> None:
    rate = error_rate(None, read(NO_INF / "metrics.txt"), exclude=None)
    assert rate.requests == 3600
    assert rate.rate == pytest.approx(0.0025)


# Label values written without escaping.


def test_library_parser_stops_at_bad_line() -> None:
    text = (UNESCAPED / "metrics.txt").read_text(encoding="utf-8")
    with pytest.raises(ValueError):
        list(text_string_to_metric_families(text))


def test_unescaped_lines_rejected() -> None:
    scrape = read(UNESCAPED / "metrics.txt")
    assert not scrape.valid
    assert scrape.rejected_lines == [15, 17, *range(31, 41)]


def test_unescaped_rejections_warned_by_line() -> None:
    scrape = read(UNESCAPED / "metrics.txt")
    rejected = {
        w.line for w in scrape.warnings if "rejected by the parser" in w.message
    }
    assert rejected == {15, 17, *range(31, 41)}


def test_unescaped_whole_scrape_verdict() -> None:
    scrape = read(UNESCAPED / "metrics.txt")
    summary = [w for w in scrape.warnings if w.line is None]
    assert len(summary) == 1
    assert "15, 17, 31-40" in summary[0].message
    assert "up == 0" in summary[0].message


def test_unescaped_cause_named() -> None:
    scrape = read(UNESCAPED / "metrics.txt")
    messages = {w.line: w.message for w in scrape.warnings}
    assert "backslash that escapes its closing quote" in messages[15]
    assert 'unescaped "' in messages[17]


def test_invalid_escape_accepted_with_warning() -> None:
    scrape = read(UNESCAPED / "metrics.txt")
    messages = {w.line: w.message for w in scrape.warnings}
    assert "\\." in messages[14]
    assert "\\w" in messages[14]
    kept = [s for s in scrape.find("http_requests_total") if s.line == 14]
    assert len(kept) == 1
    assert kept[0].labels["endpoint"] == "/api/..\\..\\..\\windows\\win.ini"
    assert kept[0].value == 3


def test_unescaped_valid_lines_kept() -> None:
    scrape = read(UNESCAPED / "metrics.txt")
    lines = {s.line for s in scrape.find("http_requests_total")}
    assert lines == {7, 8, 9, 10, 11, 12, 13, 14, 16}
    assert scrape.types["http_requests"] == "counter"
    assert scrape.types["http_request_duration_seconds"] == "histogram"


def test_unescaped_error_rate() -> None:
    rate = error_rate(None, read(UNESCAPED / "metrics.txt"))
    assert rate.errors == 96 + 14
    assert rate.requests == 7911
    assert rate.rate == pytest.approx(0.0139, abs=5e-5)
    assert rate.partial
    assert any("15, 17, 31-40" in note for note in rate.notes)


def test_unescaped_dashboard_p95() -> None:
    report = latency_quantiles(None, read(UNESCAPED / "metrics.txt"))
    stats = report.route(DASHBOARD)
    assert stats is not None
    assert stats.count == 5306
    assert q(stats.quantile(0.95)).value == pytest.approx(0.496, abs=5e-4)
    assert report.route("/static/C:\\") is None


# A process restart between two scrapes.


def test_restart_detected_from_uptime() -> None:
    before, after = reset_scrapes()
    rate = error_rate(before, after)
    assert rate.restart_detected
    assert rate.reset_detected
    assert any("86234.5 s to 3.2 s" in note for note in rate.notes)


def test_restart_error_rate() -> None:
    before, after = reset_scrapes()
    rate = error_rate(before, after)
    assert rate.requests == 180 + 22 + 410 + 30
    assert rate.errors == 22 + 30
    assert rate.rate == pytest.approx(0.0810, abs=5e-5)


def test_restart_error_rate_with_probes() -> None:
    before, after = reset_scrapes()
    rate = error_rate(before, after, exclude=None)
    assert rate.requests == 643
    assert rate.rate == pytest.approx(0.0809, abs=5e-5)


def test_restart_counts_new_series() -> None:
    before, after = reset_scrapes()
    user = error_rate(before, after).route("/api/user", "GET")
    assert user is not None
    assert user.errors == 30
    assert user.requests == 440


def test_restart_never_negative() -> None:
    before, after = reset_scrapes()
    rate = error_rate(before, after, exclude=None)
    assert rate.requests >= 0
    assert rate.errors >= 0
    for route in rate.routes:
        assert route.requests >= 0
        assert route.errors >= 0


def test_restart_marked_partial() -> None:
    before, after = reset_scrapes()
    rate = error_rate(before, after)
    assert rate.partial
    assert rate.window_seconds == 120
    assert any("neither confirmed nor ruled out" in note for note in rate.notes)
    assert any("3 series of the earlier scrape" in note for note in rate.notes)


# Windows over a real exporter on loopback.


@pytest.fixture
def exporter() -> Iterator[tuple[CollectorRegistry, str]]:
    registry = CollectorRegistry()
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield registry, f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def scrape_url(url: str, scraped_at: float) -> Scrape:
    with httpx.Client(trust_env=False, timeout=5.0) as client:
        response = client.get(url)
    response.raise_for_status()
    return parse_exposition(response.text, scraped_at=scraped_at)


def test_plain_window_error_rate(exporter: tuple[CollectorRegistry, str]) -> None:
    registry, url = exporter
    requests = Counter(
        "http_requests",
        "Requests",
        ["method", "endpoint", "status_code"],
        registry=registry,
    )
    requests.labels("GET", "/api/user", "200").inc(100)
    requests.labels("GET", "/metrics", "200").inc(5)
    before = scrape_url(url, 1000.0)

    requests.labels("GET", "/api/user", "200").inc(90)
    requests.labels("GET", "/api/user", "500").inc(10)
    requests.labels("GET", "/metrics", "200").inc(2)
    after = scrape_url(url, 1060.0)

    rate = error_rate(before, after)
    assert before.valid
    assert rate.requests == 100
    assert rate.errors == 10
    assert rate.rate == pytest.approx(0.1)
    assert rate.probe_requests == 2
    assert rate.window_seconds == 60
    assert not rate.restart_detected
    assert not rate.reset_detected
    assert not rate.partial


def test_plain_window_latency(exporter: tuple[CollectorRegistry, str]) -> None:
    registry, url = exporter
    latency = Histogram(
        "http_request_duration_seconds",
        "Latency",
        ["method", "endpoint"],
        buckets=(0.1, 0.5, 1.0),
        registry=registry,
    )
    for _ in range(50):
        latency.labels("GET", "/api/user").observe(0.05)
    before = scrape_url(url, 0.0)

    for _ in range(100):
        latency.labels("GET", "/api/user").observe(0.3)
    after = scrape_url(url, 30.0)

    report = latency_quantiles(before, after)
    stats = report.route("/api/user")
    assert before.warnings == []
    assert stats is not None
    assert stats.count == 100
    assert stats.mean == pytest.approx(0.3)
    assert q(stats.quantile(0.5)).value == pytest.approx(0.3)
    assert not report.partial


def test_process_memory_from_collector(
    exporter: tuple[CollectorRegistry, str],
) -> None:
    registry, url = exporter
    ProcessCollector(registry=registry)
    memory = process_memory(scrape_url(url, 0.0))
    assert memory.rss_bytes is not None
    assert memory.rss_bytes > 0
    assert memory.sources == ["process_resident_memory_bytes"]


# Counter resets written by hand.

SERIES_RESET_BEFORE = """\
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1000
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/a",code="200"} 500
http_requests_total{method="GET",route="/a",code="503"} 40
"""

SERIES_RESET_AFTER = """\
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1000
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/a",code="200"} 560
http_requests_total{method="GET",route="/a",code="503"} 4
"""


def test_series_reset_without_restart() -> None:
    before = parse_exposition(SERIES_RESET_BEFORE, scraped_at=2000.0)
    after = parse_exposition(SERIES_RESET_AFTER, scraped_at=2060.0)
    rate = error_rate(before, after)
    assert not rate.restart_detected
    assert rate.reset_detected
    assert rate.requests == 60 + 4
    assert rate.errors == 4
    assert rate.partial
    assert any("without a process restart" in note for note in rate.notes)


def test_restart_detected_from_start_time() -> None:
    before = parse_exposition(SERIES_RESET_BEFORE, scraped_at=2000.0)
    restarted = SERIES_RESET_AFTER.replace(
        "process_start_time_seconds 1000", "process_start_time_seconds 2050"
    )
    after = parse_exposition(restarted, scraped_at=2060.0)
    rate = error_rate(before, after)
    assert rate.restart_detected
    assert rate.requests == 560 + 4
    assert any("restarted 10 s before" in note for note in rate.notes)


def test_restart_detected_from_counters() -> None:
    before = parse_exposition(SERIES_RESET_BEFORE.split("\n", 2)[2])
    after = parse_exposition(
        SERIES_RESET_AFTER.split("\n", 2)[2].replace("} 560", "} 7")
    )
    rate = error_rate(before, after)
    assert rate.restart_detected
    assert rate.requests == 7 + 4


def test_scrapes_out_of_order_rejected() -> None:
    before = parse_exposition(SERIES_RESET_BEFORE, scraped_at=2000.0)
    after = parse_exposition(SERIES_RESET_AFTER, scraped_at=1000.0)
    with pytest.raises(ValueError, match="time order"):
        error_rate(before, after)


def test_invalid_exclude_rejected() -> None:
    with pytest.raises(ValueError, match="exclude pattern"):
        error_rate(None, parse_exposition(SERIES_RESET_AFTER), exclude="(")


# Quantile estimation.


def test_quantile_outside_range_rejected() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        histogram_quantile(1.5, {1.0: 1.0, float("inf"): 1.0})


def test_quantile_without_inf_bucket_unknown() -> None:
    assert histogram_quantile(0.5, {1.0: 1.0, 2.0: 2.0}).value is None


def test_quantile_forces_monotonic_counts() -> None:
    estimate = histogram_quantile(0.5, {1.0: 10.0, 2.0: 8.0, float("inf"): 10.0})
    assert estimate.value == pytest.approx(0.5)


def decreasing_histogram(scale: int) -> str:
    """Return a histogram whose cumulative bucket counts fall as the bound grows.

    Raising the counts to a running maximum would give a p95 of 95 ms.
    """
    lines = ["# TYPE http_request_duration_seconds histogram"]
    labels = 'route="/api/x",method="GET"'
    for le, count in (("0.1", 1000), ("0.5", 500), ("1", 100), ("2", 10), ("+Inf", 1)):
        lines.append(
            f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} '
            f"{count * scale}"
        )
    lines.append(f"http_request_duration_seconds_count{{{labels}}} {scale}")
    return "\n".join(lines) + "\n"


def test_decreasing_buckets_not_monotonic() -> None:
    stats = latency_quantiles(None, parse_exposition(decreasing_histogram(1))).route(
        "/api/x"
    )
    assert stats is not None
    assert not stats.monotonic
    assert not stats.usable
    assert [quantile.value for quantile in stats.quantiles] == [None, None, None]


def test_decreasing_buckets_noted() -> None:
    stats = latency_quantiles(None, parse_exposition(decreasing_histogram(1))).route(
        "/api/x"
    )
    assert stats is not None
    assert len(stats.notes) == 1
    assert stats.notes[0].startswith(
        'the bucket counts decrease at le="0.5", le="1", le="2", le="+Inf", but'
    )


def test_decreasing_buckets_spoil_aggregate() -> None:
    report = latency_quantiles(None, parse_exposition(decreasing_histogram(1)))
    assert report.aggregate is not None
    assert not report.aggregate.usable
    assert report.aggregate.quantile(0.95) == Quantile(0.95, None)
    assert report.aggregate.notes[0].startswith(
        "the sum includes 1 series whose bucket counts decrease"
    )


def test_decreasing_buckets_in_report_notes() -> None:
    report = latency_quantiles(None, parse_exposition(decreasing_histogram(1)))
    assert any("bucket counts of 1 histogram series" in n for n in report.notes)


def test_decreasing_buckets_in_window() -> None:
    before = parse_exposition(decreasing_histogram(1), scraped_at=0.0)
    after = parse_exposition(decreasing_histogram(2), scraped_at=30.0)
    report = latency_quantiles(before, after)
    stats = report.route("/api/x")
    assert stats is not None
    assert not stats.monotonic
    assert stats.quantile(0.95) == Quantile(0.95, None)
    assert not report.reset_detected


def test_decreasing_probe_route_keeps_aggregate() -> None:
    text = decreasing_histogram(1).replace("/api/x", "/metrics")
    text += 'http_request_duration_seconds_bucket{route="/api/y",le="0.1"} 5\n'
    text += 'http_request_duration_seconds_bucket{route="/api/y",le="+Inf"} 10\n'
    report = latency_quantiles(None, parse_exposition(text))
    assert report.aggregate is not None
    assert report.aggregate.monotonic
    assert q(report.aggregate.quantile(0.5)).value == pytest.approx(0.1)


def test_equal_buckets_are_monotonic() -> None:
    text = 'h_bucket{le="0.1"} 4\nh_bucket{le="1"} 4\nh_bucket{le="+Inf"} 4\n'
    stats = latency_quantiles(None, parse_exposition(text), metric="h").aggregate
    assert stats is not None
    assert stats.monotonic
    assert stats.usable
    assert stats.notes == []


def test_decreasing_buckets_json_safe() -> None:
    report = latency_quantiles(None, parse_exposition(decreasing_histogram(1)))
    json.dumps(report.to_dict(), allow_nan=False)


def test_lower_bound_below_threshold_unknown() -> None:
    assert Quantile(0.95, 10.0, lower_bound=True).exceeds(20.0) is None


# Gauges.


POOL = """\
# TYPE database_connections gauge
database_connections{state="active"} 17
database_connections{state="idle"} 3
database_connections{state="waiting"} 4
# TYPE database_connections_max gauge
database_connections_max 20
"""


def test_gauge_matches_labels() -> None:
    before, _ = reset_scrapes()
    assert gauge(before, "nodejs_memory_usage_bytes", type="rss") == 931258368


def test_gauge_missing_is_none() -> None:
    before, _ = reset_scrapes()
    assert gauge(before, "nodejs_memory_usage_bytes", type="external") is None


def test_database_pool_utilisation() -> None:
    pool = database_pool(parse_exposition(POOL))
    assert pool.active == 17
    assert pool.max == 20
    assert pool.utilisation == pytest.approx(0.85)
    assert pool.waiting == 4
    assert any("exhausted" in note for note in pool.notes)


def test_database_pool_separate_gauges() -> None:
    text = "database_connections_active 5\ndatabase_connections_max 10\n"
    pool = database_pool(parse_exposition(text))
    assert pool.utilisation == pytest.approx(0.5)


def test_database_pool_unknown_max() -> None:
    pool = database_pool(parse_exposition('database_connections{state="active"} 5'))
    assert pool.utilisation is None
    assert pool.notes != []


def test_process_memory_from_node_gauges() -> None:
    _, after = reset_scrapes()
    memory = process_memory(after)
    assert memory.rss_bytes == 171245568
    assert memory.heap_utilisation == pytest.approx(88123456 / 121634816)


# Parser robustness.


def test_counter_without_total_keeps_name() -> None:
    scrape = parse_exposition("# TYPE jobs counter\njobs 3\n")
    assert [s.name for s in scrape.samples] == ["jobs"]
    assert scrape.type_of("jobs") == "counter"


def test_special_values_parsed() -> None:
    text = "a NaN\nb +Inf\nc -Inf\nd 1" + "0" * 400 + "\n"
    values = [s.value for s in parse_exposition(text).samples]
    assert values[0] != values[0]
    assert values[1:] == [float("inf"), float("-inf"), float("inf")]


def test_crlf_line_endings_parsed() -> None:
    scrape = parse_exposition("# TYPE up gauge\r\nup 1\r\n")
    assert scrape.valid
    assert gauge(scrape, "up") == 1


def test_empty_body_parsed() -> None:
    scrape = parse_exposition("")
    assert scrape.samples == []
    assert scrape.valid


def test_results_are_json_safe() -> None:
    text = "# TYPE http_requests_total counter\n"
    text += 'http_requests_total{method="GET",path="/x",status="500"} NaN\n'
    text += 'http_requests_total{method="GET",path="/y",status="200"} +Inf\n'
    scrape = parse_exposition(text)
    for result in (
        scrape.to_dict(),
        error_rate(None, scrape).to_dict(),
        latency_quantiles(None, scrape).to_dict(),
        database_pool(scrape).to_dict(),
        process_memory(scrape).to_dict(),
    ):
        json.dumps(result, allow_nan=False)


def test_parse_never_raises_on_random_input() -> None:
    base = (UNESCAPED / "metrics.txt").read_text(encoding="utf-8")
    alphabet = '{}"\\=,# \n\t\rale+Inf0123456789._-NaN\x00\x85é'
    rng = random.Random(20261204)
    previous = parse_exposition(base)
    for case in range(400):
        if case % 3 == 0:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        elif case % 3 == 1:
            raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
            text = raw.decode("latin-1")
        else:
            chars = list(base)
            for _ in range(rng.randint(1, 10)):
                chars[rng.randrange(len(chars))] = rng.choice(alphabet)
            text = "".join(chars)
        scrape = parse_exposition(text)
        for result in (
            scrape.to_dict(),
            error_rate(previous, scrape).to_dict(),
            latency_quantiles(previous, scrape).to_dict(),
            latency_quantiles(None, scrape).to_dict(),
            database_pool(scrape).to_dict(),
            process_memory(scrape).to_dict(),
        ):
            json.dumps(result, allow_nan=False)
        previous = scrape
