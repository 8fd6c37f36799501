"""Tests of the simulated VeeFore service, over real HTTP on loopback."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from veerunbook.simulator import (
    DEMO_EMAIL,
    DEMO_PASSWORD,
    SCENARIOS,
    RunningTarget,
    describe_scenarios,
    start_target,
)

TOKEN_ENV = "VEERUNBOOK_TEST_ADMIN_TOKEN"
TOKEN = "test-admin-token-4b1d"

StartTarget = Callable[..., RunningTarget]


@pytest.fixture
def start() -> Iterator[StartTarget]:
    """Start targets with a fixed seed and the test token variable; stop them all."""
    started: list[RunningTarget] = []

    def start_one(scenario: str = "healthy", **options: Any) -> RunningTarget:
        options.setdefault("seed", 7)
        options.setdefault("admin_token_env", TOKEN_ENV)
        target = start_target(scenario, **options)
        started.append(target)
        return target

    yield start_one
    for target in started:
        target.stop()


@pytest.fixture(scope="module")
def shared() -> Iterator[RunningTarget]:
    """A healthy target without background traffic, for tests of rejected input."""
    with start_target(seed=11, traffic_rate=0, admin_token_env=TOKEN_ENV) as target:
        yield target


def client_for(target: RunningTarget) -> httpx.Client:
    return httpx.Client(base_url=target.base_url, timeout=10.0)


def login(client: httpx.Client) -> dict[str, str]:
    response = client.post(
        "/api/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['token']}"}


def scrape(client: httpx.Client) -> dict[str, Any]:
    """Parse /metrics into {family name: family}."""
    response = client.get("/metrics")
    assert response.status_code == 200
    families = text_string_to_metric_families(response.text)
    return {family.name: family for family in families}


def request_counts(client: httpx.Client) -> tuple[float, float]:
    """Return (all requests, 5xx requests) from the counters, /metrics excluded."""
    total = errors = 0.0
    for sample in scrape(client)["http_requests"].samples:
        if sample.name != "http_requests_total":
            continue
        if sample.labels["endpoint"] == "/metrics":
            continue
        total += sample.value
        if sample.labels["status_code"].startswith("5"):
            errors += sample.value
    return total, errors


def error_rate_over(client: httpx.Client, requests: int) -> float:
    """Measure the 5xx share of the next ``requests`` requests the service counts."""
    total_0, errors_0 = request_counts(client)
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        time.sleep(0.25)
        total_1, errors_1 = request_counts(client)
        if total_1 - total_0 >= requests:
            return (errors_1 - errors_0) / (total_1 - total_0)
    raise AssertionError(f"the service counted fewer than {requests} requests in 20 s")


def wait_for_logs(client: httpx.Client, query: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        logs: list[dict[str, Any]] = client.get(f"/health/logs?{query}").json()["logs"]
        if len(logs) >= count:
            return logs
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} log records for {query} in 10 s")


# Starting and stopping


def test_start_binds_free_port(start: StartTarget) -> None:
    target = start()
    assert target.port > 0
    assert target.base_url == f"http://127.0.0.1:{target.port}"
    with client_for(target) as client:
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com", "::"])
def test_start_rejects_non_loopback_host(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        start_target(host=host)


def test_start_accepts_localhost(start: StartTarget) -> None:
    target = start(host="localhost", traffic_rate=0)
    assert target.host == "127.0.0.1"


def test_start_rejects_unknown_scenario() -> None:
    with pytest.raises(ValueError, match="db-outage"):
        start_target("no-such-scenario")


def test_start_rejects_invalid_rate() -> None:
    with pytest.raises(ValueError, match="traffic rate"):
        start_target(traffic_rate=-1)


def test_start_rejects_invalid_port() -> None:
    with pytest.raises(ValueError, match="port"):
        start_target(port=70000)


def test_start_fails_on_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            start_target(port=busy.getsockname()[1], traffic_rate=0)


def test_stop_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    target = start_target(traffic_rate=50, seed=3)
    data_dir = target.database_path.parent
    with client_for(target) as client:
        assert client.get("/health").status_code == 200
    target.stop()
    assert set(threading.enumerate()) == before
    assert not data_dir.exists()


def test_stop_twice_is_harmless() -> None:
    target = start_target(traffic_rate=0)
    target.stop()
    target.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{target.base_url}/healthz", timeout=2.0)


def test_data_dir_kept_and_reused(tmp_path: Path) -> None:
    with start_target(data_dir=tmp_path, traffic_rate=0) as target:
        assert target.database_path == tmp_path / "veefore.sqlite3"
    with start_target(data_dir=tmp_path, traffic_rate=0) as target:
        connection = sqlite3.connect(target.database_path)
        (accounts,) = connection.execute("SELECT COUNT(*) FROM accounts").fetchone()
        connection.close()
    assert accounts == 5


def test_database_seeded(start: StartTarget) -> None:
    target = start(traffic_rate=0)
    connection = sqlite3.connect(target.database_path)
    count = {
        table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("accounts", "posts", "payments", "migrations", "deploys")
    }
    statuses = {
        row[0] for row in connection.execute("SELECT DISTINCT status FROM posts")
    }
    addresses = [
        row[0] for row in connection.execute("SELECT last_login_ip FROM accounts")
    ]
    columns = [row[1] for row in connection.execute("PRAGMA table_info(deploys)")]
    connection.close()
    assert count == {
        "accounts": 5,
        "posts": 40,
        "payments": 15,
        "migrations": 10,
        "deploys": 5,
    }
    assert statuses == {"scheduled", "published"}
    for address in addresses:
        assert address.startswith(("203.0.113.", "198.51.100."))
    assert {"version", "deployed_at", "status", "note"} <= set(columns)


# Scenarios


def test_describe_scenarios_lists_registry() -> None:
    described = describe_scenarios()
    assert [entry["name"] for entry in described] == sorted(SCENARIOS)
    assert {"healthy", "db-outage", "error-spike"} <= set(SCENARIOS)
    for entry in described:
        assert entry["summary"]
        assert entry["symptoms"]
        assert entry["diagnosis"]


def test_set_scenario_switches(start: StartTarget) -> None:
    target = start(traffic_rate=0)
    target.set_scenario("db-outage")
    assert target.scenario == "db-outage"
    with client_for(target) as client:
        assert client.get("/health").status_code == 503


def test_set_scenario_rejects_unknown(start: StartTarget) -> None:
    target = start(traffic_rate=0)
    with pytest.raises(ValueError, match="unknown scenario"):
        target.set_scenario("meteor")
    assert target.scenario == "healthy"


def test_switch_during_requests_never_crashes(
    start: StartTarget, caplog: pytest.LogCaptureFixture
) -> None:
    target = start(traffic_rate=200)
    with client_for(target) as client:
        headers = login(client)
    paths = ["/health", "/readyz", "/health/database", "/api/user", "/api/posts"]
    paths += ["/api/dashboard/analytics", "/metrics", "/health/logs?level=error"]
    failures: list[str] = []
    statuses: set[int] = set()
    stop = threading.Event()

    def hammer() -> None:
        with client_for(target) as client:
            while not stop.is_set():
                for path in paths:
                    try:
                        response = client.get(path, headers=headers)
                        statuses.add(response.status_code)
                        if path != "/metrics":
                            response.json()
                    except (httpx.HTTPError, json.JSONDecodeError) as exc:
                        failures.append(f"{path}: {exc!r}")

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    with caplog.at_level(logging.WARNING):
        for worker in workers:
            worker.start()
        switches = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            target.set_scenario(("db-outage", "error-spike", "healthy")[switches % 3])
            switches += 1
            time.sleep(0.03)
        stop.set()
        for worker in workers:
            worker.join(15.0)

    assert failures == []
    assert not any(worker.is_alive() for worker in workers)
    assert statuses <= {200, 500, 503}
    assert {200, 503} <= statuses
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    with client_for(target) as client:
        assert client.get("/healthz").status_code == 200


# Health endpoints


def test_health_healthy(start: StartTarget) -> None:
    with client_for(start(traffic_rate=0)) as client:
        response = client.get("/health")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "healthy"
    assert body["version"] == "1.4.2"
    assert body["uptime"] >= 0
    assert body["timestamp"].endswith("Z")
    assert set(body["checks"]) == {"database", "memory", "instagram", "dataIntegrity"}
    for name, check in body["checks"].items():
        assert check["status"] == "pass", name
    assert body["checks"]["database"]["latencyMs"] > 0
    assert body["checks"]["memory"]["heapUsedPercent"] < 85
    assert body["checks"]["dataIntegrity"]["detail"] == (
        "15 payments rows pass validation"
    )


def test_health_db_outage(start: StartTarget) -> None:
    with client_for(start("db-outage", traffic_rate=0)) as client:
        response = client.get("/health")
    database = response.json()["checks"]["database"]
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert database["status"] == "fail"
    assert database["error"] == "connect ECONNREFUSED 192.0.2.10:5432"


def test_health_error_spike_passes(start: StartTarget) -> None:
    with client_for(start("error-spike", traffic_rate=0)) as client:
        health = client.get("/health")
        ready = client.get("/readyz")
        database = client.get("/health/database")
    assert health.status_code == 200
    assert health.json()["status"] == "healthy"
    assert ready.status_code == 200
    assert database.status_code == 200


def test_liveness_ok_in_db_outage(start: StartTarget) -> None:
    with client_for(start("db-outage", traffic_rate=0)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readiness_per_scenario(start: StartTarget) -> None:
    target = start(traffic_rate=0)
    with client_for(target) as client:
        ready = client.get("/readyz")
        target.set_scenario("db-outage")
        not_ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["checks"]["database"]["status"] == "pass"
    assert not_ready.status_code == 503
    assert not_ready.json()["status"] == "not_ready"
    assert not_ready.json()["checks"]["database"]["status"] == "fail"
    assert "ECONNREFUSED" in not_ready.json()["checks"]["database"]["error"]


def test_database_health_pool(start: StartTarget) -> None:
    with client_for(start(traffic_rate=0)) as client:
        response = client.get("/health/database")
    body = response.json()
    pool = body["pool"]
    assert response.status_code == 200
    assert body["status"] == "healthy"
    assert "error" not in body
    assert body["queryLatencyMs"] > 0
    assert pool["max"] == 20
    assert 0 < pool["total"] <= pool["max"]
    assert pool["idle"] <= pool["total"]
    assert pool["waiting"] == 0


def test_database_health_outage(start: StartTarget) -> None:
    with client_for(start("db-outage", traffic_rate=0)) as client:
        response = client.get("/health/database")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unhealthy"
    assert body["error"] == "connect ECONNREFUSED 192.0.2.10:5432"
    assert body["queryLatencyMs"] is None
    assert body["pool"] == {"total": 0, "idle": 0, "waiting": 0, "max": 20}


# Logs


def test_logs_error_spike_signatures(start: StartTarget) -> None:
    with client_for(start("error-spike", traffic_rate=1000)) as client:
        logs = wait_for_logs(client, "level=error&last=15m", 40)
    types = {record["err"]["type"] for record in logs}
    urls = {record["req"]["url"] for record in logs}
    assert types == {"TypeError", "RangeError"}
    assert urls == {"/api/instagram/publish", "/api/dashboard/analytics"}
    for record in logs:
        assert record["level"] == 50
        assert record["correlationId"].startswith("corr_")
        assert record["res"]["statusCode"] == 500
        assert "\n    at " in record["err"]["stack"]


def test_logs_db_outage_connection_error(start: StartTarget) -> None:
    with client_for(start("db-outage", traffic_rate=200)) as client:
        logs = wait_for_logs(client, "level=50&last=300s", 10)
    record = logs[0]
    assert record["err"]["message"] == "connect ECONNREFUSED 192.0.2.10:5432"
    assert record["err"]["stack"].startswith("Error: connect ECONNREFUSED")
    assert record["res"]["statusCode"] == 503


def test_logs_filter_level_age_limit(start: StartTarget) -> None:
    with client_for(start(traffic_rate=200)) as client:
        wait_for_logs(client, "level=info&last=1h", 50)
        since_ms = time.time() * 1000 - 60_000
        logs = client.get("/health/logs?level=info&last=1m&limit=25").json()["logs"]
        warnings = client.get("/health/logs?level=warn&last=1h").json()["logs"]
    times = [record["time"] for record in logs]
    assert len(logs) == 25
    assert times == sorted(times, reverse=True)
    assert min(times) >= since_ms
    for record in warnings:
        assert record["level"] >= 40


def test_logs_real_request_recorded(start: StartTarget) -> None:
    with client_for(start(traffic_rate=0)) as client:
        client.get("/nowhere", headers={"X-Correlation-ID": "corr_test00000001"})
        logs = client.get("/health/logs?level=warn").json()["logs"]
    assert logs[0]["correlationId"] == "corr_test00000001"
    assert logs[0]["req"] == {
        "method": "GET",
        "url": "/nowhere",
        "remoteAddress": "127.0.0.1",
    }
    assert logs[0]["res"] == {"statusCode": 404}


@pytest.mark.parametrize(
    "query", ["level=loud", "last=1y", "last=0s", "last=9d", "limit=0", "limit=5000"]
)
def test_logs_reject_invalid_query(shared: RunningTarget, query: str) -> None:
    with client_for(shared) as client:
        response = client.get(f"/health/logs?{query}")
    assert response.status_code == 400
    assert "invalid" in response.json()["error"]


# Metrics


def test_metrics_parse(start: StartTarget) -> None:
    with client_for(start(traffic_rate=200)) as client:
        time.sleep(0.3)
        response = client.get("/metrics")
        families = scrape(client)
    assert (
        response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    )
    assert families["http_requests"].type == "counter"
    assert families["http_request_duration_seconds"].type == "histogram"
    assert families["security_blocked_ips"].type == "counter"
    assert families["auth_failed_logins"].type == "counter"
    for name in (
        "database_connections",
        "database_connections_max",
        "process_resident_memory_bytes",
        "nodejs_heap_size_used_bytes",
        "nodejs_heap_size_total_bytes",
        "nodejs_process_uptime_seconds",
        "process_start_time_seconds",
    ):
        assert families[name].type == "gauge"
    assert "_created" not in response.text


def test_metrics_histogram_buckets(start: StartTarget) -> None:
    with client_for(start(traffic_rate=200)) as client:
        time.sleep(0.3)
        family = scrape(client)["http_request_duration_seconds"]
    bounds = {
        sample.labels["le"]
        for sample in family.samples
        if sample.name.endswith("_bucket")
    }
    label_sets = {
        tuple(sorted(sample.labels))
        for sample in family.samples
        if "le" in sample.labels
    }
    assert {"10.0", "+Inf"} <= bounds
    assert label_sets == {("endpoint", "le", "method")}


def test_metrics_count_real_requests(start: StartTarget) -> None:
    with client_for(start(traffic_rate=0)) as client:
        for _ in range(3):
            client.get("/api/deployments")
        samples = scrape(client)["http_requests"].samples
    counted = {
        (s.labels["endpoint"], s.labels["status_code"]): s.value
        for s in samples
        if s.name == "http_requests_total"
    }
    assert counted == {("/api/deployments", "200"): 3.0}


def test_metrics_pool_gauges_per_scenario(start: StartTarget) -> None:
    target = start(traffic_rate=0)
    with client_for(target) as client:
        healthy = scrape(client)["database_connections"].samples
        target.set_scenario("db-outage")
        outage = scrape(client)["database_connections"].samples
    active = {s.labels["state"]: s.value for s in healthy}
    assert active["active"] >= 1
    assert {s.labels["state"]: s.value for s in outage} == {
        "active": 0.0,
        "idle": 0.0,
        "waiting": 0.0,
    }


def test_error_rate_error_spike(start: StartTarget) -> None:
    with client_for(start("error-spike", traffic_rate=1000)) as client:
        rate = error_rate_over(client, 800)
    assert 0.15 <= rate <= 0.40


def test_error_rate_healthy(start: StartTarget) -> None:
    with client_for(start("healthy", traffic_rate=1000)) as client:
        rate = error_rate_over(client, 800)
    assert rate < 0.01


def test_error_rate_db_outage(start: StartTarget) -> None:
    with client_for(start("db-outage", traffic_rate=1000)) as client:
        rate = error_rate_over(client, 800)
    assert rate > 0.9


# Audit endpoints


def test_security_audit_shape(start: StartTarget) -> None:
    with client_for(start(traffic_rate=0)) as client:
        for _ in range(2):
            client.post("/api/auth/login", json={"email": DEMO_EMAIL, "password": "x"})
        everything = client.get("/api/audit/security").json()
        high = client.get("/api/audit/security?severity=high").json()
    event = everything["events"][0]
    assert set(event) == {"time", "type", "ip", "severity", "detail", "user"}
    assert event["type"] == "failed_login"
    assert event["user"] == DEMO_EMAIL
    assert event["ip"] == "127.0.0.1"
    assert len(everything["events"]) == 2
    assert high["events"] == []
    assert everything["blockedIps"] == []
    assert everything["rateLimiting"] == {
        "enabled": True,
        "limit": 10,
        "windowSeconds": 900,
        "hits": 0,
    }


def test_security_audit_rejects_severity(shared: RunningTarget) -> None:
    with client_for(shared) as client:
        response = client.get("/api/audit/security?severity=urgent")
    assert response.status_code == 400


def test_performance_audit_healthy(start: StartTarget) -> None:
    with client_for(start(traffic_rate=1000)) as client:
        deadline = time.monotonic() + 10.0
        body = client.get("/api/audit/performance").json()
        while body["sampleSize"] < 300 and time.monotonic() < deadline:
            time.sleep(0.1)
            body = client.get("/api/audit/performance").json()
    assert set(body["webVitals"]) == {"lcpMs", "cls", "inpMs"}
    assert body["sampleSize"] >= 300
    assert 0 < body["api"]["p95Ms"] < 300
    assert body["api"]["p95Ms"] <= body["api"]["p99Ms"]


def test_deployments_listed(start: StartTarget) -> None:
    target = start(traffic_rate=0)
    with client_for(target) as client:
        body = client.get("/api/deployments?limit=3").json()
        target.set_scenario("db-outage")
        outage = client.get("/api/deployments")
    versions = [deploy["version"] for deploy in body["deployments"]]
    assert body["current"] == "1.4.2"
    assert versions == ["1.4.2", "1.4.1", "1.4.0"]
    assert body["deployments"][2]["status"] == "rolled_back"
    assert outage.status_code == 503


# Admin: block-ip


def block(
    client: httpx.Client, body: dict[str, Any], token: str | None = TOKEN
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/admin/security/block-ip", json=body, headers=headers)


def test_block_ip_disabled_without_variable(
    shared: RunningTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with client_for(shared) as client:
        response = block(client, {"ip": "203.0.113.9"})
    assert response.status_code == 503
    assert TOKEN_ENV in response.json()["error"]


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x"])
def test_block_ip_rejects_bad_token(
    shared: RunningTarget, monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with client_for(shared) as client:
        response = block(client, {"ip": "203.0.113.9"}, token=token)
        blocked = client.get("/api/audit/security").json()["blockedIps"]
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert blocked == []


@pytest.mark.parametrize(
    "body", [{"ip": "203.0.113.300"}, {"ip": "not-an-ip"}, {}, {"ip": "127.0.0.1"}]
)
def test_block_ip_rejects_invalid_address(
    shared: RunningTarget, monkeypatch: pytest.MonkeyPatch, body: dict[str, Any]
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with client_for(shared) as client:
        response = block(client, body)
    assert response.status_code == 400


def test_block_ip_idempotent_then_403(
    start: StartTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    attacker = {"X-Forwarded-For": "203.0.113.66, 198.51.100.1"}
    with client_for(start(traffic_rate=0)) as client:
        first = block(client, {"ip": "203.0.113.66", "reason": "security_incident"})
        again = block(client, {"ip": "203.0.113.66", "reason": "security_incident"})
        api = client.get("/api/deployments", headers=attacker)
        health = client.get("/health", headers=attacker)
        metrics = client.get("/metrics", headers=attacker)
        other = client.get("/api/deployments")
        audit = client.get("/api/audit/security?severity=medium").json()
        counter = scrape(client)["security_blocked_ips"].samples[0].value
    assert first.status_code == 200
    assert first.json()["alreadyBlocked"] is False
    assert again.status_code == 200
    assert again.json()["alreadyBlocked"] is True
    assert api.status_code == 403
    assert health.status_code == 200
    assert metrics.status_code == 200
    assert other.status_code == 200
    assert [entry["ip"] for entry in audit["blockedIps"]] == ["203.0.113.66"]
    assert audit["events"][0]["type"] == "ip_blocked"
    assert counter == 1.0


# User flows


def test_user_flow_schedule_publish(start: StartTarget) -> None:
    with client_for(start(traffic_rate=0)) as client:
        headers = login(client)
        when = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
        scheduled = client.post(
            "/api/posts/schedule",
            json={"caption": "Launch day", "scheduledAt": when},
            headers=headers,
        )
        post_id = scheduled.json()["post"]["id"]
        published = client.post(
            "/api/instagram/publish", json={"postId": post_id}, headers=headers
        )
        again = client.post(
            "/api/instagram/publish", json={"postId": post_id}, headers=headers
        )
        posts = client.get("/api/posts?status=published", headers=headers).json()
    assert scheduled.status_code == 201
    assert scheduled.json()["post"]["status"] == "scheduled"
    assert published.status_code == 200
    assert published.json()["post"]["status"] == "published"
    assert published.json()["post"]["instagramMediaId"]
    assert again.status_code == 409
    assert post_id in [post["id"] for post in posts["posts"]]


def test_publish_dry_run_changes_nothing(start: StartTarget) -> None:
    with client_for(start(traffic_rate=0)) as client:
        headers = login(client)
        before = client.get("/api/posts?status=scheduled", headers=headers).json()
        post_id = before["posts"][0]["id"]
        dry_run = client.post(
            "/api/instagram/publish",
            json={"postId": post_id, "dryRun": True},
            headers=headers,
        )
        on_published = client.post(
            "/api/instagram/publish",
            json={"postId": 1, "dryRun": True},
            headers=headers,
        )
        after = client.get("/api/posts?status=scheduled", headers=headers).json()
    assert dry_run.status_code == 200
    assert dry_run.json()["dryRun"] is True
    assert on_published.status_code == 200
    assert after == before


def test_user_profile_and_analytics(start: StartTarget) -> None:
    with client_for(start(traffic_rate=0)) as client:
        headers = login(client)
        user = client.get("/api/user", headers=headers).json()
        analytics = client.get("/api/dashboard/analytics", headers=headers).json()
    assert user["email"] == DEMO_EMAIL
    assert user["lastLoginIp"] == "127.0.0.1"
    assert user["instagram"]["connected"] is True
    assert analytics["postsPublished"] == 5
    assert analytics["postsScheduled"] == 3
    assert analytics["followers"] == user["instagram"]["followers"]


@pytest.mark.parametrize(
    "path", ["/api/user", "/api/posts", "/api/dashboard/analytics"]
)
def test_user_routes_require_token(shared: RunningTarget, path: str) -> None:
    with client_for(shared) as client:
        response = client.get(path, headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401


def test_login_wrong_password_counted(start: StartTarget) -> None:
    with client_for(start(traffic_rate=0)) as client:
        response = client.post(
            "/api/auth/login", json={"email": DEMO_EMAIL, "password": "guess"}
        )
        counter = scrape(client)["auth_failed_logins"].samples[0].value
    assert response.status_code == 401
    assert counter == 1.0


def test_login_rate_limited(start: StartTarget) -> None:
    wrong = {"email": DEMO_EMAIL, "password": "guess"}
    with client_for(start(traffic_rate=0)) as client:
        statuses = [
            client.post("/api/auth/login", json=wrong).status_code for _ in range(11)
        ]
        rate_limiting = client.get("/api/audit/security").json()["rateLimiting"]
    assert statuses == [401] * 10 + [429]
    assert rate_limiting["hits"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"caption": "", "scheduledAt": "2099-01-01T00:00:00Z"},
        {"caption": "Late", "scheduledAt": "2001-01-01T00:00:00Z"},
        {"caption": "No zone", "scheduledAt": "2099-01-01T00:00:00"},
        {"caption": "Bad date", "scheduledAt": "tomorrow"},
    ],
)
def test_schedule_rejects_invalid_post(
    shared: RunningTarget, body: dict[str, str]
) -> None:
    with client_for(shared) as client:
        response = client.post("/api/posts/schedule", json=body, headers=login(client))
    assert response.status_code == 400


def test_user_routes_fail_in_db_outage(start: StartTarget) -> None:
    target = start(traffic_rate=0)
    with client_for(target) as client:
        headers = login(client)
        target.set_scenario("db-outage")
        responses = {
            "login": client.post(
                "/api/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
            ),
            "user": client.get("/api/user", headers=headers),
            "posts": client.get("/api/posts", headers=headers),
            "analytics": client.get("/api/dashboard/analytics", headers=headers),
        }
    for name, response in responses.items():
        assert response.status_code == 503, name
        assert response.json()["correlationId"] == response.headers["x-correlation-id"]


def test_oversized_body_rejected(shared: RunningTarget) -> None:
    with client_for(shared) as client:
        response = client.post("/api/auth/login", content=b"x" * (65 * 1024))
        logs = client.get("/health/logs?level=warn&limit=1").json()["logs"]
    assert response.status_code == 413
    assert logs[0]["res"] == {"statusCode": 413}


def test_unknown_route_json_404(shared: RunningTarget) -> None:
    with client_for(shared) as client:
        response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "Not Found"


# Command line


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_forever_stops_on_signal(signum: signal.Signals) -> None:
    code = "from veerunbook.simulator import serve_forever; serve_forever(port=0)"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30.0)
        assert ready, "serve_forever printed no URL within 30 s"
        base_url = process.stdout.readline().strip()
        status = httpx.get(f"{base_url}/healthz", timeout=5.0).status_code
        process.send_signal(signum)
        returncode = process.wait(timeout=30.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        _, stderr = process.communicate()
    assert base_url.startswith("http://127.0.0.1:")
    assert status == 200
    assert returncode == 0
    assert "Ctrl-C" in stderr
