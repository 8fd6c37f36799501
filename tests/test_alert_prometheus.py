"""Alert signals read from Prometheus: expressions, a real server, hostile servers."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.httpfixture import RawServer, oversized, replay, response_bytes, silent
from tests.promserver import JOB, PrometheusServer, prometheus
from veerunbook.alert_check import check_alerts
from veerunbook.alert_eval import AlertState, RuleEvaluation, SignalSample, evaluate
from veerunbook.alert_prometheus import (
    MAX_STEPS,
    QUERY_RANGE_PATH,
    PrometheusSource,
    job_matcher,
    prometheus_source,
    signal_promql,
)
from veerunbook.alert_promql import counter_step_increase
from veerunbook.alert_rules import ALERT_RULES, Signal, rule_named
from veerunbook.alert_signals import signal_values
from veerunbook.alert_store import RuleState, SampleStore
from veerunbook.config import Target, Timeouts
from veerunbook.config_schema import build_config
from veerunbook.errors import ConfigError, PrometheusQueryError, UsageError
from veerunbook.metrics_parse import parse_exposition
from veerunbook.metrics_scrape import Scrape

__all__ = ["prometheus"]  # the module-scoped server fixture used below

RATIO_SIGNALS = (
    Signal.ERROR_RATE,
    Signal.AVAILABILITY,
    Signal.MEMORY_RATIO,
    Signal.POOL_UTILISATION,
)
# Short limits, so the hostile servers below fail fast.
FAST = Timeouts(connect_seconds=1.0, read_seconds=0.5, max_body_bytes=2048)


# Expressions


@pytest.mark.parametrize("rule", [r for r in ALERT_RULES if r.signal in RATIO_SIGNALS])
def test_ratio_promql_is_rule_without_comparison(rule: Any) -> None:
    # The rules sum by job, the signal sums everything its selector matches.
    expression = str(rule.promql).replace("sum by (job) (", "sum(")
    signal = signal_promql(rule.signal)
    assert expression == f"{signal} {rule.comparison} {rule.threshold}"


@pytest.mark.parametrize("name", ["ResponseTimeP95P1", "ResponseTimeP95P2"])
def test_p95_promql_is_rule_in_milliseconds(name: str) -> None:
    rule = rule_named(name)
    expression = signal_promql(Signal.P95_MS)
    assert expression is not None
    assert expression.endswith(" * 1000")
    seconds = expression.removesuffix(" * 1000")
    rule_seconds = str(rule.promql).replace("sum by (job, le)", "sum by (le)")
    assert rule_seconds == f"{seconds} > {rule.threshold / 1000}"


def test_counter_promql_is_step_increase() -> None:
    expression = signal_promql(Signal.BLOCKED_IPS_PER_MIN, step="15s")
    assert expression == (
        "sum((security_blocked_ips_total - security_blocked_ips_total offset 15s)"
        " >= 0 or (security_blocked_ips_total and security_blocked_ips_total"
        " offset 15s))"
    )


def test_counter_promql_selector() -> None:
    expression = signal_promql(
        Signal.BLOCKED_IPS_PER_MIN, step="1m", selector='job="veefore"'
    )
    assert expression is not None
    assert expression.count('{job="veefore"}') == 4


@pytest.mark.parametrize("step", ["", "15", "1 m"])
def test_invalid_step_rejected(step: str) -> None:
    with pytest.raises(ValueError, match="invalid step"):
        signal_promql(Signal.BLOCKED_IPS_PER_MIN, step=step)


def test_up_promql_is_minimum() -> None:
    assert signal_promql(Signal.UP) == "min(up)"
    assert signal_promql(Signal.UP, selector='job="veefore"') == (
        'min(up{job="veefore"})'
    )


def test_db_failures_have_no_promql() -> None:
    assert signal_promql(Signal.DB_CONNECTION_FAILURES_PER_MIN) is None


def test_rate_window_replaces_one_minute() -> None:
    expression = signal_promql(Signal.ERROR_RATE, rate_window="5s")
    assert expression is not None
    assert expression.count("[5s]") == 2
    assert "[1m]" not in expression


def test_selector_added_to_every_vector() -> None:
    expression = signal_promql(Signal.MEMORY_RATIO, selector='job="veefore"')
    assert expression == (
        'nodejs_heap_size_used_bytes{job="veefore"}'
        ' / nodejs_heap_size_limit_bytes{job="veefore"}'
    )


def test_selector_follows_rule_matchers() -> None:
    expression = signal_promql(Signal.ERROR_RATE, selector='job="veefore"')
    assert expression is not None
    assert '"5..",job="veefore"}' in expression
    assert expression.count('job="veefore"') == 2


@pytest.mark.parametrize("window", ["", "5", "1 m", "5s]", "-1m"])
def test_invalid_rate_window_rejected(window: str) -> None:
    with pytest.raises(ValueError, match="invalid rate window"):
        signal_promql(Signal.ERROR_RATE, rate_window=window)


def test_job_matcher_escapes_quotes() -> None:
    assert job_matcher('a"b\\c') == 'job="a\\"b\\\\c"'


# Configuration


def config_with(**keys: Any) -> Target:
    table = {"base_url": "http://127.0.0.1:8080", **keys}
    return build_config({"targets": {"staging": table}}, "veerunbook.toml").targets[
        "staging"
    ]


def test_config_reads_prometheus_url() -> None:
    target = config_with(prometheus_url="http://127.0.0.1:9090/")
    assert target.prometheus_url == "http://127.0.0.1:9090"


def test_config_reads_prometheus_job() -> None:
    target = config_with(prometheus_url="http://127.0.0.1:9090", prometheus_job=JOB)
    assert target.prometheus_job == JOB


def test_config_prometheus_defaults_none() -> None:
    target = config_with()
    assert target.prometheus_url is None
    assert target.prometheus_job is None


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"prometheus_url": "127.0.0.1:9090"}, "is not an http"),
        ({"prometheus_url": "ftp://127.0.0.1/"}, "is not an http"),
        ({"prometheus_url": "http://u:p@127.0.0.1:9090"}, "carries credentials"),
        ({"prometheus_url": 9090}, "must be str"),
        ({"prometheus_job": JOB}, "needs prometheus_url"),
        ({"prometheus_url": "http://127.0.0.1:9090", "prometheus_job": " "}, "empty"),
        ({"prometheus_ur": "http://127.0.0.1:9090"}, "did you mean 'prometheus_url'"),
    ],
)
def test_config_rejects_bad_prometheus(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_with(**keys)


def test_source_for_target_uses_job() -> None:
    target = config_with(prometheus_url="http://127.0.0.1:9090", prometheus_job=JOB)
    source = prometheus_source(target, step_seconds=1.0)
    assert source.selector == f'job="{JOB}"'
    assert source.timeouts == target.timeouts


def test_source_for_target_needs_url() -> None:
    with pytest.raises(UsageError, match="has no prometheus_url"):
        prometheus_source(config_with())


# A real Prometheus server


# The runbook's windows are minutes: ErrorRateP0 holds for 2 minutes and the rules
# rate over 1 minute. The same `for` and window semantics are checked here in
# seconds, so the scenario runs in under a minute: ErrorRateP0 holds for 4 s and
# AvailabilityP0 for 2 s. Both sources measure over the same 5 s window, because a
# ratio over one second of about 50 requests would cross the 5 % threshold by
# chance and make one source flap alone.
WINDOW = "5s"
WINDOW_SCRAPES = 5
SCALED_RULES = (
    dataclasses.replace(rule_named("ErrorRateP0"), for_seconds=4.0),
    dataclasses.replace(rule_named("AvailabilityP0"), for_seconds=2.0),
)
PHASES = (("healthy", 8), ("error-spike", 15), ("healthy", 12))


def scrape_metrics(client: httpx.Client, base_url: str) -> tuple[float, Scrape]:
    scraped_at = time.time()
    response = client.get(base_url + "/metrics")
    response.raise_for_status()
    return scraped_at, parse_exposition(response.text, scraped_at=scraped_at)


def run_phases(
    server: PrometheusServer, store: SampleStore
) -> tuple[list[float], list[float]]:
    """Run each phase with a scrape every second; return starts and scrape times."""
    target = server.target
    starts: list[float] = []
    scrapes: list[tuple[float, Scrape]] = []
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        tick = time.time()
        for scenario, seconds in PHASES:
            target.set_scenario(scenario)
            starts.append(time.time())
            for _ in range(seconds):
                scrapes.append(scrape_metrics(client, target.base_url))
                # Measured against the scrape a window earlier, like rate(...[5s]).
                before = (
                    scrapes[-1 - WINDOW_SCRAPES][1]
                    if len(scrapes) > WINDOW_SCRAPES
                    else None
                )
                store.append(scrapes[-1][0], signal_values(before, scrapes[-1][1]))
                tick += 1.0
                time.sleep(max(0.0, tick - time.time()))
    return starts, [scraped_at for scraped_at, _ in scrapes]


def state_at(evaluation: RuleEvaluation, moment: float) -> AlertState:
    """Return the state at the last evaluation at or before ``moment``."""
    earlier = [
        state
        for time_, state in zip(evaluation.times, evaluation.states, strict=True)
        if time_ <= moment
    ]
    return earlier[-1]


def test_error_spike_same_verdicts(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    with SampleStore(tmp_path, "demo") as store:
        starts, times = run_phases(prometheus, store)
        time.sleep(2.0)  # so that Prometheus scrapes once more after the last phase
        source = PrometheusSource(prometheus.url, step_seconds=1.0, rate_window=WINDOW)
        checkpoints = {
            "before the spike": (starts[1] - 1.0, AlertState.INACTIVE),
            "end of the spike": (starts[2] - 1.0, AlertState.FIRING),
            "after recovery": (times[-1], AlertState.INACTIVE),
        }
        for rule in SCALED_RULES:
            embedded = store.read(rule.signal, times[0], times[-1])
            served = source.read(rule.signal, times[0], times[-1])
            for name, samples in (("embedded", embedded), ("prometheus", served)):
                evaluation = evaluate(rule, samples, interval_seconds=1.0)
                for checkpoint, (moment, expected) in checkpoints.items():
                    state = state_at(evaluation, moment)
                    assert state is expected, (rule.name, name, checkpoint)
                kinds = [transition.state for transition in evaluation.transitions]
                assert kinds == [AlertState.FIRING, AlertState.INACTIVE], (
                    rule.name,
                    name,
                )


def wait_for_history(server: PrometheusServer, seconds: float) -> None:
    """Sleep until the server has scraped the target for ``seconds``."""
    time.sleep(max(0.0, server.scraped + seconds - time.time()))


@pytest.mark.parametrize(
    ("signal", "low", "high"),
    [
        (Signal.P95_MS, 1.0, 2000.0),
        (Signal.MEMORY_RATIO, 0.0, 1.0),
        (Signal.POOL_UTILISATION, 0.0, 1.0),
        (Signal.BLOCKED_IPS_PER_MIN, 0.0, 0.0),
        (Signal.UP, 1.0, 1.0),
    ],
)
def test_real_server_signal_values(
    prometheus: PrometheusServer, signal: Signal, low: float, high: float
) -> None:
    # Four steps, each with a 5 s rate window, up to a second ago.
    wait_for_history(prometheus, 11.0)
    source = PrometheusSource(prometheus.url, step_seconds=1.0, rate_window="5s")
    end = time.time() - 1.0
    samples = source.read(signal, end - 4.0, end)
    assert [sample.time for sample in samples] == pytest.approx(
        [end - 4.0 + step for step in range(5)], abs=0.001
    )
    values = [sample.value for sample in samples]
    assert None not in values
    assert all(low <= value <= high for value in values if value is not None)


def test_real_server_step_increase(prometheus: PrometheusServer) -> None:
    # The target serves about 50 requests/s and Prometheus scrapes it every second.
    # With a 1 s step, increase(http_requests_total[1s]) would often have one
    # sample in its range and no value, while the step increase has one each step.
    wait_for_history(prometheus, 8.0)
    expression = counter_step_increase("http_requests_total", "1s", job_matcher(JOB))
    end = time.time() - 1.0
    params = {
        "query": expression,
        "start": f"{end - 5.0:.3f}",
        "end": f"{end:.3f}",
        "step": "1",
    }
    with httpx.Client(base_url=prometheus.url, trust_env=False, timeout=5.0) as client:
        response = client.get(QUERY_RANGE_PATH, params=params)
    response.raise_for_status()
    result = response.json()["data"]["result"]
    assert len(result) == 1
    values = [float(value) for _, value in result[0]["values"]]
    assert len(values) == 6
    assert min(values) >= 0.0
    assert sum(values) > 0.0


def test_real_server_selector_filters(prometheus: PrometheusServer) -> None:
    wait_for_history(prometheus, 3.0)
    end = time.time() - 1.0
    matching = PrometheusSource(prometheus.url, selector=job_matcher(JOB))
    other = PrometheusSource(prometheus.url, selector=job_matcher("other"))
    assert matching.read(Signal.MEMORY_RATIO, end, end) != []
    assert other.read(Signal.MEMORY_RATIO, end, end) == []


def test_real_server_other_job_no_up(prometheus: PrometheusServer) -> None:
    # A job that matches no target has no up series, so the signal is empty.
    wait_for_history(prometheus, 3.0)
    end = time.time() - 1.0
    source = PrometheusSource(prometheus.url, selector=job_matcher("other"))
    assert source.read(Signal.UP, end, end) == []


def instant_query(server: PrometheusServer, expression: str) -> list[Any]:
    with httpx.Client(base_url=server.url, trust_env=False, timeout=5.0) as client:
        response = client.get("/api/v1/query", params={"query": expression})
    response.raise_for_status()
    result: list[Any] = response.json()["data"]["result"]
    return result


@pytest.mark.parametrize(
    "name", ["AvailabilityP0", "ResponseTimeP95P1", "MemoryUsageP1", "TargetDownP0"]
)
def test_exported_alert_carries_job(prometheus: PrometheusServer, name: str) -> None:
    # The exported expression without its comparison: each series has the job label.
    wait_for_history(prometheus, 3.0)
    expression = str(rule_named(name).promql_for(job_matcher(JOB)))
    value = expression.rsplit(" ", 2)[0]
    series = instant_query(prometheus, value)
    assert len(series) == 1
    assert series[0]["metric"]["job"] == JOB


def test_real_server_db_failures_empty(prometheus: PrometheusServer) -> None:
    source = PrometheusSource(prometheus.url)
    now = time.time()
    assert source.read(Signal.DB_CONNECTION_FAILURES_PER_MIN, now - 60, now) == []


def test_real_server_bad_query_raises(prometheus: PrometheusServer) -> None:
    # A selector that is not a label matcher makes the PromQL unparsable.
    source = PrometheusSource(prometheus.url, selector="job=")
    now = time.time()
    with pytest.raises(PrometheusQueryError, match="Prometheus returned bad_data"):
        source.read(Signal.MEMORY_RATIO, now - 5, now)


# Hostile servers


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps(
        {"status": "error", "errorType": error_type, "error": message}
    ).encode()


def matrix_body(
    *series: dict[str, Any], result_type: str = "matrix", warnings: Any = None
) -> bytes:
    data = {"resultType": result_type, "result": list(series)}
    payload: dict[str, Any] = {"status": "success", "data": data}
    if warnings is not None:
        payload["warnings"] = warnings
    return json.dumps(payload).encode()


def status_response(status: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_from(url: str, signal: Signal = Signal.MEMORY_RATIO) -> list[SignalSample]:
    source = PrometheusSource(url, step_seconds=1.0, timeouts=FAST)
    return source.read(signal, 1000.0, 1004.0)


def test_points_become_samples() -> None:
    series = {
        "metric": {"job": JOB},
        "values": [[1000, "0.5"], [1001, "NaN"], [1002, "+Inf"], [1004, "0.25"]],
    }
    with RawServer(replay(response_bytes(matrix_body(series)))) as server:
        samples = read_from(server.url(""))
    assert samples == [
        SignalSample(1000.0, 0.5),
        SignalSample(1001.0, None),
        SignalSample(1002.0, None),
        SignalSample(1003.0, None),
        SignalSample(1004.0, 0.25),
    ]


def test_warnings_logged_cut(caplog: pytest.LogCaptureFixture) -> None:
    # Five warnings of 250 characters: three are logged, each cut to 200.
    body = matrix_body(warnings=[f"{index}" * 250 for index in range(5)])
    with (
        RawServer(replay(response_bytes(body))) as server,
        caplog.at_level("WARNING", logger="veerunbook.alert_prometheus"),
    ):
        read_from(server.url(""))
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 4
    for index, message in enumerate(messages[:3]):
        assert message.endswith(": " + f"{index}" * 200 + "..."), index
    assert messages[3].startswith("Prometheus returned 2 more warnings for")


def test_counter_read_queries_step() -> None:
    # The source's step is 1 s, so each value is the increase since the step before.
    with RawServer(replay(response_bytes(matrix_body()))) as server:
        read_from(server.url(""), Signal.BLOCKED_IPS_PER_MIN)
    request_line = server.requests[0].split(b"\r\n")[0].decode()
    assert "offset+1000ms" in request_line


def test_request_names_range_and_step() -> None:
    with RawServer(replay(response_bytes(matrix_body()))) as server:
        read_from(server.url(""))
    request_line = server.requests[0].split(b"\r\n")[0].decode()
    assert request_line.startswith("GET /api/v1/query_range?query=")
    assert "start=1000.000" in request_line
    assert "end=1004.000" in request_line
    assert "step=1.000" in request_line
    assert "timeout=0.5" in request_line


def test_empty_result_is_no_samples() -> None:
    with RawServer(replay(response_bytes(matrix_body()))) as server:
        assert read_from(server.url("")) == []


def test_long_range_split_in_chunks() -> None:
    with RawServer(replay(response_bytes(matrix_body()))) as server:
        source = PrometheusSource(server.url(""), step_seconds=1.0, timeouts=FAST)
        source.read(Signal.MEMORY_RATIO, 0.0, float(MAX_STEPS))
    assert len(server.requests) == 2
    assert b"end=10999.000" in server.requests[0]
    assert b"start=11000.000&end=11000.000" in server.requests[1]


def test_several_series_named() -> None:
    first = {"metric": {"instance": "198.51.100.7:80"}, "values": []}
    second = {"metric": {"instance": "198.51.100.8:80"}, "values": []}
    with (
        RawServer(replay(response_bytes(matrix_body(first, second)))) as server,
        pytest.raises(PrometheusQueryError) as raised,
    ):
        read_from(server.url(""))
    message = str(raised.value)
    assert "returned 2 series" in message
    assert "198.51.100.7:80" in message
    assert "198.51.100.8:80" in message
    assert "prometheus_job" in message


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (response_bytes(b"<html><body>Login</body></html>", "text/html"), "HTML"),
        (
            status_response(
                "400 Bad Request",
                error_body("bad_data", "1:5: parse error: unexpected"),
                "application/json",
            ),
            "Prometheus returned bad_data: 1:5: parse error: unexpected.",
        ),
        (
            status_response(
                "503 Service Unavailable",
                error_body("timeout", "query timed out in expression evaluation"),
                "application/json",
            ),
            "Prometheus returned timeout",
        ),
        (
            status_response("502 Bad Gateway", b"upstream down", "text/plain"),
            "the server answered HTTP 502",
        ),
        (response_bytes(b"{not json"), "not valid JSON"),
        (response_bytes(matrix_body(result_type="vector")), "not a range-query"),
        (
            response_bytes(matrix_body({"metric": {}, "values": [[1000, "x"]]})),
            "invalid point",
        ),
        (
            # An infinite time, which JSON numbers can spell as 1e999.
            response_bytes(
                b'{"status": "success", "data": {"resultType": "matrix",'
                b' "result": [{"metric": {}, "values": [[1e999, "1"]]}]}}'
            ),
            "invalid point [inf, '1']",
        ),
        (
            response_bytes(matrix_body(warnings=5)),
            "the response's warnings are not a list of strings: 5.",
        ),
        (
            response_bytes(matrix_body(warnings=["disk", 7])),
            "the response's warnings are not a list of strings: ['disk', 7].",
        ),
    ],
)
def test_hostile_response_raises(raw: bytes, reason: str) -> None:
    with (
        RawServer(replay(raw)) as server,
        pytest.raises(PrometheusQueryError) as raised,
    ):
        read_from(server.url(""))
    message = str(raised.value)
    assert message.startswith(
        f"The Prometheus query of memory_ratio at {server.url('/api/v1/query_range')}"
    )
    assert reason in message


def test_slow_server_times_out() -> None:
    with (
        RawServer(silent()) as server,
        pytest.raises(PrometheusQueryError, match=r"within 0\.5 s"),
    ):
        read_from(server.url(""))


def test_oversized_body_raises() -> None:
    with (
        RawServer(oversized(100_000)) as server,
        pytest.raises(PrometheusQueryError, match="larger than 2048 bytes"),
    ):
        read_from(server.url(""))


def test_refused_connection_raises() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(PrometheusQueryError, match="refused the connection"):
        read_from(f"http://127.0.0.1:{port}")


def test_credentials_masked_in_message() -> None:
    raw = status_response("503 Service Unavailable", b"down", "text/plain")
    with RawServer(replay(raw)) as server:
        url = f"http://prom-user:s3cret-pass@127.0.0.1:{server.port}"
        with pytest.raises(PrometheusQueryError) as raised:
            read_from(url)
    message = str(raised.value)
    assert "s3cret-pass" not in message
    assert "prom-user" not in message
    assert b"Authorization: Basic " in server.requests[0]


def test_invalid_url_rejected() -> None:
    with pytest.raises(UsageError, match="invalid Prometheus URL"):
        PrometheusSource("ftp://127.0.0.1:9090")


def test_reversed_range_rejected() -> None:
    source = PrometheusSource("http://127.0.0.1:9090")
    with pytest.raises(UsageError, match=r"end 1\.0 is before start 2\.0"):
        source.read(Signal.MEMORY_RATIO, 2.0, 1.0)


# The alert check with a target that names a Prometheus server.


def test_check_reads_configured_server(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    wait_for_history(prometheus, 3.0)
    target = Target(
        name="veefore",
        base_url=prometheus.target.base_url,
        prometheus_url=prometheus.url,
        prometheus_job=JOB,
    )
    result = check_alerts(target, tmp_path, interval_seconds=1.0)
    assert result.scrape_error is None
    assert result.values[Signal.MEMORY_RATIO] is not None
    assert result.values[Signal.UP] == 1.0
    assert len(result.rules) == len(ALERT_RULES)
    # Prometheus keeps the samples, so nothing is stored beside the rule states.
    with SampleStore(tmp_path, "veefore") as store:
        assert store.read(Signal.MEMORY_RATIO, 0, time.time()) == []


def test_check_keeps_states_when_server_fails(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "veefore") as store:
        store.set_rule_state(RuleState("ErrorRateP0", AlertState.FIRING, 100.0, 200.0))
    with RawServer(
        replay(status_response("502 Bad Gateway", b"down", "text/plain"))
    ) as server:
        target = Target(
            name="veefore",
            base_url="http://127.0.0.1:9",
            prometheus_url=server.url(""),
        )
        result = check_alerts(target, tmp_path, now=260.0)
    assert result.scrape_error is not None
    assert "HTTP 502" in result.scrape_error
    assert result.transitions == ()
    with SampleStore(tmp_path, "veefore") as store:
        assert store.rule_states()["ErrorRateP0"].state == AlertState.FIRING
