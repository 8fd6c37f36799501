"""Tests of veerunbook.logs against the veefore-logs-mixed fixture and edge cases.

The fixture contains two minutes of one VeeFore API pod's merged stdout and stderr, a
staging instance's pretty-printed records and a pino-logging queue worker that
crashed and restarted. The expected numbers below were counted in those files.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from veerunbook.errors import UsageError
from veerunbook.logs import (
    LogParse,
    LogRecord,
    api_call_stats,
    fingerprint,
    group_errors,
    job_outcomes,
    mask_credentials,
    mask_fields,
    metric_samples,
    normalise_entries,
    normalise_level,
    parse_log_text,
)
from veerunbook.logs_model import parse_time

FIXTURES = Path(__file__).parent / "fixtures" / "veefore-logs-mixed"
TOKEN = "IGQWRTESTONLY0000000000000000000000000000FAKE"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def read_fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def api() -> LogParse:
    return parse_log_text(read_fixture("api-production.log"), source="api")


@pytest.fixture(scope="module")
def staging() -> LogParse:
    return parse_log_text(read_fixture("staging-dev.log"), source="staging")


@pytest.fixture(scope="module")
def worker() -> LogParse:
    return parse_log_text(read_fixture("metrics-worker.log"), source="worker")


def by_correlation_id(records: list[LogRecord], value: str) -> LogRecord:
    matches = [r for r in records if r.fields.get("correlationId") == value]
    assert len(matches) == 1
    return matches[0]


# api-production.log


def test_api_log_line_count(api: LogParse) -> None:
    assert api.line_count == 161


def test_api_log_truncated_last_line(api: LogParse) -> None:
    assert [entry.line for entry in api.malformed] == [161]
    reason = api.malformed[0].reason
    assert "invalid UTF-8" in reason
    assert "no newline" in reason


def test_api_log_json_records(api: LogParse) -> None:
    assert sum(1 for r in api.records if r.kind == "json") == 76


def test_api_log_levels(api: LogParse) -> None:
    assert api.counts == {"info": 68, "warn": 3, "error": 5}


def test_api_log_multiline_events(api: LogParse) -> None:
    blocks = [r.raw_lines for r in api.records if r.raw_lines[0] != r.raw_lines[1]]
    assert blocks == [(18, 39), (69, 90), (100, 105), (107, 112), (129, 150)]


def test_api_log_single_line_raw(api: LogParse) -> None:
    raw = [r for r in api.records if r.kind == "raw"]
    single = [r.raw_lines[0] for r in raw if r.raw_lines[0] == r.raw_lines[1]]
    assert single == [7, 51, 52, 61, 94, 156]


def test_api_log_stack_frames_not_events(api: LogParse) -> None:
    assert not [r for r in api.records if r.message.lstrip().startswith("at ")]


def test_api_call_stats(api: LogParse) -> None:
    stats = api_call_stats(api.records)
    assert stats["api_calls"] == 52
    assert stats["excluded"] == 4
    assert stats["requests"] == 48
    assert stats["status_5xx"] == 5
    assert stats["status_4xx"] == 3
    assert stats["rate_5xx_percent"] == 10.42


def test_api_call_stats_window(api: LogParse) -> None:
    stats = api_call_stats(api.records)
    assert stats["first_time"] == "2026-12-04T14:40:00.470Z"
    assert stats["last_time"] == "2026-12-04T14:41:50.904Z"


def test_api_call_stats_no_exclude(api: LogParse) -> None:
    stats = api_call_stats(api.records, exclude=None)
    assert stats["requests"] == 52
    assert stats["rate_5xx_percent"] == 9.62


def test_api_call_stats_invalid_exclude(api: LogParse) -> None:
    with pytest.raises(UsageError, match="Invalid exclude pattern"):
        api_call_stats(api.records, exclude="(")


def test_metrics_scrapes_logged_twice(api: LogParse) -> None:
    scrapes = [r for r in api.records if r.fields.get("endpoint") == "/metrics"]
    assert len(scrapes) == 4
    assert sum(1 for r in scrapes if r.fields.get("responseTime") == 0) == 2


def test_metric_lines(api: LogParse) -> None:
    samples = metric_samples(api.records)
    assert sum(len(values) for values in samples.values()) == 24
    assert samples["health_check_liveness"] == [0.0] * 12
    assert samples["health_check_readiness"] == [0.0] * 12


def test_error_groups(api: LogParse) -> None:
    assert len(group_errors(api.records)) == 2


def test_instagram_error_group(api: LogParse) -> None:
    group = group_errors(api.records)[0]
    assert group.signature == (
        "AxiosError: Request failed with status code 400"
        " / (#4) Application request limit reached"
    )
    assert group.count == 3
    assert group.correlation_ids == [
        "corr_cced9041dff0",
        "corr_cee737443e21",
        "corr_471948d33296",
    ]
    assert group.routes == {"GET /api/instagram/detailed-insights": 3}
    assert group.first_frame == (
        "settle (file:///app/node_modules/axios/lib/core/settle.js:19:12)"
    )
    assert group.lines == [18, 69, 129]
    assert group.first_seen == utc("2026-12-04T14:40:19.703Z")
    assert group.last_seen == utc("2026-12-04T14:41:39.903Z")


def test_mongo_error_group(api: LogParse) -> None:
    group = group_errors(api.records)[1]
    assert group.signature == (
        "MongoServerSelectionError: connection <monitor> to 192.0.2.40:27017 closed"
    )
    assert group.count == 2
    assert group.correlation_ids == ["corr_87009e8a7f77", "corr_d9106fd287db"]
    assert group.routes == {"GET /api/dashboard/analytics": 2}


def test_mongo_requests_took_30s(api: LogParse) -> None:
    for correlation_id in ("corr_87009e8a7f77", "corr_d9106fd287db"):
        request = by_correlation_id(api.records, correlation_id)
        assert 30_000 <= request.fields["responseTime"] < 31_000


def test_group_fingerprint_normalised(api: LogParse) -> None:
    group = group_errors(api.records)[1]
    assert "192.0.2.40" not in group.fingerprint
    assert "<ip>" in group.fingerprint
    frame = (
        "Topology.selectServer (/app/node_modules/mongodb/lib/sdam/topology.js:321:38)"
    )
    assert group.fingerprint.endswith(f" @ {frame}")


def test_warn_groups_include_4xx(api: LogParse) -> None:
    groups = group_errors(api.records, min_level="warn")
    assert len(groups) == 5
    assert sum(group.count for group in groups) == 8


def test_group_errors_invalid_level(api: LogParse) -> None:
    with pytest.raises(UsageError, match="Invalid min_level"):
        group_errors(api.records, min_level="severe")


def test_access_token_masked(api: LogParse) -> None:
    groups = [group.to_dict() for group in group_errors(api.records)]
    output = json.dumps([api.to_dict(), groups, api_call_stats(api.records)])
    assert TOKEN not in output
    assert "IGQWRTESTONLY" not in output
    assert "access_token=***" in groups[0]["sample"]


def test_api_log_no_restart(api: LogParse) -> None:
    assert api.restarts == []


def test_api_log_to_dict(api: LogParse) -> None:
    document = json.loads(json.dumps(api.to_dict()))
    assert document["counts"] == {"info": 68, "warn": 3, "error": 5}
    assert document["malformed"][0]["line"] == 161
    assert document["records"][0]["time"] == "2026-12-04T14:40:00.470Z"


# staging-dev.log


def test_staging_records(staging: LogParse) -> None:
    assert len(staging.records) == 3
    assert [r.kind for r in staging.records] == ["pretty"] * 3
    assert [r.raw_lines for r in staging.records] == [(1, 18), (19, 37), (38, 54)]
    assert staging.malformed == []


def test_staging_levels(staging: LogParse) -> None:
    assert staging.counts == {"debug": 2, "error": 1}


def test_staging_error_record(staging: LogParse) -> None:
    record = staging.records[0]
    assert record.message == "❌ API ERROR: POST /api/ai/generate-image"
    assert record.fields["event"] == "API_CALL"
    assert record.fields["statusCode"] == 502
    assert record.fields["endpoint"] == "/api/ai/generate-image"
    assert record.fields["responseTime"] == 30004


def test_staging_json_timestamp_wins(staging: LogParse) -> None:
    assert staging.records[0].time == utc("2026-12-04T14:40:12.331Z")


def test_staging_debug_events(staging: LogParse) -> None:
    events = [r.fields.get("event") for r in staging.records[1:]]
    assert events == ["METRIC_COUNTER", "METRIC_HISTOGRAM"]


def test_staging_error_group(staging: LogParse) -> None:
    groups = group_errors(staging.records)
    assert len(groups) == 1
    assert groups[0].routes == {"POST /api/ai/generate-image": 1}
    assert groups[0].correlation_ids == ["corr_c0ffee12ab34"]


# metrics-worker.log


def test_worker_levels(worker: LogParse) -> None:
    assert worker.counts == {"info": 4, "warn": 1, "error": 2, "fatal": 1}


def test_worker_whole_line_levels(worker: LogParse) -> None:
    whole = [
        r
        for r in worker.records
        if r.kind == "json" and r.raw_lines[0] == r.raw_lines[1]
    ]
    levels = [r.level for r in whole]
    assert levels.count("info") == 4
    assert levels.count("warn") == 1
    assert levels.count("error") == 1
    assert levels.count("fatal") == 1


def test_worker_split_record_rejoined(worker: LogParse) -> None:
    record = next(r for r in worker.records if r.raw_lines == (5, 6))
    assert record.level == "error"
    assert record.message == "job failed"
    assert record.fields["jobId"] == "metrics-refresh:88213"
    assert record.fields["err"]["type"] == "InstagramApiError"
    assert record.fields["err"]["response"]["body"]["error"]["code"] == 190
    assert worker.malformed == []


def test_worker_split_record_unjoinable() -> None:
    lines = read_fixture("metrics-worker.log").split(b"\n")
    lines[5] = lines[5][:-3]  # drop the tail's closing characters
    parse = parse_log_text(b"\n".join(lines))
    assert [entry.line for entry in parse.malformed] == [5, 6]
    assert parse.counts == {"info": 4, "warn": 1, "error": 1, "fatal": 1}


def test_worker_crash_one_event(worker: LogParse) -> None:
    crashes = [r for r in worker.records if r.fields.get("crash")]
    assert len(crashes) == 1
    crash = crashes[0]
    assert crash.raw_lines == (8, 21)
    assert crash.message == (
        "Error: Redis connection to 192.0.2.41:6379 failed - connect ECONNREFUSED "
        "192.0.2.41:6379"
    )
    assert crash.fields["node_version"] == "v20.18.1"
    assert crash.fields["origin"] == "node:internal/process/promises:394"


def test_worker_no_events_inside_crash(worker: LogParse) -> None:
    starts = [r.raw_lines[0] for r in worker.records]
    assert starts == [1, 2, 3, 4, 5, 7, 8, 22, 23]


def test_worker_restart(worker: LogParse) -> None:
    assert len(worker.restarts) == 1
    restart = worker.restarts[0]
    assert restart.old_pid == 19
    assert restart.new_pid == 20
    assert restart.line == 22


def test_job_recovered(worker: LogParse) -> None:
    job = job_outcomes(worker.records)["metrics-refresh:88212"]
    assert job.status == "recovered"
    assert job.failures == 1
    assert job.completed_at == utc("2026-12-04T14:41:03.551Z")
    assert job.completed_at > (worker.restarts[0].time or job.completed_at)


def test_job_not_recovered(worker: LogParse) -> None:
    job = job_outcomes(worker.records)["metrics-refresh:88213"]
    assert job.status == "failed"
    assert job.attempts == 3
    assert job.completed_at is None
    assert (job.last_error or "").startswith("InstagramApiError: Invalid OAuth")


def test_job_completed_first_try(worker: LogParse) -> None:
    job = job_outcomes(worker.records)["metrics-refresh:88211"]
    assert job.status == "completed"
    assert job.failures == 0


def test_worker_fatal_groups(worker: LogParse) -> None:
    groups = group_errors(worker.records, min_level="fatal")
    assert len(groups) == 1
    assert groups[0].count == 2


def test_worker_group_sample_has_stack(worker: LogParse) -> None:
    group = next(g for g in group_errors(worker.records) if g.lines == [3])
    assert group.sample.startswith("job failed\nMongoServerSelectionError")
    assert "at Topology.selectServer" in group.sample


def test_worker_crash_grouped_with_fatal(worker: LogParse) -> None:
    group = group_errors(worker.records)[0]
    assert group.count == 2
    assert group.lines == [7, 8]
    assert (
        group.first_frame
        == "TCPConnectWrap.afterConnect [as oncomplete] (node:net:1611:16)"
    )


# Parsing edge cases


def test_parse_accepts_str() -> None:
    text = read_fixture("staging-dev.log").decode("utf-8")
    assert parse_log_text(text).counts == {"debug": 2, "error": 1}


def test_parse_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="bytes or str"):
        parse_log_text(42)  # type: ignore[arg-type]


def test_crlf_line_endings() -> None:
    data = b'{"level":30,"time":1796395200118,"msg":"a"}\r\nplain\r\n'
    parse = parse_log_text(data)
    assert [r.message for r in parse.records] == ["a", "plain"]


def test_bare_pretty_json() -> None:
    data = b'{\n  "level": "warn",\n  "message": "disk low",\n  "free": 3\n}\nnext\n'
    parse = parse_log_text(data)
    assert parse.records[0].kind == "pretty"
    assert parse.records[0].raw_lines == (1, 5)
    assert parse.records[0].fields == {"free": 3}


def test_prefix_line_without_json() -> None:
    parse = parse_log_text(b"[2026-12-04T14:40:12.337Z] WARN: cache cold\n")
    record = parse.records[0]
    assert record.level == "warn"
    assert record.message == "cache cold"
    assert record.time == utc("2026-12-04T14:40:12.337Z")


def test_prefix_json_unparsable() -> None:
    data = b"[2026-12-04T14:40:12.337Z] ERROR: boom {\n  not json\n}\n"
    parse = parse_log_text(data)
    assert len(parse.records) == 1
    assert parse.records[0].level == "error"
    assert [entry.line for entry in parse.malformed] == [2, 3]


def test_closing_brace_continues_raw() -> None:
    parse = parse_log_text(b"Error: x {\n  code: 'E'\n}\nafter\n")
    assert [r.raw_lines for r in parse.records] == [(1, 3), (4, 4)]


def test_split_head_at_end_malformed() -> None:
    head = b'{"msg":"' + b"a" * (16384 - 8)
    parse = parse_log_text(head)
    assert [entry.line for entry in parse.malformed] == [1]


def test_split_head_before_blank_line() -> None:
    head = b'{"msg":"' + b"a" * (16384 - 8)
    parse = parse_log_text(head + b"\n\nnext\n")
    assert [entry.line for entry in parse.malformed] == [1]
    assert parse.records[0].message == "next"


def test_split_over_three_pieces() -> None:
    record = json.dumps({"level": 30, "msg": "big", "data": "x" * 40000}).encode()
    pieces = [record[i : i + 16384] for i in range(0, len(record), 16384)]
    parse = parse_log_text(b"\n".join(pieces) + b"\n")
    assert len(pieces) == 3
    assert parse.records[0].raw_lines == (1, 3)
    assert parse.malformed == []


def test_invalid_utf8_in_raw_line() -> None:
    parse = parse_log_text(b"caf\xc3 failed\n")
    assert parse.records[0].message == "caf\ufffd failed"
    assert parse.malformed == []


def test_json_array_line_is_raw() -> None:
    parse = parse_log_text(b'["not", "a", "record"]\n')
    assert parse.records[0].kind == "raw"


def test_random_bytes_never_raise() -> None:
    generator = random.Random(20261204)
    for _ in range(300):
        data = generator.randbytes(generator.randrange(0, 600))
        parse = parse_log_text(data)
        json.dumps(parse.to_dict())
        group_errors(parse.records)
        assert all(1 <= entry.line <= parse.line_count for entry in parse.malformed)


def mutate_outside_credentials(data: bytearray, generator: random.Random) -> None:
    """Replace a random slice of data with random bytes, sparing each credential."""
    credential = re.escape(b"access_token=" + TOKEN.encode())
    spared = [(m.start(), m.end()) for m in re.finditer(credential, data)]
    start = generator.randrange(len(data))
    end = start + generator.randrange(0, 40)
    if not any(start <= right and end >= left for left, right in spared):
        data[start:end] = generator.randbytes(generator.randrange(0, 8))


def test_mutated_fixture_never_raises() -> None:
    generator = random.Random(7)
    source = read_fixture("api-production.log") + read_fixture("metrics-worker.log")
    for _ in range(60):
        data = bytearray(source)
        for _ in range(20):
            mutate_outside_credentials(data, generator)
        parse = parse_log_text(bytes(data))
        api_call_stats(parse.records)
        job_outcomes(parse.records)
        assert TOKEN not in json.dumps(parse.to_dict())


def test_deep_nesting_malformed() -> None:
    parse = parse_log_text(b"{" + b'"a":[' * 100000 + b"\n")
    assert [entry.line for entry in parse.malformed] == [1]


# Levels, times, fingerprints


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (10, "trace"),
        (20, "debug"),
        (30, "info"),
        (35, "info"),
        (40, "warn"),
        (50, "error"),
        (60, "fatal"),
        (5, None),
        ("WARNING", "warn"),
        ("Error", "error"),
        ("critical", "fatal"),
        ("chatty", None),
        (True, None),
        (None, None),
    ],
)
def test_normalise_level(value: Any, expected: str | None) -> None:
    assert normalise_level(value) == expected


def test_parse_time_epoch_ms() -> None:
    assert parse_time(1796395263551) == utc("2026-12-04T14:41:03.551Z")


def test_parse_time_epoch_seconds() -> None:
    assert parse_time(1796395263) == utc("2026-12-04T14:41:03Z")


def test_parse_time_naive_is_utc() -> None:
    assert parse_time("2026-12-04T14:41:03") == utc("2026-12-04T14:41:03Z")


def test_parse_time_offset() -> None:
    assert parse_time("2026-12-04T15:41:03+01:00") == utc("2026-12-04T14:41:03Z")


@pytest.mark.parametrize("value", ["yesterday", 1e300, float("nan"), [], True])
def test_parse_time_invalid(value: Any) -> None:
    assert parse_time(value) is None


def test_fingerprint_replaces_variables() -> None:
    first = fingerprint(
        "timeout for corr_cced9041dff0 job 88213 on 192.0.2.1:80 "
        "doc 6750c0ffee1234abcd567890 user 'ann' "
        "req 0d4f7b2e-8c1a-4e9b-b3d6-5f2a1c7e9b80"
    )
    second = fingerprint(
        "timeout for corr_471948d33296 job 7 on 198.51.100.9:8080 "
        "doc 6750c0ffee1234abcd5678aa user 'bob' "
        "req b8d2f7e4-13a6-4c9f-9e01-7a5b6c4d3e2f"
    )
    assert first == second
    assert first == "timeout for <id> job <n> on <ip> doc <hex> user <str> req <uuid>"


def test_fingerprint_appends_frame() -> None:
    assert fingerprint("E: x 1", "f (a.js:1:2)") == "E: x <n> @ f (a.js:1:2)"


# Credentials


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET /insights?metric=reach&access_token=IGQWRT0FAKE&x=1",
            "GET /insights?metric=reach&access_token=***&x=1",
        ),
        ("token=abc123 next", "token=*** next"),
        ("login password=hunter2", "login password=***"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer ***"),
        ('{"authorization":"Basic dXNlcjpwYXNz"}', '{"authorization":"Basic ***"}'),
        ("curl -H 'x' Bearer abc.def", "curl -H 'x' Bearer ***"),
        (
            "mongodb://app:s3cr3t@192.0.2.40:27017/veefore",
            "mongodb://app:***@192.0.2.40:27017/veefore",
        ),
        (
            '{"password": "hunter2", "user": "ann"}',
            '{"password": "***", "user": "ann"}',
        ),
        ("refreshToken: 'r-123'", "refreshToken: '***'"),
        (
            "Invalid OAuth access token - Cannot parse",
            "Invalid OAuth access token - Cannot parse",
        ),
    ],
)
def test_mask_credentials(text: str, expected: str) -> None:
    assert mask_credentials(text) == expected


def test_mask_credentials_idempotent() -> None:
    once = mask_credentials(f"url?access_token={TOKEN} Authorization: Bearer abc")
    assert mask_credentials(once) == once


def test_mask_fields_nested() -> None:
    masked = mask_fields(
        {"headers": {"Authorization": "Bearer x", "Accept": "*/*"}, "apiKey": "k1"}
    )
    assert masked == {
        "headers": {"Authorization": "***", "Accept": "*/*"},
        "apiKey": "***",
    }


# Entries of a log endpoint, served by a real HTTP server on loopback

ENDPOINT_ENTRIES: list[Any] = [
    {
        "level": 50,
        "time": 1796395277052,
        "msg": "request errored",
        "correlationId": "corr_87009e8a7f77",
        "req": {
            "method": "GET",
            "url": f"/api/dashboard/analytics?range=7d&access_token={TOKEN}",
        },
        "err": {
            "type": "MongoServerSelectionError",
            "message": "connection <monitor> to 192.0.2.40:27017 closed",
            "stack": "MongoServerSelectionError: connection <monitor> to "
            "192.0.2.40:27017 closed\n    at Topology.selectServer "
            "(/app/node_modules/mongodb/lib/sdam/topology.js:321:38)",
        },
    },
    {
        "level": 50,
        "time": 1796395277612,
        "msg": "request errored",
        "correlationId": "corr_d9106fd287db",
        "req": {"method": "GET", "url": "/api/dashboard/analytics"},
        "err": {
            "type": "MongoServerSelectionError",
            "message": "connection <monitor> to 192.0.2.44:27017 closed",
            "stack": "MongoServerSelectionError: connection <monitor> to "
            "192.0.2.44:27017 closed\n    at Topology.selectServer "
            "(/app/node_modules/mongodb/lib/sdam/topology.js:321:38)",
        },
    },
    "not an object",
]


class _LogsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(ENDPOINT_ENTRIES).encode()
        status = 200 if self.path == "/health/logs?level=error&last=1h" else 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def logs_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LogsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def fetch_entries(base_url: str) -> list[Any]:
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        response = client.get("/health/logs", params={"level": "error", "last": "1h"})
        response.raise_for_status()
        entries: list[Any] = response.json()
        return entries


def test_endpoint_entries_normalised(logs_endpoint: str) -> None:
    records = normalise_entries(fetch_entries(logs_endpoint))
    assert len(records) == 2
    assert [r.level for r in records] == ["error", "error"]
    assert records[0].time == utc("2026-12-04T14:41:17.052Z")
    assert records[1].raw_lines == (2, 2)


def test_endpoint_entries_grouped(logs_endpoint: str) -> None:
    groups = group_errors(normalise_entries(fetch_entries(logs_endpoint)))
    assert len(groups) == 1
    assert groups[0].count == 2
    assert groups[0].correlation_ids == ["corr_87009e8a7f77", "corr_d9106fd287db"]
    assert groups[0].routes == {"GET /api/dashboard/analytics": 2}


def test_endpoint_entries_masked(logs_endpoint: str) -> None:
    records = normalise_entries(fetch_entries(logs_endpoint))
    assert TOKEN not in json.dumps([r.to_dict() for r in records])
