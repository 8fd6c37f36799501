"""Tests of the high-error-rate library: evidence, ranking and the steps.

The steps run against a service on loopback that serves hand-built metrics, logs, a
security audit and a deployment history. The comments compute the expected numbers
by hand. The error log table is also checked against the veefore-logs-mixed
case (a copy in tests/fixtures).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import pytest

from veerunbook import metrics
from veerunbook import session as vr_session
from veerunbook.changes import Change
from veerunbook.errorrate import HighErrorRate
from veerunbook.errorrate_checks import check_scrapes
from veerunbook.errorrate_evidence import (
    DeployAlignment,
    align_deploys,
    application_frame,
    dominant_groups,
    error_kind,
    error_start,
    error_type,
    new_signatures,
    release_in_stack,
)
from veerunbook.errorrate_options import Evidence, RecoveryOption
from veerunbook.errorrate_plots import plot_error_rate
from veerunbook.errorrate_recovery import rank_recovery
from veerunbook.errorrate_resources import Resources, read_resources
from veerunbook.errorrate_security import (
    BreachEvent,
    breach_events,
    failed_logins_since,
    logins_level,
)
from veerunbook.errorrate_text import blocked_level, rate_level
from veerunbook.logs import ErrorGroup
from veerunbook.metrics_series import (
    Sample,
    ScrapeResult,
    error_rate_series,
    sample_series,
)
from veerunbook.security import SecuritySummary
from veerunbook.text import counted, percent, whole
from veerunbook.triage_tables import Nothing

if TYPE_CHECKING:
    from veerunbook.record import RunContext

FIXTURES = Path(__file__).parent / "fixtures" / "veefore-logs-mixed"
NOW = datetime.now(UTC).replace(microsecond=0)
START = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)


def group(
    signature: str,
    count: int = 1,
    sample: str = "",
    first_seen: datetime | None = None,
) -> ErrorGroup:
    return ErrorGroup(
        fingerprint=signature,
        signature=signature,
        first_frame=None,
        sample=sample or signature,
        count=count,
        first_seen=first_seen,
        last_seen=first_seen,
    )


# Error kinds and types.

KINDS = [
    ("TypeError: Cannot read properties of undefined (reading 'id')", "code"),
    ("RangeError: Invalid time value", "code"),
    ("Error: timeout exceeded when trying to connect", "resource"),
    ("RangeError: Array buffer allocation failed", "resource"),
    ("Error: connect ECONNREFUSED 192.0.2.10:5432", "dependency"),
    ("InstagramApiError: graph.facebook.com: 503 Service Unavailable", "dependency"),
    ("request errored", "other"),
]


@pytest.mark.parametrize(("signature", "kind"), KINDS)
def test_error_kind(signature: str, kind: str) -> None:
    assert error_kind(group(signature)) == kind


def test_error_kind_ignores_stack_words() -> None:
    sample = "TypeError: x is undefined\n  config: { timeout: 0 }"
    assert error_kind(group("TypeError: x is undefined", sample=sample)) == "code"


def test_error_type_dotted() -> None:
    assert error_type(group("app.errors.ValidationError: bad")) == "ValidationError"


def test_error_type_none() -> None:
    assert error_type(group("request errored")) is None


def test_application_frame_skips_libraries() -> None:
    sample = (
        "RangeError: Invalid time value\n"
        "    at Date.toISOString (<anonymous>)\n"
        "    at Layer.handle (/app/node_modules/express/lib/router/layer.js:95:5)\n"
        "    at async buildAnalyticsWindow (/app/dist/routes/analytics.js:57:33)\n"
    )
    frame = application_frame(group("RangeError: Invalid time value", sample=sample))
    assert frame == "buildAnalyticsWindow (/app/dist/routes/analytics.js:57:33)"


def test_dominant_groups() -> None:
    # 50 + 45 + 5 = 100 entries; 5 % is under the 10 % share.
    groups = [group("A", 50), group("B", 45), group("C", 5)]
    assert [item.signature for item in dominant_groups(groups)] == ["A", "B"]


# The start of the errors.


def rate_series(errors: list[float]) -> list[Sample]:
    """Scrapes 1 s apart with 100 more requests each, ``errors`` of them 5xx."""
    scrapes = []
    ok = bad = 0.0
    for index, count in enumerate([0.0, *errors]):
        ok, bad = ok + 100 - count, bad + count
        exposition = (
            "# TYPE http_requests_total counter\n"
            f'http_requests_total{{route="/a",status="200"}} {ok}\n'
            f'http_requests_total{{route="/a",status="500"}} {bad}\n'
        )
        scrapes.append(metrics.parse_exposition(exposition, scraped_at=100.0 + index))
    pending = iter(scrapes)
    return sample_series(
        lambda: ScrapeResult(next(pending)), window_seconds=0, samples=len(errors)
    )


def test_error_start_from_logs() -> None:
    # The 5 % group is not dominant, so its earlier first-seen does not count.
    groups = [
        group("A", 60, first_seen=START + timedelta(minutes=5)),
        group("B", 35, first_seen=START + timedelta(minutes=2)),
        group("C", 5, first_seen=START),
    ]
    start = error_start(groups, [])
    assert start.logs == START + timedelta(minutes=2)
    assert start.at == START + timedelta(minutes=2)


def test_error_start_from_rate() -> None:
    # Intervals at 0 %, 1 % (not above 1 %) and 3 %: the third crosses.
    series = rate_series([0, 1, 3])
    start = error_start([], series)
    assert start.rate == series[2].at
    assert not start.rate_at_window_start


def test_error_start_rate_at_window_start() -> None:
    series = rate_series([20, 20])
    start = error_start([], series)
    assert start.rate == series[0].at
    assert start.rate_at_window_start


def test_error_start_unknown() -> None:
    assert error_start([], rate_series([0, 0])).at is None


def test_error_start_caveat_truncated() -> None:
    groups = [group("A", 10, first_seen=START)]
    start = error_start(groups, [], logs_truncated=True)
    assert start.caveat == (
        "the log endpoint cut older entries, so the errors may be older"
    )


def test_error_start_caveat_window_start() -> None:
    start = error_start([], rate_series([20, 20]))
    assert start.caveat == (
        "the rate was above 1 % from the window's start, so it may be older"
    )


def test_error_start_no_caveat() -> None:
    assert error_start([], rate_series([0, 3])).caveat is None


# Deployments against the start.

DEPLOYS = [
    Change(START + timedelta(hours=1), "deployment", "2.5.0", "after", "history"),
    Change(START - timedelta(minutes=2), "commit", "9f8e7d6c5b4a", "fix", "repo"),
    Change(START - timedelta(minutes=10), "deployment", "2.4.1", "ok", "history"),
    Change(START - timedelta(days=3), "deployment", "2.4.0", "ok", "history"),
]


def test_align_last_deploy_before_start() -> None:
    alignment = align_deploys(DEPLOYS, START, 60)
    assert alignment.deployment is DEPLOYS[2]
    assert alignment.minutes_before == 10.0
    assert alignment.within_window


def test_align_reason() -> None:
    assert align_deploys(DEPLOYS, START, 60).reason == (
        "deployment 2.4.1 came 10.0 min before the errors started, within the 60 min"
        " a deploy stays suspect"
    )


def test_align_outside_window() -> None:
    alignment = align_deploys(DEPLOYS, START, 5)
    assert not alignment.within_window
    assert "outside the 5 min" in alignment.reason


def test_align_clock_skew() -> None:
    # A deploy 3 s after the first error is within the 5 s clock allowance.
    late = Change(START + timedelta(seconds=3), "deployment", "2.4.2", "ok", "history")
    alignment = align_deploys([*DEPLOYS, late], START, 60)
    assert alignment.deployment is late
    assert alignment.minutes_before == 0.0


def test_align_no_deploy() -> None:
    alignment = align_deploys(DEPLOYS[:2], START, 60)
    assert alignment.deployment is None
    assert alignment.reason == "no deployment in the lookback before the errors started"


def test_align_unknown_start() -> None:
    alignment = align_deploys(DEPLOYS, None, 60)
    assert alignment.deployment is None
    assert not alignment.within_window


def test_align_history_unread() -> None:
    # Only a commit is known: without the deployment history, no deploy is absent.
    alignment = align_deploys(DEPLOYS[1:2], START, 60, history_read=False)
    assert alignment.deployment is None
    assert not alignment.history_read
    assert alignment.reason == (
        "the deployment history could not be read, so no deployment is lined up"
        " with the start of the errors"
    )


def test_new_signatures_counted() -> None:
    # The deploy was at START - 10 min; the logs reach back to START - 30 min.
    groups = [
        group("old", 50, first_seen=START - timedelta(minutes=30)),
        group("new", 50, first_seen=START),
    ]
    assert new_signatures(groups, align_deploys(DEPLOYS, START, 60)) == 1


def test_new_signatures_logs_too_short() -> None:
    groups = [group("new", 5, first_seen=START)]
    assert new_signatures(groups, align_deploys(DEPLOYS, START, 60)) is None


def test_release_in_stack() -> None:
    stack = "TypeError: x\n    at f (/srv/releases/2.4.1/dist/a.js:1:2)"
    groups = [group("TypeError: x", 10, sample=stack)]
    assert release_in_stack(groups, align_deploys(DEPLOYS, START, 60))


def test_release_in_stack_needs_whole_version() -> None:
    stack = "TypeError: x\n    at f (/srv/releases/2.4.10/dist/a.js:1:2)"
    groups = [group("TypeError: x", 10, sample=stack)]
    assert not release_in_stack(groups, align_deploys(DEPLOYS, START, 60))


# Resources and failed logins.

RESOURCE_TEXT = """\
# TYPE nodejs_heap_size_used_bytes gauge
nodejs_heap_size_used_bytes {used}
# TYPE nodejs_heap_size_limit_bytes gauge
nodejs_heap_size_limit_bytes 1000
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 104857600
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu}
# TYPE nodejs_eventloop_lag_seconds gauge
nodejs_eventloop_lag_seconds 0.25
# TYPE database_connections gauge
database_connections{{state="active"}} 18
database_connections{{state="waiting"}} 2
# TYPE database_connections_max gauge
database_connections_max 20
"""


def test_read_resources() -> None:
    # Heap 900 / 1000 = 90 %; CPU (18 - 10) s over 110 - 100 s = 0.8 cores;
    # pool 18 / 20 = 90 %; RSS 104857600 B = 100 MiB.
    first = metrics.parse_exposition(
        RESOURCE_TEXT.format(used=500, cpu=10), scraped_at=100.0
    )
    last = metrics.parse_exposition(
        RESOURCE_TEXT.format(used=900, cpu=18), scraped_at=110.0
    )
    resources = read_resources(first, last)
    assert resources.heap_fraction == pytest.approx(0.9)
    assert resources.cpu_cores == pytest.approx(0.8)
    assert resources.resident_bytes == 104857600.0
    assert resources.event_loop_lag_seconds == 0.25
    assert resources.pool is not None
    assert resources.pool.utilisation == pytest.approx(0.9)
    assert resources.pool.waiting == 2.0


def test_read_resources_cpu_needs_two_times() -> None:
    scrape = metrics.parse_exposition(RESOURCE_TEXT.format(used=1, cpu=1))
    assert read_resources(scrape, scrape).cpu_cores is None


def test_read_resources_none_exported() -> None:
    empty = metrics.parse_exposition("", scraped_at=1.0)
    resources = read_resources(empty, empty)
    assert resources.heap_fraction is None
    assert resources.pool is None
    assert resources.event_loop_lag_seconds is None


def test_failed_logins_since() -> None:
    # Three failed logins in the last minute from two addresses; one older, one
    # without a time, one of another type.
    def event(seconds_ago: float | None, ip: str, kind: str = "failed_login") -> Any:
        when = None if seconds_ago is None else NOW - timedelta(seconds=seconds_ago)
        stamp = when.isoformat().replace("+00:00", "Z") if when else None
        return {"time": stamp, "type": kind, "ip": ip}

    body = {
        "events": [
            event(5, "203.0.113.7"),
            event(20, "203.0.113.7"),
            event(50, "198.51.100.9"),
            event(120, "198.51.100.9"),
            event(None, "198.51.100.10"),
            event(5, "198.51.100.11", "ip_blocked"),
            "not an event",
        ]
    }
    assert failed_logins_since(body, NOW - timedelta(minutes=1)) == (3, 2)


def test_failed_logins_bad_body() -> None:
    assert failed_logins_since(["not", "an", "audit"], NOW) == (0, 0)


AUDIT_WITH_BREACHES = {
    "events": [
        {"time": "2026-12-04T14:00:05Z", "type": "failed_login", "ip": "203.0.113.9"},
        {
            "time": "2026-12-04T14:00:09Z",
            "type": "token_compromise",
            "ip": "198.51.100.7",
        },
        {
            "time": "2026-12-04T14:00:02Z",
            "type": "privilege_escalation_attempt",
            "ip": "203.0.113.11",
            "detail": "user session token used on POST /admin/security/block-ip",
        },
        {"type": "data_exfiltration"},
        "not an event",
    ]
}


def test_breach_events_oldest_first() -> None:
    # The undated event sorts last; the failed login is not a breach sign.
    kinds = [event.kind for event in breach_events(AUDIT_WITH_BREACHES)]
    assert kinds == [
        "privilege_escalation_attempt",
        "token_compromise",
        "data_exfiltration",
    ]


def test_breach_event_described() -> None:
    first = breach_events(AUDIT_WITH_BREACHES)[0]
    assert first.describe() == (
        "privilege-escalation attempt from 203.0.113.11 at 14:00:02 UTC"
    )
    assert first.detail == "user session token used on POST /admin/security/block-ip"


def test_breach_event_without_source() -> None:
    last = breach_events(AUDIT_WITH_BREACHES)[-1]
    assert last.describe() == "data exfiltration from an unknown address"


def test_breach_events_bad_body() -> None:
    assert breach_events({"events": "none"}) == []


# Grading against the alert lines and the estimated login lines.

RATE_LEVELS = [
    (0.005, "pass", "at or below the information alert line (0.5 % for 15 min)"),
    (0.0051, "warn", "above the information alert line (0.5 % for 15 min)"),
    (0.0101, "warn", "above the warning alert line (1 % for 5 min)"),
    (0.0501, "fail", "above the critical alert line (5 % for 2 min)"),
]


@pytest.mark.parametrize(("rate", "status", "phrase"), RATE_LEVELS)
def test_rate_level(rate: float, status: str, phrase: str) -> None:
    assert rate_level(rate) == (status, phrase)


BLOCKED_LEVELS = [
    (10, "pass", "at or below the warning alert line (more than 10 in 1 min)"),
    (11, "warn", "above the warning alert line (more than 10 in 1 min)"),
    (50, "warn", "above the warning alert line (more than 10 in 1 min)"),
    (51, "fail", "above the critical alert line (more than 50 in 1 min)"),
]


@pytest.mark.parametrize(("blocked", "status", "phrase"), BLOCKED_LEVELS)
def test_blocked_level(blocked: int, status: str, phrase: str) -> None:
    assert blocked_level(blocked) == (status, phrase)


@pytest.mark.parametrize(
    ("failed", "status"), [(19, "pass"), (20, "warn"), (99, "warn"), (100, "fail")]
)
def test_logins_level(failed: int, status: str) -> None:
    assert logins_level(failed)[0] == status


def test_percent_has_space() -> None:
    assert percent(0.2632, 1) == "26.3 %"
    assert percent(1.0, 0) == "100 %"


def test_counted_plurals() -> None:
    assert counted(1, "group") == "1 group"
    assert counted(2, "group") == "2 groups"
    assert counted(0, "address", "addresses") == "0 addresses"


# One check for all scrapes, failures counted per reason.


class CheckRecorder:
    """The part of a RunContext that check_scrapes uses: ``check``."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    def check(self, name: str, status: str, **fields: Any) -> None:
        self.checks.append({"name": name, "status": status, **fields})


def scrape_series(problems: list[str | None]) -> list[Sample]:
    results = iter(
        ScrapeResult(None, problem)
        if problem
        else ScrapeResult(metrics.parse_exposition(""))
        for problem in problems
    )
    return sample_series(
        lambda: next(results), window_seconds=0, samples=len(problems) - 1
    )


def test_scrapes_one_check_per_reason() -> None:
    run = CheckRecorder()
    series = scrape_series(
        [None, "HTTP 503: restarting", None, "HTTP 503: restarting", None, None, None]
    )
    check_scrapes(cast("RunContext", run), series)
    assert [check["name"] for check in run.checks] == ["metrics scrapes"]
    assert run.checks[0]["status"] == "warn"
    assert run.checks[0]["summary"] == (
        "5 of 7 metrics scrapes succeeded; 2 failed: HTTP 503: restarting"
    )


def test_scrapes_all_failed_error() -> None:
    run = CheckRecorder()
    check_scrapes(cast("RunContext", run), scrape_series(["HTTP 500: boom"] * 3))
    assert run.checks[0]["status"] == "error"
    assert run.checks[0]["summary"] == (
        "0 of 3 metrics scrapes succeeded; 3 failed: HTTP 500: boom"
    )


# Ranking on hand-built evidence.


def alignment(within: bool, version: str | None = "2.4.1") -> DeployAlignment:
    deploy = None
    if version is not None:
        deploy = Change(START, "deployment", version, "ok", "history")
    reason = "deployment came before" if version else "no deployment in the lookback"
    return DeployAlignment(START, deploy, 3.0 if version else None, within, 60, reason)


def by_key(options: list[RecoveryOption]) -> dict[str, RecoveryOption]:
    return {option.key: option for option in options}


def test_rank_bad_deploy() -> None:
    # Rollback: deploy within the window 45 + release in stack 20 + new signature
    # 15 + code errors 20 = 100. Fix forward: code errors 40.
    evidence = Evidence(
        error_rate=0.2,
        error_kinds={"code": 100},
        code_error_types=["TypeError"],
        new_signatures=1,
        release_in_stack=True,
        deploy=alignment(within=True),
    )
    options = by_key(rank_recovery(evidence))
    assert options["rollback"].score == 100
    assert options["rollback"].rank == 1
    assert options["fix"].score == 40
    assert options["fix"].rank == 2
    assert "a recent deployment precedes the errors" in options["fix"].against


def test_rank_code_defect_without_deploy() -> None:
    # Fix forward: code errors 40 + no recent deploy 30 = 70. Rollback: nothing to
    # roll back, so the code errors give it no points and no rank.
    evidence = Evidence(
        error_rate=0.25,
        error_kinds={"code": 90, "other": 10},
        code_error_types=["RangeError", "TypeError"],
        deploy=alignment(within=False, version=None),
    )
    options = by_key(rank_recovery(evidence))
    assert options["fix"].score == 70
    assert options["fix"].rank == 1
    assert options["rollback"].score == 0
    assert options["rollback"].rank is None
    assert options["rollback"].against == ["no deployment in the lookback"]


def test_rank_history_unread_no_fix_bonus() -> None:
    # Fix forward: code errors 40 only. An unread history is no evidence that no
    # deployment came before the errors.
    unread = DeployAlignment(
        START, None, None, False, 60, "history unread", history_read=False
    )
    evidence = Evidence(error_rate=0.25, error_kinds={"code": 100}, deploy=unread)
    fix = by_key(rank_recovery(evidence))["fix"]
    assert fix.score == 40
    assert fix.evidence == [
        "100 % of error entries are code-level exceptions (exceptions)"
    ]


def test_rank_code_finding_text() -> None:
    evidence = Evidence(
        error_rate=0.25,
        error_kinds={"code": 90, "other": 10},
        code_error_types=["RangeError", "TypeError"],
    )
    fix = by_key(rank_recovery(evidence))["fix"]
    assert fix.evidence == [
        "90 % of error entries are code-level exceptions (RangeError, TypeError)"
    ]


ESCALATION = BreachEvent(
    "privilege_escalation_attempt",
    "203.0.113.11",
    START,
    "user session token used on POST /admin/security/block-ip",
)


def attack_evidence() -> Evidence:
    security = SecuritySummary(
        high_events=85,
        blocked_last_minute=14,
        rate_limiting={"enabled": True, "hits": 14},
    )
    return Evidence(
        error_rate=0.001,
        statuses={"200": 400, "401": 140, "429": 14},
        security=security,
        failed_logins_minute=141,
        failed_login_sources=15,
        breaches=[ESCALATION],
    )


def test_rank_attack_security_first() -> None:
    # Security incident: breach sign 100 (+ 141 logins at the attack line 40, capped
    # at 100). Block: burst 35 + 141 / 15 = 9.4 attempts per address 15 + 14
    # blocked in a minute 30 + breach sign 10 + high events 10 = 100. The tie keeps
    # the security-incident procedure first.
    options = by_key(rank_recovery(attack_evidence()))
    assert options["security"].score == 100
    assert options["security"].rank == 1
    assert options["block"].score == 100
    assert options["block"].rank == 2


def test_rank_attack_security_evidence() -> None:
    security = by_key(rank_recovery(attack_evidence()))["security"]
    assert security.evidence == [
        "breach signs: privilege-escalation attempt from 203.0.113.11 at 14:00:00"
        " UTC (user session token used on POST /admin/security/block-ip)",
        "141 failed logins in the last minute, an attack",
    ]


def test_rank_attack_no_limit_raise() -> None:
    raise_limits = by_key(rank_recovery(attack_evidence()))["raise"]
    assert raise_limits.score == 0
    assert raise_limits.rank is None
    assert raise_limits.against[-1].startswith(
        "overruled by attack signs: privilege-escalation attempt from 203.0.113.11"
    )


def test_rank_blocking_critical_line() -> None:
    # Block 40; security incident 30 for the same critical-line burst.
    security = SecuritySummary(blocked_last_minute=51)
    options = by_key(rank_recovery(Evidence(security=security)))
    assert options["block"].score == 40
    assert options["block"].rank == 1
    assert options["block"].evidence == [
        "51 IPs blocked in the last minute, above the critical alert line"
        " (more than 50 in 1 min)"
    ]
    assert options["security"].score == 30
    assert options["security"].rank == 2


def test_rank_blocking_warning_line() -> None:
    security = SecuritySummary(blocked_last_minute=11)
    options = by_key(rank_recovery(Evidence(security=security)))
    assert options["block"].evidence == [
        "11 IPs blocked in the last minute, above the warning alert line"
        " (more than 10 in 1 min)"
    ]
    assert options["security"].rank is None


def test_rank_unreachable_nothing_ranked() -> None:
    evidence = Evidence(unreachable="target unreachable: connection refused")
    options = rank_recovery(evidence)
    assert [option.rank for option in options] == [None] * 6
    assert all(
        option.against == ["target unreachable: connection refused"]
        for option in options
    )


def test_option_journal_form() -> None:
    # The journal carries evidence and against as one line each.
    option = RecoveryOption("block", "block abusive IP addresses", rank=1)
    option.add(35, "25 failed logins in the last minute")
    option.add(15, "from 5 addresses, 5.0 each")
    data = option.to_dict()
    assert data["evidence"] == (
        "25 failed logins in the last minute; from 5 addresses, 5.0 each"
    )
    assert data["rank"] == 1
    assert data["action"] == "block abusive IP addresses"


def test_option_journal_form_no_evidence() -> None:
    assert RecoveryOption("scale", "scale").to_dict()["evidence"] == "none"


def test_rank_legitimate_spike() -> None:
    # Raise limits: 100 of 1000 requests limited (10 %) 40 + 40 / 10 requests/s
    # = 4x the average 30 + limiter hits 10 = 80.
    evidence = Evidence(
        error_rate=0.0,
        requests_per_second=40.0,
        baseline_per_second=10.0,
        statuses={"200": 900, "429": 100},
        security=SecuritySummary(rate_limiting={"enabled": True, "hits": 50}),
        failed_logins_minute=2,
        failed_login_sources=2,
    )
    options = by_key(rank_recovery(evidence))
    assert options["raise"].score == 80
    assert options["raise"].rank == 1
    assert options["raise"].evidence[0] == (
        "10.0 % of user requests received 429 or 503"
    )


def test_rank_resource_saturation() -> None:
    # Scale: heap 35 + pool 25 + waiting 10 + timeouts 20 + 503 majority 10 = 100.
    pool = metrics.PoolUsage(20, 0, 4, 20, 20, 1.0)
    evidence = Evidence(
        error_rate=0.25,
        statuses={"200": 750, "503": 250},
        error_kinds={"resource": 100},
        resources=Resources(0.92, None, pool, None, None),
    )
    options = by_key(rank_recovery(evidence))
    assert options["scale"].score == 100
    assert options["scale"].rank == 1
    assert options["fix"].score == 0


def test_rank_cpu_and_lag() -> None:
    # CPU 0.95 cores 20 + event loop lag 250 ms 10 = 30.
    evidence = Evidence(resources=Resources(0.4, None, None, 0.95, 0.25))
    scale = by_key(rank_recovery(evidence))["scale"]
    assert scale.score == 30
    assert scale.evidence == ["CPU 0.95 cores busy", "event loop lag 250 ms"]


def test_rank_healthy_none_indicated() -> None:
    evidence = Evidence(
        error_rate=0.001,
        requests_per_second=10.0,
        baseline_per_second=10.0,
        statuses={"200": 1000},
        resources=Resources(0.4, None, None, None, None),
        security=SecuritySummary(rate_limiting={"enabled": True, "hits": 0}),
        failed_logins_minute=0,
    )
    options = rank_recovery(evidence)
    assert all(option.rank is None for option in options)
    assert all(option.score == 0 for option in options)


def test_rank_healthy_rollback_against() -> None:
    rollback = by_key(rank_recovery(Evidence(error_rate=0.001)))["rollback"]
    assert rollback.against == [
        "the 5xx rate 0.10 % is at or below the information alert line"
        " (0.5 % for 15 min)"
    ]


def test_rank_unknown_evidence() -> None:
    options = by_key(rank_recovery(Evidence()))
    assert options["rollback"].against == ["the 5xx rate is unknown"]
    assert options["block"].against == ["the security audit could not be read"]
    assert options["scale"].against == ["no resource metrics could be read"]


def test_rank_ties_keep_runbook_order() -> None:
    ranked = rank_recovery(Evidence())
    assert [option.key for option in ranked] == [
        "security",
        "raise",
        "block",
        "scale",
        "rollback",
        "fix",
    ]


@pytest.mark.parametrize(
    ("score", "confidence"),
    [(100, "high"), (70, "high"), (69, "medium"), (40, "medium"), (1, "low")],
)
def test_option_confidence(score: int, confidence: str) -> None:
    assert RecoveryOption("x", "x", score=score).confidence == confidence


def test_option_not_indicated() -> None:
    assert RecoveryOption("x", "x").confidence == "not indicated"


# The steps against a service on loopback.


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


Route = Callable[[], tuple[int, str, bytes]]


@dataclass
class Service:
    """A loopback service whose paths answer from ``routes``; it records queries."""

    routes: dict[str, Route] = field(default_factory=dict)
    queries: dict[str, list[str]] = field(default_factory=dict)
    url: str = ""


class ServiceHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        service: Service = self.server.service  # type: ignore[attr-defined]
        path, _, query = self.path.partition("?")
        service.queries.setdefault(path, []).append(query)
        route = service.routes.get(path)
        status, content_type, body = route() if route else (404, "text/plain", b"")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture
def service() -> Iterator[Service]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ServiceHandler)
    server.service = Service()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    server.service.url = f"http://{host!s}:{port}"  # type: ignore[attr-defined]
    yield server.service  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def text(body: str | bytes, content_type: str = "text/plain") -> Route:
    data = body.encode() if isinstance(body, str) else body
    return lambda: (200, content_type, data)


def json_route(body: Any) -> Route:
    return text(json.dumps(body), "application/json")


def begin(service: Service, archive: Path) -> HighErrorRate:
    session = vr_session.begin(
        "high-error-rate-test", target=service.url, archive=str(archive)
    )
    return HighErrorRate(session)


def test_fixture_log_table(service: Service, tmp_path: Path) -> None:
    # veefore-logs-mixed api-production.log served as plain text: two groups,
    # Instagram x3 and Mongo x2 (see the case's README).
    service.routes["/health/logs"] = text(
        (FIXTURES / "api-production.log").read_bytes()
    )
    procedure = begin(service, tmp_path)
    table = procedure.read_error_logs(60)
    procedure.session.close()
    assert isinstance(table, pd.DataFrame)
    assert table["count"].tolist() == [3, 2]
    assert table["kind"].tolist() == ["dependency", "dependency"]
    assert table["routes"].tolist() == [
        "GET /api/instagram/detailed-insights",
        "GET /api/dashboard/analytics",
    ]
    assert table["first seen"].tolist() == [
        "2026-12-04T14:40:19.703Z",
        "2026-12-04T14:41:17.052Z",
    ]
    assert table["last seen"].tolist() == [
        "2026-12-04T14:41:39.903Z",
        "2026-12-04T14:41:17.612Z",
    ]
    assert table["correlation ids"].tolist() == [
        "corr_cced9041dff0, corr_cee737443e21, corr_471948d33296",
        "corr_87009e8a7f77, corr_d9106fd287db",
    ]
    assert table["where"].tolist() == [
        "InstagramAPI.getDetailedInsights (file:///app/dist/index.js:48211:24)",
        "MongoStorage.getDashboardAnalytics (file:///app/dist/index.js:30877:18)",
    ]


def test_fixture_log_check(service: Service, tmp_path: Path) -> None:
    service.routes["/health/logs"] = text(
        (FIXTURES / "api-production.log").read_bytes()
    )
    procedure = begin(service, tmp_path)
    procedure.read_error_logs(60)
    procedure.session.close()
    check = next(
        c for c in procedure.session.run.checks if c.name == "error log entries"
    )
    assert check.status == "warn"
    assert check.observed == 5
    assert check.summary == "5 errors in 2 groups"


def test_log_query(service: Service, tmp_path: Path) -> None:
    service.routes["/health/logs"] = json_route({"logs": []})
    procedure = begin(service, tmp_path)
    procedure.read_error_logs(15)
    procedure.session.close()
    assert service.queries["/health/logs"] == ["level=error&last=15m&limit=1000"]


def test_log_limit_reached(service: Service, tmp_path: Path) -> None:
    # Two entries with a limit of 2: older entries may be missing. The string entry
    # is skipped.
    entry = {
        "level": 50,
        "time": 1796396400000,
        "msg": "boom",
        "err": {"type": "TypeError", "message": "x"},
    }
    service.routes["/health/logs"] = json_route(
        {"limit": 2, "logs": [entry, "not an entry"]}
    )
    procedure = begin(service, tmp_path)
    table = procedure.read_error_logs(60)
    procedure.session.close()
    assert procedure.logs_truncated
    assert isinstance(table, pd.DataFrame)
    assert table["count"].tolist() == [1]


def test_logs_unreadable(service: Service, tmp_path: Path) -> None:
    procedure = begin(service, tmp_path)
    table = procedure.read_error_logs(60)
    procedure.session.close()
    assert isinstance(table, Nothing)
    assert table.message.startswith("error logs could not be read: error logs  FAIL")
    assert not procedure.logs_read


# Every step in order against one service: the numbers the notebook shows.


def counter(method: str, endpoint: str, status: int, value: float) -> str:
    labels = f'method="{method}",endpoint="{endpoint}",status_code="{status}"'
    return f"http_requests_total{{{labels}}} {value}\n"


def scrape_text(step: int) -> str:
    counters = (
        counter("POST", "/api/publish", 200, (100, 110, 130)[step])
        + counter("POST", "/api/publish", 500, (0, 10, 20)[step])
        + counter("GET", "/api/user", 200, (200, 240, 280)[step])
        + counter("GET", "/health", 200, 10 + 2 * step)
        + counter("GET", "/metrics", 200, 1 + step)
    )
    return f"""\
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1000
# TYPE http_requests_total counter
{counters}# TYPE nodejs_heap_size_used_bytes gauge
nodejs_heap_size_used_bytes 900
# TYPE nodejs_heap_size_limit_bytes gauge
nodejs_heap_size_limit_bytes 1000
# TYPE nodejs_eventloop_lag_seconds gauge
nodejs_eventloop_lag_seconds 0.25
# TYPE database_connections gauge
database_connections{{state="active"}} 19
database_connections{{state="waiting"}} 3
# TYPE database_connections_max gauge
database_connections_max 20
"""


def incident_service(service: Service, now: datetime) -> None:
    """Serve three scrapes, a TypeError, an attack and a deploy 10 min before."""
    scrapes = iter(range(3))
    service.routes["/metrics"] = lambda: (
        200,
        "text/plain; version=0.0.4",
        scrape_text(min(next(scrapes, 2), 2)).encode(),
    )
    stack = "TypeError: x is undefined\n    at f (/srv/releases/2.4.1/dist/a.js:1:2)"
    service.routes["/health/logs"] = json_route(
        {
            "limit": 1000,
            "logs": [
                {
                    "level": 50,
                    "time": int((now - timedelta(minutes=minutes)).timestamp() * 1000),
                    "correlationId": f"corr_{minutes}",
                    "req": {"method": "POST", "url": "/api/publish"},
                    "res": {"statusCode": 500},
                    "err": {
                        "type": "TypeError",
                        "message": "x is undefined",
                        "stack": stack,
                    },
                    "msg": "request errored",
                }
                for minutes in (3, 4, 5)
            ],
        }
    )
    addresses = [f"203.0.113.{host}" for host in range(10, 15)]
    service.routes["/api/audit/security"] = json_route(
        {
            "events": [
                {
                    "time": iso(now - timedelta(seconds=1)),
                    "type": "failed_login",
                    "ip": addresses[index % 5],
                    "severity": "high",
                }
                for index in range(25)
            ],
            "blockedIps": [
                {"ip": f"198.51.100.{host}", "blockedAt": iso(now)}
                for host in range(12)
            ],
            "rateLimiting": {
                "enabled": True,
                "limit": 10,
                "windowSeconds": 900,
                "hits": 7,
            },
        }
    )
    service.routes["/api/deployments"] = json_route(
        {
            "deployments": [
                {"version": "2.4.1", "deployedAt": iso(now - timedelta(minutes=15))},
                {"version": "2.4.0", "deployedAt": iso(now - timedelta(days=2))},
            ]
        }
    )


@dataclass
class Outputs:
    procedure: HighErrorRate
    now: datetime
    tables: dict[str, Any]


def run_steps(service: Service, archive: Path, now: datetime) -> Outputs:
    procedure = begin(service, archive)
    tables = {
        "routes": procedure.sample_error_rate(0.2, 2, progress=None),
        "over time": procedure.error_rate_over_time(),
        "logs": procedure.read_error_logs(60),
        "resources": procedure.resource_usage(),
        "security": procedure.rate_limiting(),
        "changes": procedure.deployments(6.0, 60.0),
        "options": procedure.recovery_options(),
        "diagnosis": procedure.diagnose(),
    }
    return Outputs(procedure, now, tables)


@pytest.fixture
def outputs(service: Service, tmp_path: Path) -> Iterator[Outputs]:
    now = datetime.now(UTC).replace(microsecond=0)
    incident_service(service, now)
    done = run_steps(service, tmp_path, now)
    yield done
    done.procedure.session.close()


def check(outputs: Outputs, name: str) -> Any:
    return next(c for c in outputs.procedure.session.run.checks if c.name == name)


def notes(outputs: Outputs) -> list[dict[str, Any]]:
    from veerunbook.journal import Journal

    journal = Journal(outputs.procedure.session.run.incident_dir)
    return [event for event in journal.events() if event["event"] == "note"]


def test_route_table(outputs: Outputs) -> None:
    # Interval 1: publish 10 + 10, user 40 = 60 requests, 10 5xx; probes 2 + 1.
    # Interval 2: publish 20 + 10, user 40 = 70 requests, 10 5xx; probes 2 + 1.
    # Window: 130 requests, 20 5xx = 15.38 %; publish 50 requests, 20 5xx = 40 %.
    table = outputs.tables["routes"]
    assert table["route"].tolist() == [
        "(all user routes)",
        "(all probe routes)",
        "POST /api/publish",
        "GET /api/user",
        "GET /health",
        "GET /metrics",
    ]
    assert table["traffic"].tolist() == [
        "user",
        "probe",
        "user",
        "user",
        "probe",
        "probe",
    ]
    assert table["requests"].tolist() == [130.0, 6.0, 50.0, 80.0, 4.0, 2.0]
    assert table["5xx"].tolist() == [20.0, 0.0, 20.0, 0.0, 0.0, 0.0]
    assert table["5xx (%)"].tolist() == [15.38, 0.0, 40.0, 0.0, 0.0, 0.0]


def test_error_rate_check(outputs: Outputs) -> None:
    rate = check(outputs, "5xx error rate")
    assert rate.status == "fail"
    assert rate.observed == 15.385


def test_error_rate_check_summary(outputs: Outputs) -> None:
    summary = check(outputs, "5xx error rate").summary
    assert summary.startswith(
        "15.38 % of 130 user requests, above the critical alert line (5 % for 2 min);"
        " probe traffic: 0 5xx of 6 requests, counted apart; the "
    )
    assert summary.endswith(
        " s window is shorter than the shortest alert duration (2 min), so it cannot"
        " confirm an alert"
    )


def test_scrapes_check(outputs: Outputs) -> None:
    scrapes = check(outputs, "metrics scrapes")
    assert scrapes.status == "pass"
    assert scrapes.summary == "3 of 3 metrics scrapes succeeded"


def test_rate_over_time(outputs: Outputs) -> None:
    # 10 / 60 = 16.67 %, 10 / 70 = 14.29 %.
    table = outputs.tables["over time"]
    assert table["requests"].tolist() == [60.0, 70.0]
    assert table["5xx"].tolist() == [10.0, 10.0]
    assert table["5xx (%)"].tolist() == [16.67, 14.29]
    assert table["probe requests"].tolist() == [3.0, 3.0]


def test_rate_plot(outputs: Outputs) -> None:
    # The deployment came 15 min before a 0.2 s window: outside the plotted span.
    figure = outputs.procedure.plot_error_rate()
    axes = figure.axes[0]
    labels = [line.get_label() for line in axes.get_lines()]
    assert labels == [
        "5xx of user requests",
        "critical alert line: 5 % for 2 min",
        "warning alert line: 1 % for 5 min",
        "information alert line: 0.5 % for 15 min",
    ]
    assert [line.get_ydata()[0] for line in axes.get_lines()[1:]] == [5.0, 1.0, 0.5]
    assert list(axes.get_lines()[0].get_ydata()) == pytest.approx([100 / 6, 100 / 7])
    assert axes.get_ylabel() == "5xx responses (% of requests)\nlog scale above 1 %"
    assert axes.get_xlabel() == "time (UTC)"


def rate_frame(start: datetime, seconds: float = 10.0) -> pd.DataFrame:
    # Two intervals after ``start``: 10 % and 20 % of user requests.
    frame = error_rate_series([])
    ends = [start + timedelta(seconds=seconds), start + timedelta(seconds=2 * seconds)]
    return pd.concat(
        [frame, pd.DataFrame({"end": ends, "rate": [0.1, 0.2]})], ignore_index=True
    )


def test_plot_marks_deploy_in_window() -> None:
    # The window runs 14:00:00 to 14:00:20; a deploy 5 s before it is shown, one
    # an hour before is not, and a commit is no deployment.
    changes = [
        Change(START - timedelta(seconds=5), "deployment", "2.4.2", "ok", "history"),
        Change(START - timedelta(hours=1), "deployment", "2.4.1", "ok", "history"),
        Change(START + timedelta(seconds=2), "commit", "9f8e7d6c5b4a", "fix", "repo"),
    ]
    figure = plot_error_rate(rate_frame(START), start=START, deployments=changes)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert labels[-1] == "deployment 2.4.2 at 13:59:55"
    assert len(labels) == 5


def test_plot_time_axis_utc() -> None:
    # The window is 14:00:00 to 14:00:20 UTC: every tick is HH:MM:SS in UTC.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = plot_error_rate(rate_frame(START), start=START)
    axes = figure.axes[0]
    FigureCanvasAgg(figure).draw()
    ticks = [label.get_text() for label in axes.get_xticklabels()]
    assert ticks
    assert all(tick.startswith("14:00:") and len(tick) == 8 for tick in ticks)
    assert axes.get_xlabel() == "time (UTC)"


def test_plot_ticks_unique_short_window() -> None:
    # A 1.5 s window: ticks fall on whole seconds, so no label repeats.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = plot_error_rate(rate_frame(START, 0.75), start=START)
    FigureCanvasAgg(figure).draw()
    ticks = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert ticks
    assert len(set(ticks)) == len(ticks)


def test_plot_legend_outside_axes() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = plot_error_rate(rate_frame(START), start=START)
    renderer = FigureCanvasAgg(figure).get_renderer()  # type: ignore[no-untyped-call]
    legend = figure.axes[0].get_legend().get_window_extent(renderer)
    assert legend.x0 >= figure.axes[0].get_window_extent(renderer).x1


def test_log_groups(outputs: Outputs) -> None:
    table = outputs.tables["logs"]
    assert table["count"].tolist() == [3]
    assert table["kind"].tolist() == ["code"]
    assert table["where"].tolist() == ["f (/srv/releases/2.4.1/dist/a.js:1:2)"]
    assert table["routes"].tolist() == ["POST /api/publish"]


def test_log_check_singular(outputs: Outputs) -> None:
    assert check(outputs, "error log entries").summary == "3 errors in 1 group"


def test_resource_table(outputs: Outputs) -> None:
    # Heap 900 / 1000 = 90 %; pool 19 / 20 = 95 %; lag 0.25 s = 250 ms.
    table = outputs.tables["resources"]
    assert table["resource"].tolist() == [
        "heap used / heap limit",
        "connection pool in use",
        "requests waiting for a connection",
        "event loop lag",
    ]
    assert table["value"].tolist() == [90.0, 95.0, 3.0, 250.0]
    assert table["limit"].tolist()[:2] == [
        "85 % (warning alert line)",
        "80 % (information alert line)",
    ]


def test_resource_checks(outputs: Outputs) -> None:
    # Heap and pool are above a warning or information alert line: both warn.
    assert check(outputs, "heap memory").status == "warn"
    assert check(outputs, "connection pool").status == "warn"
    assert check(outputs, "CPU").status == "skip"
    assert check(outputs, "event loop lag").status == "warn"


def test_resource_summaries(outputs: Outputs) -> None:
    assert check(outputs, "heap memory").summary == (
        "heap 90 % of its limit, above the warning alert line (85 % for 10 min)"
    )
    assert check(outputs, "connection pool").summary == (
        "19 of 20 connections in use, 3 requests waiting, above the information"
        " alert line (80 % for 15 min)"
    )


def test_security_table(outputs: Outputs) -> None:
    table = outputs.tables["security"]
    values = dict(zip(table["item"], table["value"], strict=True))
    assert values["breach signs"] == "none"
    assert values["rate limiter"] == "on"
    assert values["limit"] == "10 per 900 s"
    assert values["limiter hits"] == "7"
    assert values["blocked IPs"] == "12"
    assert values["blocked in the last minute"] == "12"
    assert values["failed logins in the last minute"] == "25"
    assert values["their source addresses"] == "5"
    assert values["high-severity events"] == "25"


def test_blocked_check(outputs: Outputs) -> None:
    # 12 blocked in a minute: above the warning alert line (10), not the critical.
    blocked = check(outputs, "blocked IPs in the last minute")
    assert blocked.status == "warn"
    assert blocked.observed == 12
    assert blocked.summary == (
        "12 IPs blocked in the last minute, above the warning alert line"
        " (more than 10 in 1 min); 12 IPs blocked in all"
    )


def test_login_and_limiter_checks(outputs: Outputs) -> None:
    logins = check(outputs, "failed logins in the last minute")
    assert logins.status == "warn"
    assert logins.summary == (
        "25 failed logins from 5 addresses in the last minute, at or above the"
        " burst line (20 a minute, an estimate)"
    )
    assert check(outputs, "rate limiting").status == "pass"
    assert check(outputs, "breach signs").status == "pass"


def test_change_table(outputs: Outputs) -> None:
    # Errors start at the first log entry, now - 5 min; 2.4.1 came at now - 15 min.
    table = outputs.tables["changes"]
    assert table["version"].tolist() == ["2.4.1"]
    assert table["before the errors (min)"].tolist() == [10.0]
    assert table["last before the errors"].tolist() == [True]


def test_error_start_is_first_log(outputs: Outputs) -> None:
    start = outputs.procedure.start
    assert start is not None
    assert start.at == outputs.now - timedelta(minutes=5)


def test_deploy_check(outputs: Outputs) -> None:
    deploy = check(outputs, "deployment before the errors")
    assert deploy.status == "warn"
    assert deploy.observed == 10.0


def test_option_ranking(outputs: Outputs) -> None:
    # Block: burst 35 + 25 / 5 addresses 15 + 12 blocked 30 + high events 10 = 90.
    # Rollback: deploy 45 + release 2.4.1 in the stack 20 + code errors 20 = 85.
    # Scale: heap 35 + pool 25 + waiting 10 + lag 10 = 80. Fix forward: 40.
    # Security incident: no breach sign, 25 logins and 12 blocks are below its
    # lines, so 0. Raise limits: overruled by the attack signs, 0.
    table = outputs.tables["options"]
    assert table["action"].tolist() == [
        "block abusive IP addresses",
        "roll back the deployment",
        "scale application resources",
        "fix the defect forward (hotfix)",
        "run the security-incident procedure",
        "raise rate limits temporarily",
    ]
    assert table["score"].tolist() == [90, 85, 80, 40, 0, 0]
    assert table["rank"].tolist()[:4] == [1, 2, 3, 4]
    assert pd.isna(table["rank"].tolist()[4])
    assert pd.isna(table["rank"].tolist()[5])


def test_options_noted(outputs: Outputs) -> None:
    assert notes(outputs)[0]["text"] == (
        "recovery options ranked: 1. block abusive IP addresses (90),"
        " 2. roll back the deployment (85), 3. scale application resources (80),"
        " 4. fix the defect forward (hotfix) (40)"
    )


def test_options_field(outputs: Outputs) -> None:
    options = notes(outputs)[0]["recovery_options"]
    assert [option["rank"] for option in options] == [1, 2, 3, 4, None, None]
    assert options[0]["action"] == "block abusive IP addresses"
    assert options[0]["evidence"] == (
        "25 failed logins in the last minute; from 5 addresses, 5.0 each;"
        " 12 IPs blocked in the last minute, above the warning alert line"
        " (more than 10 in 1 min); 25 high-severity security events"
    )


def test_diagnosis(outputs: Outputs) -> None:
    assert outputs.tables["diagnosis"] == (
        "5xx 15.4 % of user requests, above the critical alert line (5 % for 2 min);"
        " most on POST /api/publish;"
        " errors: TypeError in f (/srv/releases/2.4.1/dist/a.js:1:2);"
        " 25 failed logins from 5 addresses in the last minute;"
        " 12 IPs blocked in the last minute, above the warning alert line"
        " (more than 10 in 1 min);"
        " deployment 2.4.1 came 10.0 min before the errors started, within the"
        " 60 min a deploy stays suspect;"
        " first action: block abusive IP addresses, high confidence"
    )


def test_diagnosis_field(outputs: Outputs) -> None:
    note = notes(outputs)[-1]
    assert note["diagnosis"] == outputs.tables["diagnosis"]
    assert note["text"] == f"diagnosis: {outputs.tables['diagnosis']}"


def test_summary_worst_first(outputs: Outputs) -> None:
    statuses = outputs.procedure.summary()["status"].tolist()
    order = {"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}
    assert statuses == sorted(statuses, key=order.__getitem__)


# A credential attack with a privilege-escalation attempt and few 5xx.


def attack_service(service: Service, now: datetime) -> None:
    """Serve clean scrapes, no error logs, an attack audit and no deployments."""
    scrapes = iter(range(3))
    service.routes["/metrics"] = lambda: (
        200,
        "text/plain; version=0.0.4",
        scrape_text(0).replace(" 0\n", f" {next(scrapes, 2)}\n").encode(),
    )
    service.routes["/health/logs"] = json_route({"limit": 1000, "logs": []})
    failed = [
        {
            "time": iso(now - timedelta(seconds=2)),
            "type": "failed_login",
            "ip": f"203.0.113.{11 + 2 * (index % 14)}",
            "severity": "high",
        }
        for index in range(143)
    ]
    escalation = {
        "time": iso(now - timedelta(seconds=30)),
        "type": "privilege_escalation_attempt",
        "ip": "203.0.113.11",
        "severity": "high",
        "detail": "user session token used on POST /admin/security/block-ip",
    }
    service.routes["/api/audit/security"] = json_route(
        {
            "events": [*failed, escalation],
            "blockedIps": [
                {"ip": f"203.0.113.{11 + 2 * host}", "blockedAt": iso(now)}
                for host in range(14)
            ],
            "rateLimiting": {"enabled": True, "hits": 14},
        }
    )
    service.routes["/api/deployments"] = json_route({"deployments": []})


@pytest.fixture
def attack(service: Service, tmp_path: Path) -> Iterator[Outputs]:
    now = datetime.now(UTC).replace(microsecond=0)
    attack_service(service, now)
    done = run_steps(service, tmp_path, now)
    yield done
    done.procedure.session.close()


def test_attack_breach_check(attack: Outputs) -> None:
    breach = check(attack, "breach signs")
    when = (attack.now - timedelta(seconds=30)).strftime("%H:%M:%S")
    assert breach.status == "fail"
    assert breach.summary == (
        f"privilege-escalation attempt from 203.0.113.11 at {when} UTC:"
        " user session token used on POST /admin/security/block-ip"
    )


def test_attack_logins_fail(attack: Outputs) -> None:
    # 143 failed logins from 14 addresses: above the attack line of 100 a minute.
    logins = check(attack, "failed logins in the last minute")
    assert logins.status == "fail"
    assert logins.observed == 143
    assert logins.summary == (
        "143 failed logins from 14 addresses in the last minute, at or above the"
        " attack line (100 a minute, an estimate)"
    )


def test_attack_blocked_warns(attack: Outputs) -> None:
    blocked = check(attack, "blocked IPs in the last minute")
    assert blocked.status == "warn"
    assert blocked.observed == 14


def test_attack_diagnosis_leads(attack: Outputs) -> None:
    when = (attack.now - timedelta(seconds=30)).strftime("%H:%M:%S")
    assert attack.tables["diagnosis"].startswith(
        f"security incident: privilege-escalation attempt from 203.0.113.11 at {when}"
        " UTC; 143 failed logins from 14 addresses in the last minute;"
        " 14 IPs blocked in the last minute, above the warning alert line"
        " (more than 10 in 1 min); run the security-incident procedure; 5xx "
    )


def test_attack_diagnosis_then_block(attack: Outputs) -> None:
    assert attack.tables["diagnosis"].endswith(
        "; then block abusive IP addresses, high confidence"
    )


def test_attack_security_first(attack: Outputs) -> None:
    table = attack.tables["options"]
    assert table["action"].tolist()[:2] == [
        "run the security-incident procedure",
        "block abusive IP addresses",
    ]
    assert table["rank"].tolist()[:2] == [1, 2]


# A deployment history that cannot be read.


@pytest.fixture
def unread_history(service: Service, tmp_path: Path) -> Iterator[Outputs]:
    now = datetime.now(UTC).replace(microsecond=0)
    incident_service(service, now)
    del service.routes["/api/deployments"]
    done = run_steps(service, tmp_path, now)
    yield done
    done.procedure.session.close()


def test_unread_history_deploy_skipped(unread_history: Outputs) -> None:
    deploy = check(unread_history, "deployment before the errors")
    assert deploy.status == "skip"
    assert deploy.summary == (
        "the deployment history could not be read, so no deployment is lined up"
        " with the start of the errors"
    )


def test_unread_history_not_a_pass(unread_history: Outputs) -> None:
    changes = check(unread_history, "recent changes")
    assert changes.status == "skip"
    assert changes.summary.startswith(
        "the deployment history could not be read: HTTP 404"
    )


def test_unread_history_table(unread_history: Outputs) -> None:
    table = unread_history.tables["changes"]
    assert isinstance(table, Nothing)
    assert table.message.startswith("the deployment history could not be read")


def test_unread_history_no_rollback(unread_history: Outputs) -> None:
    # Rollback has no deployment to undo. Fix forward keeps only its code finding
    # (40), because an unread history does not show that no deployment came first.
    options = {option.key: option for option in unread_history.procedure.options}
    assert options["rollback"].rank is None
    assert options["fix"].score == 40


def test_rank_dependency_503s_ignored() -> None:
    # All 100 user requests got a 503 and every error entry blames the database,
    # so the 503s are no evidence for raising rate limits.
    evidence = Evidence(
        statuses={"503": 100.0}, error_kinds={"dependency": 20}, error_rate=1.0
    )
    raise_limits = by_key(rank_recovery(evidence))["raise"]
    assert raise_limits.score == 0
    assert raise_limits.rank is None
    assert raise_limits.against == [
        "the 503s come with dependency errors (100 % of error entries)"
    ]


def test_rank_429s_count_as_limits() -> None:
    # 5 of 100 requests got a 429, so 5 % is above the 1 % share and scores 40.
    evidence = Evidence(statuses={"200": 95.0, "429": 5.0})
    raise_limits = by_key(rank_recovery(evidence))["raise"]
    assert raise_limits.score == 40
    assert raise_limits.evidence == ["5.0 % of user requests received 429 or 503"]


def test_whole_counts_no_decimals() -> None:
    assert str(whole(97.0)) == "97"
    assert whole(2.5) == 2.5
    assert whole(None) is None
