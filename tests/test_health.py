"""Health verdicts for Spring Boot, IETF health+json and Kubernetes responses."""

from __future__ import annotations

import json

import pytest
from httpfixture import load_recorded

from veerunbook.health import HealthVerdict, interpret_health, normalise_status

FORMATS = "health-formats-actuator-ietf-k8s"
MISBEHAVING = "health-misbehaving-responses"


def verdict_for(case: str, file_name: str) -> HealthVerdict:
    recorded = load_recorded(case, file_name)
    return interpret_health(recorded.status, recorded.content_type, recorded.body)


def check_status(verdict: HealthVerdict, name: str) -> str:
    return next(check.status for check in verdict.checks if check.name == name)


# The verdict table of the health formats, one row per test.


def test_actuator_down_fails() -> None:
    verdict = verdict_for(FORMATS, "actuator-down.http")
    assert verdict.overall == "fail"
    assert verdict.format == "spring-boot-actuator"
    assert [check.name for check in verdict.failing()] == ["db"]
    assert check_status(verdict, "redis") == "pass"


def test_actuator_down_names_exhaustion() -> None:
    verdict = verdict_for(FORMATS, "actuator-down.http")
    db = verdict.failing()[0]
    assert db.detail is not None
    assert "sorry, too many clients already" in db.detail
    assert verdict.diagnosis == "connection exhaustion"


def test_actuator_out_of_service_fails() -> None:
    verdict = verdict_for(FORMATS, "actuator-readiness-out-of-service.http")
    assert verdict.overall == "fail"
    assert check_status(verdict, "readinessState") == "fail"
    assert check_status(verdict, "livenessState") == "pass"
    assert "OUT_OF_SERVICE: the application is not ready." in verdict.reasons


def test_actuator_legacy_details_pass() -> None:
    verdict = verdict_for(FORMATS, "actuator-2.1-legacy.http")
    assert verdict.overall == "pass"
    assert verdict.format == "spring-boot-actuator"
    assert check_status(verdict, "db") == "pass"
    assert check_status(verdict, "diskSpace") == "pass"


def test_health_json_keeps_declared_warn() -> None:
    verdict = verdict_for(FORMATS, "health-json-warn.http")
    assert verdict.overall == "warn"
    assert verdict.format == "health+json"


def test_health_json_connections_warn() -> None:
    verdict = verdict_for(FORMATS, "health-json-warn.http")
    check = next(
        c for c in verdict.checks if c.name == "postgres:connections/pg-primary"
    )
    assert check.status == "warn"
    assert check.observed_value == 92
    assert check.observed_unit == "percent"


def test_health_json_surfaces_failing_node() -> None:
    verdict = verdict_for(FORMATS, "health-json-warn.http")
    failing = verdict.failing()
    assert [check.name for check in failing] == ["cpu:utilization/node-2"]
    assert failing[0].observed_value == 97.1
    assert failing[0].observed_unit == "percent"
    hidden = "The overall status warn hides the failing check cpu:utilization/node-2."
    assert hidden in verdict.reasons


def test_readyz_verbose_one_failure() -> None:
    verdict = verdict_for(FORMATS, "k8s-readyz-verbose-failed.http")
    assert verdict.overall == "fail"
    assert verdict.format == "kubernetes-verbose"
    assert [check.name for check in verdict.failing()] == ["etcd"]
    assert verdict.failing()[0].detail == "reason withheld"
    assert sum(check.status == "pass" for check in verdict.checks) == 9


def test_readyz_excluded_counts_as_neither() -> None:
    verdict = verdict_for(FORMATS, "k8s-readyz-verbose-ok-excluded.http")
    assert verdict.overall == "pass"
    assert check_status(verdict, "shutdown") == "skip"
    assert verdict.failing() == []
    assert sum(check.status == "pass" for check in verdict.checks) == 6


def test_readyz_plain_ok_passes() -> None:
    verdict = verdict_for(FORMATS, "k8s-readyz-plain.http")
    assert verdict.overall == "pass"
    assert verdict.format == "plain-text"


# The verdict table of the misbehaving responses, as read without the probe.


def test_spa_fallback_not_health() -> None:
    verdict = verdict_for(MISBEHAVING, "GET_api-readyz_spa-fallback-200.http")
    assert verdict.overall == "unknown"
    assert verdict.format == "html"
    assert "single-page-app fallback page" in verdict.reasons[0]


def test_not_ready_503_fails() -> None:
    verdict = verdict_for(MISBEHAVING, "GET_health-ready_503-json.http")
    assert verdict.overall == "fail"
    assert verdict.format == "app-json"
    assert verdict.reasons[0] == "Status not_ready: Database not connected."


def test_empty_200_passes_flagged() -> None:
    verdict = verdict_for(MISBEHAVING, "GET_healthz_200-empty.http")
    assert verdict.overall == "pass"
    assert "empty body" in verdict.reasons[0]


def test_204_passes_flagged() -> None:
    verdict = verdict_for(MISBEHAVING, "GET_status_204-no-content.http")
    assert verdict.overall == "pass"
    assert "no content" in verdict.reasons[0]


def test_302_is_never_health() -> None:
    verdict = verdict_for(MISBEHAVING, "GET_actuator-health_302-login.http")
    assert verdict.overall == "fail"
    assert verdict.reasons[0] == "HTTP 302 is a redirect, not a health response."


def test_login_page_not_healthy() -> None:
    verdict = verdict_for(MISBEHAVING, "GET_login_200-after-redirect.http")
    assert verdict.overall == "unknown"
    assert "login page" in verdict.reasons[0]


def test_401_authentication_required() -> None:
    verdict = verdict_for(MISBEHAVING, "GET_actuator-health_401.http")
    assert verdict.overall == "fail"
    assert verdict.reasons[0] == "HTTP 401: authentication required."


def test_truncated_json_unknown() -> None:
    verdict = verdict_for(MISBEHAVING, "GET_health-detailed_200-truncated.http")
    assert verdict.overall == "unknown"
    assert verdict.format == "invalid-json"


def test_502_nginx_fails() -> None:
    verdict = verdict_for(MISBEHAVING, "GET_readyz_502-nginx-html.http")
    assert verdict.overall == "fail"
    assert "proxy error page (502 Bad Gateway)" in verdict.reasons[0]
    assert "The upstream is unavailable." in verdict.reasons


def test_maintenance_page_not_healthy() -> None:
    verdict = verdict_for(MISBEHAVING, "GET_healthz_200-html-maintenance.http")
    assert verdict.overall == "unknown"
    assert "maintenance page" in verdict.reasons[0]


# Status words, content types and layouts beyond the recorded files.


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("UP", "pass"),
        ("up", "pass"),
        ("pass", "pass"),
        ("OK", "pass"),
        ("healthy", "pass"),
        ("DOWN", "fail"),
        ("fail", "fail"),
        ("Error", "fail"),
        ("unhealthy", "fail"),
        ("OUT_OF_SERVICE", "fail"),
        ("not-ready", "fail"),
        ("WARN", "warn"),
        ("degraded", "warn"),
        ("UNKNOWN", "unknown"),
        (401, "unknown"),
    ],
)
def test_status_words(word: object, expected: str) -> None:
    assert normalise_status(word) == expected


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.spring-boot.actuator.v3+json",
        "application/vnd.spring-boot.actuator.v2+json;charset=UTF-8",
        "application/health+json",
        "application/json",
        "text/plain",
        None,
    ],
)
def test_content_types_accepted(content_type: str | None) -> None:
    body = '{"status":"DOWN","components":{"db":{"status":"DOWN"}}}'
    verdict = interpret_health(200, content_type, body)
    assert verdict.overall == "fail"
    assert [check.name for check in verdict.failing()] == ["db"]


def test_actuator_nested_components() -> None:
    body = {
        "status": "DOWN",
        "components": {
            "db": {
                "status": "DOWN",
                "components": {
                    "primary": {"status": "UP"},
                    "replica": {"status": "DOWN", "details": {"error": "timeout"}},
                },
            }
        },
    }
    verdict = interpret_health(503, "application/json", json.dumps(body))
    assert [check.name for check in verdict.checks] == ["db/primary", "db/replica"]
    assert verdict.failing()[0].detail == "timeout"


def test_ietf_without_status_takes_worst() -> None:
    body = {
        "checks": {"disk:free": [{"status": "warn"}], "db:ping": [{"status": "up"}]}
    }
    verdict = interpret_health(200, "application/json", json.dumps(body))
    assert verdict.format == "health+json"
    assert verdict.overall == "warn"


def test_app_json_checks() -> None:
    body = {
        "status": "degraded",
        "checks": {
            "database": {"status": "healthy"},
            "redis": {"status": "unhealthy", "error": "ECONNREFUSED 127.0.0.1:6379"},
            "queue": "ok",
        },
    }
    verdict = interpret_health(200, "application/json", json.dumps(body))
    assert verdict.overall == "warn"
    assert verdict.format == "app-json"
    assert [check.name for check in verdict.failing()] == ["redis"]
    assert verdict.failing()[0].detail == "ECONNREFUSED 127.0.0.1:6379"


@pytest.mark.parametrize(
    "error",
    [
        "FATAL: sorry, too many clients already",
        "FATAL: remaining connection slots are reserved for non-replication "
        "superuser connections",
        'FATAL: too many connections for role "veefore"',
    ],
)
def test_exhaustion_wordings(error: str) -> None:
    body = {
        "status": "unhealthy",
        "checks": {"database": {"status": "down", "error": error}},
    }
    verdict = interpret_health(503, "application/json", json.dumps(body))
    assert verdict.diagnosis == "connection exhaustion"


def test_healthy_body_on_503_fails() -> None:
    verdict = interpret_health(503, "application/json", '{"status":"ok"}')
    assert verdict.overall == "fail"
    assert verdict.reasons[0] == "HTTP 503 although the body reports pass."


def test_unhealthy_body_on_200_fails() -> None:
    verdict = interpret_health(200, "application/json", '{"status":"unhealthy"}')
    assert verdict.overall == "fail"


def test_json_without_status_unknown() -> None:
    verdict = interpret_health(200, "application/json", '{"uptime": 12}')
    assert verdict.overall == "unknown"
    assert verdict.format == "json"


def test_undecodable_bytes_do_not_raise() -> None:
    verdict = interpret_health(200, "text/plain; charset=no-such-codec", b"\xff\xfe ok")
    assert verdict.overall == "unknown"


@pytest.mark.parametrize(
    "body",
    [
        '{"status": ["UP"]}',
        '{"status": "warn", "checks": [1, 2]}',
        '{"status": "UP", "components": {"db": "UP"}}',
        '{"status": "pass", "notes": "one note", "checks": {"a": ["b"]}}',
        '[{"status": "ok"}]',
        "[-]",
        "<html",
        "[" * 100_000 + "]" * 100_000,
        '{"status": "DOWN", "components": {"a": ' * 50
        + '{"status": "DOWN"}'
        + "}}" * 50,
    ],
)
def test_odd_bodies_do_not_raise(body: str) -> None:
    verdict = interpret_health(200, "application/health+json", body)
    assert verdict.overall in ("pass", "warn", "fail", "unknown")


def test_verdict_is_json_safe() -> None:
    verdict = verdict_for(FORMATS, "health-json-warn.http")
    assert json.loads(json.dumps(verdict.to_dict()))["overall"] == "warn"


# Bodies built to exhaust recursion or memory.


def test_deep_json_not_read() -> None:
    verdict = interpret_health(200, "application/json", "[" * 900 + "]" * 900)
    assert verdict.overall == "unknown"
    assert verdict.format == "deep-json"
    assert verdict.reasons == ["JSON nested deeper than 64 levels."]


def test_deep_details_not_read() -> None:
    details = '{"a":' * 900 + "1" + "}" * 900
    db = f'{{"status":"DOWN","details":{details}}}'
    body = f'{{"status":"DOWN","components":{{"db":{db}}}}}'
    verdict = interpret_health(503, "application/json", body)
    assert verdict.format == "deep-json"
    assert verdict.overall == "fail"


def test_json_at_depth_limit_read() -> None:
    body = '{"status":"UP","details":' + "[" * 62 + "]" * 62 + "}"
    verdict = interpret_health(200, "application/json", body)
    assert verdict.format == "spring-boot-actuator"
    assert verdict.overall == "pass"


def test_many_failing_checks_bounded() -> None:
    checks = {f"shard-{index}": {"status": "down"} for index in range(1_000)}
    body = json.dumps({"status": "down", "checks": checks})
    verdict = interpret_health(503, "application/json", body)
    record = verdict.to_dict()
    assert len(verdict.checks) == 1_000
    assert len(verdict.reasons) <= 32
    assert "972 more reasons are left out." in verdict.reasons
    assert len(record["checks"]) == 100
    assert record["checks_omitted"] == 900


def test_exhaustion_named_among_many_checks() -> None:
    checks = {f"shard-{index}": {"status": "down"} for index in range(100)}
    checks["database"] = {"status": "down", "error": "FATAL: too many clients"}
    body = json.dumps({"status": "down", "checks": checks})
    verdict = interpret_health(503, "application/json", body)
    assert verdict.diagnosis == "connection exhaustion"
    assert any("max_connections" in reason for reason in verdict.reasons)


def test_long_texts_clipped() -> None:
    body = {
        "status": "down",
        "reason": "x" * 10_000,
        "checks": {"db": {"status": "down", "error": "y" * 10_000}},
    }
    verdict = interpret_health(503, "application/json", json.dumps(body))
    assert verdict.failing()[0].detail == "y" * 200
    assert max(len(reason) for reason in verdict.reasons) < 500


def test_unclosed_titles_read() -> None:
    html = "<html>" + "<title>x" * 20_000 + "</html>"
    verdict = interpret_health(502, "text/html", html)
    assert (
        verdict.reasons[0]
        == "HTTP 502 returned a proxy error page (HTTP 502), not a health response."
    )
