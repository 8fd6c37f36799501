"""Security audit summary tests: a realistic attack, the simulator's body, garbage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from veerunbook.security import SecuritySummary, summarise_security
from veerunbook.simulator.security import SecurityState

NOW = datetime(2026, 12, 4, 15, 0, 0, tzinfo=UTC)


def at(seconds_ago: float) -> str:
    """Format a time as the audit endpoint does: UTC, milliseconds, Z."""
    moment = NOW - timedelta(seconds=seconds_ago)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(kind: str, ip: str, severity: str, seconds_ago: float) -> dict[str, Any]:
    return {
        "time": at(seconds_ago),
        "type": kind,
        "ip": ip,
        "severity": severity,
        "detail": "recorded by the audit trail",
    }


def attack_body() -> dict[str, Any]:
    """A failed-login burst, its blocks and one privilege escalation attempt."""
    burst = [event("failed_login", "203.0.113.7", "medium", 50 - i) for i in range(5)]
    burst += [
        event("failed_login", "198.51.100.23", "medium", 40 - i) for i in range(2)
    ]
    return {
        "events": [
            *burst,
            event("rate_limit_hit", "203.0.113.7", "high", 30),
            event("ip_blocked", "203.0.113.7", "high", 20),
            event("privilege_escalation_attempt", "192.0.2.44", "critical", 10),
        ],
        "blockedIps": [
            {"ip": "203.0.113.7", "reason": "rate limit", "blockedAt": at(20)},
            {"ip": "198.51.100.23", "reason": "rate limit", "blockedAt": at(59)},
            {"ip": "198.51.100.24", "reason": "manual", "blockedAt": at(60)},
            {"ip": "192.0.2.99", "reason": "manual", "blockedAt": at(61)},
            {"ip": "192.0.2.100", "reason": "manual", "blockedAt": at(3600)},
        ],
        "rateLimiting": {"enabled": True, "limit": 10, "windowSeconds": 900, "hits": 1},
    }


@pytest.fixture
def attack() -> SecuritySummary:
    return summarise_security(attack_body(), now=NOW)


def test_attack_counts(attack: SecuritySummary) -> None:
    assert attack.failed_logins == 7
    assert attack.high_events == 3
    assert attack.events_by_type == {
        "failed_login": 7,
        "rate_limit_hit": 1,
        "ip_blocked": 1,
        "privilege_escalation_attempt": 1,
    }


def test_attack_sources(attack: SecuritySummary) -> None:
    assert attack.sources == {"203.0.113.7": 7, "198.51.100.23": 2, "192.0.2.44": 1}


def test_attack_blocked(attack: SecuritySummary) -> None:
    assert attack.blocked_ips == [
        "203.0.113.7",
        "198.51.100.23",
        "198.51.100.24",
        "192.0.2.99",
        "192.0.2.100",
    ]


def test_attack_blocked_last_minute(attack: SecuritySummary) -> None:
    # 20 s, 59 s and exactly 60 s ago count; 61 s and an hour ago do not.
    assert attack.blocked_last_minute == 3


def test_attack_breach_sign(attack: SecuritySummary) -> None:
    assert attack.breach_indicators == ["privilege_escalation_attempt from 192.0.2.44"]


def test_attack_status_fails(attack: SecuritySummary) -> None:
    assert attack.status == "fail"


def test_attack_rate_limiting(attack: SecuritySummary) -> None:
    assert attack.rate_limiting["hits"] == 1
    assert attack.rate_limiting["limit"] == 10


def test_attack_no_notes(attack: SecuritySummary) -> None:
    assert attack.notes == []


def test_attack_headline(attack: SecuritySummary) -> None:
    assert attack.headline() == (
        "3 high-severity events, 7 failed logins, 5 blocked IPs "
        "(3 in the last minute); breach signs: "
        "privilege_escalation_attempt from 192.0.2.44"
    )


def test_attack_top_sources(attack: SecuritySummary) -> None:
    assert attack.top_sources(2) == [
        {"ip": "203.0.113.7", "events": 7, "blocked": True},
        {"ip": "198.51.100.23", "events": 2, "blocked": True},
    ]
    assert attack.top_sources()[-1] == {
        "ip": "192.0.2.44",
        "events": 1,
        "blocked": False,
    }


def test_attack_to_dict(attack: SecuritySummary) -> None:
    data = attack.to_dict()
    assert data["failed_logins"] == 7
    assert data["blocked_last_minute"] == 3


def test_naive_now_is_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert summarise_security(attack_body(), now=naive).blocked_last_minute == 3


def test_blocking_burst_fails_without_breach() -> None:
    blocked = [{"ip": f"203.0.113.{i}", "blockedAt": at(5)} for i in range(11)]
    summary = summarise_security({"events": [], "blockedIps": blocked}, now=NOW)
    assert summary.blocked_last_minute == 11
    assert summary.status == "fail"


def test_ten_blocks_do_not_fail() -> None:
    blocked = [{"ip": f"203.0.113.{i}", "blockedAt": at(5)} for i in range(10)]
    summary = summarise_security({"events": [], "blockedIps": blocked}, now=NOW)
    assert summary.status == "pass"


def test_high_events_warn() -> None:
    body = {"events": [event("failed_login", "192.0.2.5", "HIGH", 1)], "blockedIps": []}
    summary = summarise_security(body, now=NOW)
    assert summary.high_events == 1
    assert summary.status == "warn"


def test_quiet_body_passes() -> None:
    body = {"events": [event("failed_login", "192.0.2.5", "low", 1)], "blockedIps": []}
    summary = summarise_security(body, now=NOW)
    assert summary.status == "pass"
    assert summary.headline() == (
        "0 high-severity events, 1 failed logins, 0 blocked IPs (0 in the last minute)"
    )


def test_simulator_body() -> None:
    """The embedded service's own audit entries, with real timestamps."""
    state = SecurityState()
    for _ in range(3):
        state.record_failed_login("203.0.113.50")
    state.block("203.0.113.50", "failed-login burst")
    body = {
        "events": [entry.to_json() for entry in state.events("low", 100)],
        "blockedIps": [entry.to_json() for entry in state.blocked()],
    }
    summary = summarise_security(body)
    assert summary.failed_logins == 3
    assert summary.blocked_ips == ["203.0.113.50"]
    assert summary.blocked_last_minute == 1
    assert summary.sources == {"203.0.113.50": 4}


# Garbage never raises: (body, notes).
GARBAGE: list[tuple[Any, list[str]]] = [
    (None, ["the audit response is not a JSON object"]),
    ([], ["the audit response is not a JSON object"]),
    ("<html>502 Bad Gateway</html>", ["the audit response is not a JSON object"]),
    (42, ["the audit response is not a JSON object"]),
    (
        {},
        [
            "the audit response has no 'events' list",
            "the audit response has no 'blockedIps' list",
        ],
    ),
    (
        {"events": "none", "blockedIps": {"ip": "192.0.2.1"}, "rateLimiting": []},
        [
            "the audit response has no 'events' list",
            "the audit response has no 'blockedIps' list",
        ],
    ),
    (
        {"events": [None, 1, "failed_login", []], "blockedIps": []},
        ["events skipped because they are not JSON objects: 4"],
    ),
    (
        {"events": [], "blockedIps": [None, 7, {"blockedAt": "2026-12-04T15:00:00Z"}]},
        ["blocked entries skipped because they have no IP: 3"],
    ),
]


@pytest.mark.parametrize(("body", "notes"), GARBAGE)
def test_garbage_notes(body: Any, notes: list[str]) -> None:
    summary = summarise_security(body, now=NOW)
    assert summary.notes == notes
    assert summary.status == "pass"
    assert summary.blocked_ips == []


def test_garbage_events_fields() -> None:
    body = {
        "events": [
            {},
            {"type": None, "ip": 7, "severity": None},
            {"type": {"nested": 1}, "ip": ["192.0.2.1"], "severity": 3},
            {"type": "privilege_escalation", "ip": None, "severity": "critical"},
        ],
        "blockedIps": [],
    }
    summary = summarise_security(body, now=NOW)
    assert summary.sources == {}
    assert summary.high_events == 1
    assert summary.breach_indicators == ["privilege_escalation from ?"]
    assert summary.events_by_type["unknown"] == 1


@pytest.mark.parametrize(
    "blocked_at",
    [
        None,
        "",
        "yesterday",
        "2026-13-45T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
        1796396400,
        ["2026-12-04T15:00:00Z"],
    ],
)
def test_garbage_blocked_times(blocked_at: Any) -> None:
    body = {"events": [], "blockedIps": [{"ip": "192.0.2.1", "blockedAt": blocked_at}]}
    summary = summarise_security(body, now=NOW)
    assert summary.blocked_ips == ["192.0.2.1"]
    assert summary.blocked_last_minute == 0
    assert summary.notes == [
        "blocked IPs without a valid blockedAt time, so not counted in the last "
        "minute: 1"
    ]


def test_plain_string_blocked_entries() -> None:
    body = {"events": [], "blockedIps": ["192.0.2.1", "192.0.2.2"]}
    summary = summarise_security(body, now=NOW)
    assert summary.blocked_ips == ["192.0.2.1", "192.0.2.2"]
    assert summary.blocked_last_minute == 0


def test_garbage_summary_renders() -> None:
    summary = summarise_security("not json", now=NOW)
    assert summary.headline().startswith("0 high-severity events")
    assert summary.top_sources() == []
    assert summary.to_dict()["notes"] == ["the audit response is not a JSON object"]
