"""Tests of the performance-degradation library: web vitals, route latency, ranking.

The expected quantiles are worked out by hand below, with linear interpolation
inside the bucket that contains the rank, as Prometheus's histogram_quantile does:
value = lower bound + bucket width * (rank - count below) / (count in bucket).
"""

from __future__ import annotations

import contextlib
import math
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib.dates as mdates
import pandas as pd
import pytest

from tests.httpfixture import RawServer, load_recorded, replay, response_bytes
from tests.pgcluster import PgCluster
from veerunbook import metrics
from veerunbook import session as vr_session
from veerunbook.metrics_sampling import check_scrape_count
from veerunbook.metrics_series import Sample
from veerunbook.perf import Performance
from veerunbook.perf_database import (
    DatabaseFacts,
    observe,
    query_latency_ms,
    slow_queries,
)
from veerunbook.perf_plots import plot_latency_timeline
from veerunbook.perf_recovery import (
    ACTIONS,
    CACHING,
    DATABASE,
    DEGRADATION,
    SCALING,
    Evidence,
    diagnose,
    options_frame,
    rank_options,
)
from veerunbook.perf_routes import (
    INFORMATION_ALERT,
    WARNING_ALERT,
    RouteLatency,
    alert_level,
    latency_rows,
    latency_timeline,
    route_latencies,
)
from veerunbook.text import counted
from veerunbook.triage_tables import Nothing
from veerunbook.webvitals import (
    GOOD,
    INVALID,
    LIMITS,
    MISSING,
    NEEDS_IMPROVEMENT,
    POOR,
    Vital,
    rate,
    read_vitals,
    sample_size,
)

FIXTURES = Path(__file__).parent / "fixtures"
BOUNDS = ("0.1", "0.5", "1", "2.5", "5", "+Inf")


def by_name(body: Any) -> dict[str, Vital]:
    return {vital.limit.name: vital for vital in read_vitals(body)}


# Web vitals


@pytest.mark.parametrize("limit", LIMITS, ids=lambda limit: limit.name)
def test_vital_rated_at_and_around_limits(limit: Any) -> None:
    step = 0.001 if limit.name == "CLS" else 1.0
    assert rate(0.0, limit) == GOOD
    assert rate(limit.good - step, limit) == GOOD
    assert rate(limit.good, limit) == GOOD
    assert rate(limit.good + step, limit) == NEEDS_IMPROVEMENT
    assert rate(limit.poor, limit) == NEEDS_IMPROVEMENT
    assert rate(limit.poor + step, limit) == POOR


def test_vital_limits_match_web_dev() -> None:
    limits = {limit.name: (limit.good, limit.poor) for limit in LIMITS}
    assert limits["LCP"] == (2500.0, 4000.0)
    assert limits["INP"] == (200.0, 500.0)
    assert limits["CLS"] == (0.1, 0.25)
    assert limits["FCP"] == (1800.0, 3000.0)
    assert limits["TTFB"] == (800.0, 1800.0)


@pytest.mark.parametrize(
    "body",
    [
        {"webVitals": {"lcpMs": 3000}},
        {"lcp": 3000},
        {"LCP": 3000},
        {"lcp_ms": "3000"},
        {"vitals": {"largestContentfulPaint": 3000}},
        {"metrics": {"largest_contentful_paint": {"percentiles": {"p75": 3000}}}},
        {"largest-contentful-paint": {"numericValue": 3000}},
        {"coreWebVitals": {"LCP": {"value": 3000, "rating": "needs-improvement"}}},
        {"lcpSeconds": 3},
        {"lcp": "3s"},
        {"lcp": "3000 ms"},
    ],
)
def test_vital_key_spellings(body: Any) -> None:
    lcp = by_name(body)["LCP"]
    assert lcp.value == 3000.0
    assert lcp.rating == NEEDS_IMPROVEMENT


def test_vitals_of_audit_endpoint_shape() -> None:
    body = {
        "webVitals": {"lcpMs": 5105, "cls": 0.05, "inpMs": 548},
        "api": {"p75Ms": 976.2, "p95Ms": 2100.0, "p99Ms": 2900.0},
        "sampleSize": 120,
    }
    vitals = by_name(body)
    assert vitals["LCP"].rating == POOR
    assert vitals["INP"].rating == POOR
    assert vitals["CLS"].rating == GOOD
    assert vitals["FCP"].rating == MISSING
    assert vitals["TTFB"].rating == MISSING
    assert vitals["LCP"].key == "lcpMs"
    assert sample_size(body) == 120.0


def test_vital_container_wins_over_top_level() -> None:
    vitals = by_name({"webVitals": {"lcp": 1000}, "lcp": 9000})
    assert vitals["LCP"].value == 1000.0


def test_cls_string_and_ttfb_alias() -> None:
    vitals = by_name(
        {
            "metrics": {
                "cumulative_layout_shift": {"percentiles": {"p75": "0.30"}},
                "experimental_time_to_first_byte": {"percentiles": {"p75": 1900}},
            }
        }
    )
    assert vitals["CLS"].value == 0.3
    assert vitals["CLS"].rating == POOR
    assert vitals["TTFB"].value == 1900.0
    assert vitals["TTFB"].rating == POOR


@pytest.mark.parametrize(
    "body",
    ["<html><body>Maintenance</body></html>", None, [], 42, "", {"webVitals": "n/a"}],
)
def test_vitals_of_garbage_body_missing(body: Any) -> None:
    vitals = read_vitals(body)
    assert [vital.rating for vital in vitals] == [MISSING] * len(LIMITS)
    assert sample_size(body) is None


@pytest.mark.parametrize(
    "value",
    [True, "fast", -1, math.nan, math.inf, 10**400, "1e400", [1, 2], None, {}],
)
def test_vital_garbage_value_invalid(value: Any) -> None:
    lcp = by_name({"lcp": value})["LCP"]
    assert lcp.rating == INVALID
    assert lcp.value is None
    assert lcp.problem
    assert lcp.check_status == "warn"


def test_vital_check_status_by_rating() -> None:
    vitals = by_name({"lcp": 1000, "inp": 300, "cls": 0.5})
    assert vitals["LCP"].check_status == "pass"
    assert vitals["INP"].check_status == "warn"
    assert vitals["CLS"].check_status == "fail"
    assert vitals["FCP"].check_status == "skip"


def test_sample_size_spellings() -> None:
    assert sample_size({"sample_size": 0}) == 0.0
    assert sample_size({"samples": 7}) == 7.0
    assert sample_size({"sampleSize": True}) is None
    assert sample_size({"sampleSize": "12"}) is None
    assert sample_size({"sampleSize": 10**400}) is None


# Route latency from histograms


def exposition(routes: dict[tuple[str, str], tuple[list[int], float]]) -> str:
    """Write a histogram per (method, endpoint) from cumulative counts and a sum."""
    lines = ["# TYPE http_request_duration_seconds histogram"]
    for (method, endpoint), (counts, total) in routes.items():
        labels = f'method="{method}",endpoint="{endpoint}"'
        for bound, count in zip(BOUNDS, counts, strict=True):
            lines.append(
                f'http_request_duration_seconds_bucket{{{labels},le="{bound}"}} {count}'
            )
        lines.append(f"http_request_duration_seconds_sum{{{labels}}} {total}")
        lines.append(f"http_request_duration_seconds_count{{{labels}}} {counts[-1]}")
    return "\n".join(lines) + "\n"


def scrape(
    routes: dict[tuple[str, str], tuple[list[int], float]], at: float
) -> metrics.Scrape:
    return metrics.parse_exposition(exposition(routes), scraped_at=at)


# Five fast requests per route came before the window. Within the window (after
# minus before), the cumulative counts of buckets le 0.1, 0.5, 1, 2.5, 5 and +Inf are:
#   GET /api/posts    10, 40, 70, 90, 100, 100   sum 150 s
#   GET /api/user     80, 100, 100, 100, 100, 100   sum 10 s
#   GET /healthz      50, 50, 50, 50, 50, 50   sum 1 s (a probe)
BEFORE = {
    ("GET", "/api/posts"): ([5, 5, 5, 5, 5, 5], 0.2),
    ("GET", "/api/user"): ([5, 5, 5, 5, 5, 5], 0.2),
    ("GET", "/healthz"): ([5, 5, 5, 5, 5, 5], 0.1),
}
AFTER = {
    ("GET", "/api/posts"): ([15, 45, 75, 95, 105, 105], 150.2),
    ("GET", "/api/user"): ([85, 105, 105, 105, 105, 105], 10.2),
    ("GET", "/healthz"): ([55, 55, 55, 55, 55, 55], 1.1),
}


def window_routes() -> list[RouteLatency]:
    report = metrics.latency_quantiles(
        scrape(BEFORE, 1000.0), scrape(AFTER, 1030.0), quantiles=(0.5, 0.95, 0.99)
    )
    return route_latencies(report)


def test_route_order_slowest_user_first() -> None:
    routes = window_routes()
    assert [route.route for route in routes] == [
        "GET /api/posts",
        "GET /api/user",
        "GET /healthz",
    ]
    assert [route.probe for route in routes] == [False, False, True]


def test_route_quantiles_by_hand() -> None:
    posts, user, healthz = window_routes()
    # posts, 100 requests. p50: rank 50 in (0.5, 1] holding 40..70:
    # 0.5 + 0.5 * (50 - 40) / 30 = 0.6667 s. p95: rank 95 in (2.5, 5] holding
    # 90..100: 2.5 + 2.5 * 5 / 10 = 3.75 s. p99: 2.5 + 2.5 * 9 / 10 = 4.75 s.
    assert posts.requests == 100.0
    assert posts.p50_ms == 666.7
    assert posts.p95_ms == 3750.0
    assert posts.p99_ms == 4750.0
    assert posts.mean_ms == 1500.0  # 150 s / 100
    # user, 100 requests. p50: rank 50 in (0, 0.1] holding 0..80:
    # 0.1 * 50 / 80 = 0.0625 s. p95: rank 95 in (0.1, 0.5] holding 80..100:
    # 0.1 + 0.4 * 15 / 20 = 0.4 s. p99: 0.1 + 0.4 * 19 / 20 = 0.48 s.
    assert user.p50_ms == 62.5
    assert user.p95_ms == 400.0
    assert user.p99_ms == 480.0
    # healthz, 50 requests. p95: rank 47.5 in (0, 0.1]: 0.1 * 47.5 / 50 = 0.095 s.
    assert healthz.p95_ms == 95.0


def test_route_alerts_and_time_share() -> None:
    posts, user, healthz = window_routes()
    assert posts.alert == WARNING_ALERT
    assert user.alert == ""
    # Shares of user request time: 150 / (150 + 10) and 10 / 160.
    assert posts.time_share == pytest.approx(0.9375)
    assert user.time_share == pytest.approx(0.0625)
    assert healthz.time_share is None


def test_route_rows_for_table() -> None:
    rows = latency_rows(window_routes())
    assert rows[0]["route"] == "GET /api/posts"
    assert rows[0]["traffic"] == "user"
    assert rows[0]["share of user time (%)"] == 93.8
    assert rows[0]["mean (ms)"] == 1500.0
    assert rows[0]["p95 above"] == "warning alert line (p95 2000 ms for 5 min)"
    assert rows[2]["traffic"] == "probe"


def test_user_aggregate_by_hand() -> None:
    report = metrics.latency_quantiles(scrape(BEFORE, 1000.0), scrape(AFTER, 1030.0))
    aggregate = report.aggregate
    assert aggregate is not None
    # Summed user buckets: 90, 140, 170, 190, 200, 200. p50: rank 100 in
    # (0.1, 0.5] holding 90..140: 0.1 + 0.4 * 10 / 50 = 0.18 s. p95: rank 190 in
    # (1, 2.5] holding 170..190: 1 + 1.5 * 20 / 20 = 2.5 s. p99: rank 198 in
    # (2.5, 5]: 2.5 + 2.5 * 8 / 10 = 4.5 s.
    assert aggregate.quantile(0.5).value == pytest.approx(0.18)  # type: ignore[union-attr]
    assert aggregate.quantile(0.95).value == pytest.approx(2.5)  # type: ignore[union-attr]
    assert aggregate.quantile(0.99).value == pytest.approx(4.5)  # type: ignore[union-attr]


def test_route_without_inf_bucket() -> None:
    text = (FIXTURES / "veefore-histogram-no-inf-bucket" / "metrics.txt").read_text()
    report = metrics.latency_quantiles(None, metrics.parse_exposition(text))
    routes = {route.route: route for route in route_latencies(report)}
    dashboard = routes["GET /api/dashboard/analytics"]
    # 60 of 1000 requests are above the largest bound (10 s), so rank 950 falls
    # in the overflow and p95 is at least 10 s.
    assert dashboard.p95_ms == 10000.0
    assert "p95" in dashboard.at_least
    assert dashboard.alert == WARNING_ALERT
    # /api/user: rank 2280 of 2400 in (0.01, 0.1] holding 1450..2380:
    # 0.01 + 0.09 * 830 / 930 = 0.0903 s.
    assert routes["GET /api/user"].p95_ms == 90.3
    assert routes["GET /api/user"].alert == ""


def test_alert_level_of_lower_bounds() -> None:
    lower = {"lower_bound": True}
    assert alert_level(metrics.Quantile(0.95, 2.5, **lower)) == WARNING_ALERT
    assert alert_level(metrics.Quantile(0.95, 1.8, **lower)) == INFORMATION_ALERT
    assert alert_level(metrics.Quantile(0.95, 1.0, **lower)) == "unknown"
    assert alert_level(metrics.Quantile(0.95, 2.0)) == INFORMATION_ALERT
    assert alert_level(metrics.Quantile(0.95, 1.5)) == ""
    assert alert_level(metrics.Quantile(0.95, None)) == "unknown"
    assert alert_level(None) == "unknown"


# The latency timeline and its plot

START = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
# A third scrape 30 s after AFTER: only GET /api/user grows, by 10 requests in
# (0.5, 1], so that interval's p50 is 0.5 + 0.5 * 5 / 10 = 0.75 s.
LATER = {
    ("GET", "/api/posts"): ([15, 45, 75, 95, 105, 105], 150.2),
    ("GET", "/api/user"): ([85, 105, 115, 115, 115, 115], 17.2),
    ("GET", "/healthz"): ([55, 55, 55, 55, 55, 55], 1.1),
}


def timeline_series() -> list[Sample]:
    at = [START + timedelta(seconds=s) for s in (0, 15, 30, 60)]
    return [
        Sample(at[0], scrape(BEFORE, at[0].timestamp()), None),
        Sample(at[1], None, "metrics scrape  ERROR  HTTP -"),
        Sample(at[2], scrape(AFTER, at[2].timestamp()), None),
        Sample(at[3], scrape(LATER, at[3].timestamp()), None),
    ]


def test_timeline_skips_failed_scrape() -> None:
    timeline = latency_timeline(timeline_series())
    assert len(timeline) == 2
    assert list(timeline["seconds"]) == [30.0, 30.0]
    assert list(timeline["requests"]) == [200.0, 10.0]


def test_timeline_quantiles_by_hand() -> None:
    timeline = latency_timeline(timeline_series())
    first, second = timeline.iloc[0], timeline.iloc[1]
    # The first interval is the window of test_user_aggregate_by_hand.
    assert first["p50 (ms)"] == 180.0
    assert first["p95 (ms)"] == 2500.0
    assert first["p99 (ms)"] == 4500.0
    # Second: 10 requests in (0.5, 1]. p95: 0.5 + 0.5 * 9.5 / 10 = 0.975 s.
    assert second["p50 (ms)"] == 750.0
    assert second["p95 (ms)"] == 975.0


def test_timeline_without_scrapes_is_empty() -> None:
    timeline = latency_timeline([Sample(START, None, "refused")])
    assert timeline.empty
    assert "p95 (ms)" in timeline.columns


def test_plot_has_alert_lines() -> None:
    figure = plot_latency_timeline(latency_timeline(timeline_series()))
    axes = figure.axes[0]
    labels = [line.get_label() for line in axes.get_lines()]
    assert labels[:3] == ["p50", "p95", "p99"]
    assert "2000 ms: warning alert line (p95 for 5 min)" in labels
    assert "1500 ms: information alert line (p95 for 15 min)" in labels
    assert axes.get_title()
    assert axes.get_ylabel() == "request latency (ms)"
    # The highest point is the first interval's p99 of 4500 ms; both lines show.
    assert axes.get_ylim()[1] > 4500


def test_plot_time_axis_utc_clock() -> None:
    figure = plot_latency_timeline(latency_timeline(timeline_series()))
    axes = figure.axes[0]
    formatter = axes.xaxis.get_major_formatter()
    # The intervals end 30 s and 60 s after START, 12:00:00 UTC.
    ends = [mdates.date2num(value) for value in axes.get_lines()[1].get_xdata()]
    assert axes.get_xlabel() == "time (UTC)"
    assert [formatter(value) for value in ends] == ["12:00:30", "12:01:00"]


def test_plot_legend_outside_axes() -> None:
    figure = plot_latency_timeline(latency_timeline(timeline_series()))
    axes = figure.axes[0]
    figure.canvas.draw()
    legend = axes.get_legend().get_window_extent()
    assert legend.x0 >= axes.get_window_extent().x1


def test_plot_short_window_ticks_whole_seconds() -> None:
    # A 3 s window: four intervals ending 0.75 s apart from 12:00:00.75 UTC.
    ends = [START + timedelta(seconds=0.75 * (i + 1)) for i in range(4)]
    timeline = pd.DataFrame(
        {
            "end": ends,
            "seconds": [0.75] * 4,
            "requests": [4.0] * 4,
            "p50 (ms)": [100.0] * 4,
            "p95 (ms)": [300.0] * 4,
            "p99 (ms)": [400.0] * 4,
        }
    )
    figure = plot_latency_timeline(timeline)
    figure.canvas.draw()
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    # The axis spans 1 s before the first end and after the last one.
    assert labels == ["12:00:00", "12:00:01", "12:00:02", "12:00:03", "12:00:04"]


def test_plot_one_interval_low_latency() -> None:
    timeline = latency_timeline(timeline_series()).iloc[1:]
    figure = plot_latency_timeline(timeline)
    figure.canvas.draw()
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    # The interval's p99 is under 1000 ms; the 2000 ms line still shows.
    assert figure.axes[0].get_ylim()[1] > 2000
    # One interval, ending at 12:01:00 UTC, with 1 s either side.
    assert labels == ["12:00:59", "12:01:00", "12:01:01"]


def test_plot_without_requests_is_none() -> None:
    assert plot_latency_timeline(latency_timeline([])) is None


# Web vitals from a target that does not send them


def audit_step(response: bytes, archive: Path) -> tuple[Performance, Any]:
    with (
        RawServer(replay(response)) as server,
        open_session(server.url(), archive) as opened,
    ):
        step = Performance(opened)
        return step, step.web_vitals()


def test_audit_html_page_gives_nothing(tmp_path: Path) -> None:
    page = load_recorded(
        "health-misbehaving-responses", "GET_healthz_200-html-maintenance.http"
    )
    step, table = audit_step(page.raw, tmp_path)
    names = [check.name for check in step.session.run.checks]
    assert isinstance(table, Nothing)
    assert names == ["performance audit"]
    assert step.session.run.checks[0].status == "fail"
    assert step.vitals == []


def test_audit_without_vitals_warns(tmp_path: Path) -> None:
    step, table = audit_step(response_bytes(b'{"status": "ok"}'), tmp_path)
    check = step.session.run.checks[-1]
    assert isinstance(table, Nothing)
    assert check.name == "web vitals"
    assert check.status == "warn"
    assert check.summary == "the performance audit response contains no web vital"


def test_audit_of_no_samples_not_graded(tmp_path: Path) -> None:
    body = b'{"webVitals": {"lcpMs": 9000}, "sampleSize": 0}'
    step, table = audit_step(response_bytes(body), tmp_path)
    checks = {check.name: check for check in step.session.run.checks}
    assert checks["web vital LCP"].status == "skip"
    assert checks["web vital LCP"].observed == 9000.0
    assert "sample size is 0" in checks["web vital LCP"].summary
    assert step.vitals == []
    assert table["rating"].tolist() == [POOR, MISSING, MISSING, MISSING, MISSING]


# Database health latency


def test_query_latency_spellings() -> None:
    assert query_latency_ms({"queryLatencyMs": 12.5}) == 12.5
    assert query_latency_ms({"latency_ms": 3}) == 3.0
    assert query_latency_ms({"database": {"responseTimeMs": 7}}) == 7.0
    assert query_latency_ms({"queryLatencyMs": None}) is None
    assert query_latency_ms({"queryLatencyMs": True}) is None
    assert query_latency_ms({"queryLatencyMs": 10**400}) is None
    assert query_latency_ms({"queryLatencyMs": -1}) is None
    assert query_latency_ms("<html>") is None


# Ranking of the recovery options


def route(
    name: str, p95_ms: float, share: float | None, *, requests: float = 100.0
) -> RouteLatency:
    alert = ""
    if p95_ms > 2000:
        alert = WARNING_ALERT
    elif p95_ms > 1500:
        alert = INFORMATION_ALERT
    return RouteLatency(
        route=name,
        probe=False,
        requests=requests,
        p50_ms=p95_ms / 2,
        p95_ms=p95_ms,
        p99_ms=p95_ms * 1.2,
        mean_ms=p95_ms / 2,
        at_least=(),
        alert=alert,
        time_share=share,
    )


def vital(name: str, value: float) -> Vital:
    limit = next(limit for limit in LIMITS if limit.name == name)
    return Vital(limit, value, rate(value, limit), name.lower())


def pool(active: float, waiting: float) -> metrics.PoolUsage:
    return metrics.PoolUsage(active, 20 - active, waiting, 20, 20, active / 20)


def actions(evidence: Evidence) -> list[str]:
    return [option.action for option in rank_options(evidence)]


BROAD = [
    route("POST /api/instagram/publish", 3600, 0.32),
    route("GET /api/dashboard/analytics", 2750, 0.33),
    route("POST /api/auth/login", 1900, 0.06),
    route("GET /api/posts", 940, 0.14),
    route("GET /api/user", 860, 0.09),
]


def test_ranking_broad_slowdown() -> None:
    evidence = Evidence(
        routes=BROAD, user_p50_ms=700, user_p95_ms=2320, vitals=[vital("LCP", 5100)]
    )
    options = rank_options(evidence)
    # Caching: a slow read route (2) and a poor LCP (1). Scaling: the slowdown is
    # spread over routes (2).
    assert [option.action for option in options[:2]] == [CACHING, SCALING]
    assert options[0].points == 3
    assert options[0].confidence == "high"
    assert options[1].confidence == "medium"
    assert options[2].confidence == "no evidence"
    assert [option.rank for option in options] == [1, 2, None, None]
    assert options[0].reasons == (
        "read routes with p95 above 1500 ms: GET /api/dashboard/analytics 2750 ms",
        "page loading rated poor: LCP 5100 ms",
    )
    assert options[1].reasons == ("p95 above 1500 ms on 3 of 5 user routes",)


def test_ranking_pool_saturated() -> None:
    evidence = Evidence(pool=pool(20, 14))
    options = rank_options(evidence)
    assert options[0].action == SCALING
    assert options[0].reasons == (
        "connection pool at 100 % (20 of 20), 14 requests waiting",
    )


def test_ranking_pool_below_alert() -> None:
    assert rank_options(Evidence(pool=pool(16, 0)))[0].points == 0


def test_ranking_heap_high() -> None:
    options = rank_options(Evidence(heap_fraction=0.92))
    assert options[0].action == SCALING
    assert options[0].reasons == (
        "heap at 92 % of its limit, above the warning alert line (85 % for 10 min)",
    )


def test_ranking_single_slow_route() -> None:
    routes = [
        route("POST /api/instagram/publish", 6000, 0.8),
        route("GET /api/user", 120, 0.15),
        route("GET /api/posts", 200, 0.05),
    ]
    evidence = Evidence(routes=routes, user_p50_ms=100, user_p95_ms=4000)
    options = rank_options(evidence)
    assert options[0].action == DEGRADATION
    assert options[0].reasons == (
        "only POST /api/instagram/publish is above 1500 ms (p95 6000 ms), the other"
        " 2 user routes are below, and it takes 80 % of user request time",
    )
    assert SCALING in actions(evidence)[1:]
    assert options[-1].points == 0


def test_ranking_lone_route_not_single() -> None:
    # With one user route there is nothing to degrade it against.
    evidence = Evidence(routes=[route("GET /api/user", 3000, 1.0)], user_p95_ms=3000)
    options = {option.action: option for option in rank_options(evidence)}
    assert evidence.single_slow_route() is None
    assert options[DEGRADATION].points == 0


def test_ranking_slow_database() -> None:
    evidence = Evidence(
        user_p50_ms=100,
        database_latency_ms=60,
        slow_statements=["SELECT * FROM posts WHERE ... (mean 900 ms)"],
    )
    options = rank_options(evidence)
    assert options[0].action == DATABASE
    assert options[0].points == 4
    assert options[0].reasons == (
        "1 slow statement, slowest: SELECT * FROM posts WHERE ... (mean 900 ms)",
        "the database query takes 60 ms, at least half of the user p50 of 100 ms",
    )


def test_ranking_database_below_half() -> None:
    evidence = Evidence(user_p50_ms=100, database_latency_ms=49)
    assert rank_options(evidence)[0].points == 0


def test_ranking_without_evidence_ranks_nothing() -> None:
    options = rank_options(Evidence())
    assert [option.action for option in options] == [
        CACHING,
        DATABASE,
        SCALING,
        DEGRADATION,
    ]
    assert [option.rank for option in options] == [None] * 4
    assert options_frame(options)["rank"].tolist() == ["-"] * 4
    assert (
        options_frame(options)["evidence"].tolist() == ["no evidence in this run"] * 4
    )


def test_ranking_unranked_follow_ranked() -> None:
    options = rank_options(Evidence(pool=pool(20, 1), heap_fraction=None))
    assert [option.action for option in options] == [
        SCALING,
        CACHING,
        DATABASE,
        DEGRADATION,
    ]
    assert [option.rank for option in options] == [1, None, None, None]
    assert options[0].reasons == (
        "connection pool at 100 % (20 of 20), 1 request waiting",
    )


def test_ranking_unreachable_ranks_nothing() -> None:
    evidence = Evidence(
        slow_statements=["SELECT 1 (mean 900 ms)"],
        unreachable="target unreachable: connection refused at http://127.0.0.1:9",
    )
    options = rank_options(evidence)
    assert [option.rank for option in options] == [None] * 4
    assert [option.action for option in options] == list(ACTIONS)
    assert options[0].evidence == "not assessed: the target sent no response"
    # What the database showed is still listed, unranked.
    assert options[1].evidence.startswith("1 slow statement, slowest: SELECT 1")


def test_option_journal_fields() -> None:
    option = rank_options(Evidence(pool=pool(20, 14)))[0]
    assert option.to_dict() == {
        "rank": 1,
        "action": SCALING,
        "evidence": "connection pool at 100 % (20 of 20), 14 requests waiting",
        "confidence": "medium",
        "points": 2,
        "reasons": ["connection pool at 100 % (20 of 20), 14 requests waiting"],
    }


def test_ranking_ignores_unknown_p95() -> None:
    unknown = RouteLatency(
        route="GET /api/export",
        probe=False,
        requests=10.0,
        p50_ms=None,
        p95_ms=None,
        p99_ms=None,
        mean_ms=None,
        at_least=(),
        alert="unknown",
        time_share=0.9,
    )
    evidence = Evidence(routes=[unknown], user_p95_ms=None)
    assert evidence.slow_routes() == []
    assert [option.points for option in rank_options(evidence)] == [0, 0, 0, 0]


def test_diagnosis_lines() -> None:
    broad = Evidence(routes=BROAD, user_p95_ms=2320, vitals=[vital("LCP", 5100)])
    line = diagnose(broad, rank_options(broad))
    assert line.startswith(
        "slowdown: user p95 2320 ms, above the warning alert line"
        " (p95 2000 ms for 5 min); "
    )
    assert "slowest POST /api/instagram/publish at 3600 ms" in line
    assert "3 of 5 routes above 1500 ms" in line
    assert "web vitals rated poor: LCP" in line
    assert line.endswith(f"First option: {CACHING} (high confidence)")
    calm = Evidence(routes=[route("GET /api/user", 200, 1.0)], user_p95_ms=200)
    assert diagnose(calm, []) == (
        "no slowdown: user p95 200 ms, no route above 1500 ms"
    )
    assert diagnose(Evidence(), []).startswith("latency unknown")


def test_diagnosis_information_alert_line() -> None:
    evidence = Evidence(routes=[route("GET /api/user", 1700, 1.0)], user_p95_ms=1700)
    assert diagnose(evidence, rank_options(evidence)) == (
        "slowdown: user p95 1700 ms, above the information alert line"
        " (p95 1500 ms for 15 min); slowest GET /api/user at 1700 ms,"
        " 1 of 1 route above 1500 ms."
        f" First option: {CACHING} (medium confidence)"
    )


def test_diagnosis_names_option_without_slowdown() -> None:
    evidence = Evidence(user_p95_ms=200, slow_statements=["SELECT 1 (mean 90 ms)"])
    assert diagnose(evidence, rank_options(evidence)) == (
        "no slowdown: user p95 200 ms, no route above 1500 ms."
        f" First option: {DATABASE} (medium confidence)"
    )


def test_diagnosis_unreachable_first() -> None:
    line = (
        "target unreachable: connection refused at http://127.0.0.1:9 (every request"
        " failed); check that the service is running, then run triage"
    )
    evidence = Evidence(user_p95_ms=2500, unreachable=line)
    assert diagnose(evidence, rank_options(evidence)) == line


def test_counted_plurals() -> None:
    assert counted(1, "route") == "1 route"
    assert counted(2, "route") == "2 routes"
    assert counted(0, "request") == "0 requests"
    assert counted(1, "query", "queries") == "1 query"
    assert counted(3, "query", "queries") == "3 queries"


# Slow queries from a real PostgreSQL server


@contextlib.contextmanager
def open_session(target: str, archive: Path) -> Iterator[vr_session.Session]:
    opened = vr_session.begin(
        "performance-degradation", target=target, archive=str(archive)
    )
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def session(tmp_path: Path) -> Iterator[vr_session.Session]:
    # Nothing listens on the target: only the database is read here.
    with open_session("http://127.0.0.1:9", tmp_path) as opened:
        yield opened


def test_slow_queries_without_extension(
    pg_cluster: PgCluster,
    session: vr_session.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The maintenance database has no pg_stat_statements, so active queries are
    # listed instead, and none has run for 30 s.
    maintenance = pg_cluster.admin_dsn.rsplit("/", 1)[0] + "/postgres"
    monkeypatch.setenv("DATABASE_URL", maintenance)
    facts = DatabaseFacts()
    result = slow_queries(session, facts, 10, 100.0)
    check = session.run.checks[-1]
    assert isinstance(result, Nothing)
    assert "pg_stat_statements is not installed in database postgres" in result.message
    assert check.name == "slow queries"
    assert check.status == "pass"
    assert check.observed == 0
    assert facts.long_queries == 0


def test_slow_queries_server_down(
    session: vr_session.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:pw-3x@127.0.0.1:{port}/db")
    result = slow_queries(session, DatabaseFacts(), 10, 100.0)
    check = session.run.checks[-1]
    assert isinstance(result, Nothing)
    assert check.status == "error"
    assert "connection refused" in check.summary
    assert "pw-3x" not in check.summary


# Checks journaled for the window and for an unreachable target


def test_scrapes_one_check_by_reason(session: vr_session.Session) -> None:
    at = [START + timedelta(seconds=s) for s in (0, 1, 2, 3)]
    series = [
        Sample(at[0], scrape(BEFORE, at[0].timestamp()), None),
        Sample(at[1], None, "HTTP 503: service unavailable"),
        Sample(at[2], None, "HTTP 503: service unavailable"),
        Sample(at[3], scrape(AFTER, at[3].timestamp()), None),
    ]
    check_scrape_count(session.run, series)
    check = session.run.checks[-1]
    assert len(session.run.checks) == 1
    assert check.name == "metrics scrapes"
    # Two scrapes still make a window, so the failures only warn.
    assert check.status == "warn"
    assert check.observed == 2
    assert check.summary == (
        "2 of 4 metrics scrapes succeeded; 2 failed: HTTP 503: service unavailable"
    )


def test_scrapes_one_success_is_error(session: vr_session.Session) -> None:
    series = [
        Sample(START, scrape(BEFORE, START.timestamp()), None),
        Sample(START, None, "HTTP 500: internal error"),
    ]
    check_scrape_count(session.run, series)
    assert session.run.checks[-1].status == "error"
    assert session.run.checks[-1].summary.startswith("1 of 2 metrics scrapes")


def test_database_observe_unreachable_skips(session: vr_session.Session) -> None:
    reason = "target unreachable: connection refused at http://127.0.0.1:9"
    facts = observe(session, None, None, reason)
    checks = [(check.name, check.status, check.summary) for check in session.run.checks]
    assert checks == [
        ("connection pool", "skip", reason),
        ("database query latency", "skip", reason),
    ]
    assert facts.pool is None
