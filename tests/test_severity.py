"""Classification and escalation tests against the runbook's classes and matrix."""

from __future__ import annotations

from typing import Any

import pytest

from veerunbook.severity import (
    RESPONSE_MINUTES,
    Classification,
    Reason,
    Signals,
    classify,
    engaged_at,
    escalation_plan,
)

CONTACTS = {
    "primary_oncall": "pager: veefore-primary",
    "security": "#sec-incidents",
    "infrastructure": "#infra-oncall",
    "engineering_manager": "pager: veefore-em",
}


def classified(**signals: Any) -> Classification:
    return classify(Signals(**signals))


def rules(result: Classification) -> list[tuple[str, str]]:
    return [(reason.severity, reason.rule) for reason in result.reasons]


# Error rate: (rate, window in seconds, class, rule). The runbook's P1 example is
# "more than 50 % errors", its P2 example "less than 10 %", its critical alert
# "above 5 % for 2 minutes" and its information alert "above 0.5 %".
ERROR_RATES = [
    (0.0, 600.0, None, None),
    (0.005, 600.0, None, None),
    (0.0051, 600.0, "P2", "error rate above 0.5 %"),
    (0.05, 600.0, "P2", "error rate above 0.5 %"),
    (0.0501, 120.0, "P1", "error rate above 5 % for 2 minutes"),
    (0.0501, 119.0, "P2", "error rate below 10 %"),
    (0.0501, None, "P2", "error rate below 10 %"),
    (0.0999, 600.0, "P1", "error rate above 5 % for 2 minutes"),
    (0.10, 30.0, "P1", "error rate 10-50 % (escalated: between P2 and P1)"),
    (0.50, 30.0, "P1", "error rate 10-50 % (escalated: between P2 and P1)"),
    (0.5001, 30.0, "P1", "error rate above 50 %"),
    (1.0, None, "P1", "error rate above 50 %"),
]


@pytest.mark.parametrize(("rate", "window", "severity", "rule"), ERROR_RATES)
def test_error_rate_boundaries(
    rate: float, window: float | None, severity: str | None, rule: str | None
) -> None:
    result = classified(error_rate=rate, window_seconds=window)
    assert result.severity == severity
    assert [reason.rule for reason in result.reasons] == ([rule] if rule else [])


def test_error_rate_short_window_note() -> None:
    reason = classified(error_rate=0.06, window_seconds=119.0).reasons[0]
    assert reason.evidence == (
        "6.00 % of user requests answered 5xx;"
        " the 119 s window cannot confirm 2 minutes"
    )


def test_error_rate_evidence() -> None:
    reason = classified(error_rate=0.625).reasons[0]
    assert reason.evidence == "62.50 % of user requests answered 5xx"


# Thresholds of the alert section: (signals, class or None, rule).
THRESHOLDS = [
    ({"p95_seconds": 1.5}, None, None),
    ({"p95_seconds": 1.5001}, "P2", "p95 above 1500 ms"),
    ({"p95_seconds": 2.0}, "P2", "p95 above 1500 ms"),
    ({"p95_seconds": 2.0001}, "P1", "p95 above 2000 ms"),
    ({"blocked_ips_per_minute": 10.0}, None, None),
    ({"blocked_ips_per_minute": 11.0}, "P1", "more than 10 IPs blocked in 1 minute"),
    ({"blocked_ips_per_minute": 50.0}, "P1", "more than 10 IPs blocked in 1 minute"),
    ({"blocked_ips_per_minute": 51.0}, "P0", "more than 50 IPs blocked in 1 minute"),
    ({"pool_utilisation": 0.80}, None, None),
    ({"pool_utilisation": 0.81}, "P2", "connection pool above 80 %"),
    ({"memory_fraction": 0.85}, None, None),
    ({"memory_fraction": 0.86}, "P1", "memory above 85 %"),
]


@pytest.mark.parametrize(("signals", "severity", "rule"), THRESHOLDS)
def test_threshold_boundaries(
    signals: dict[str, Any], severity: str | None, rule: str | None
) -> None:
    result = classified(**signals)
    assert result.severity == severity
    assert [reason.rule for reason in result.reasons] == ([rule] if rule else [])


def test_p95_evidence_names_route() -> None:
    reason = classified(p95_seconds=2.345, p95_route="/api/posts").reasons[0]
    assert reason.evidence == "p95 2345 ms on /api/posts"


def test_blocked_evidence() -> None:
    assert classified(blocked_ips_per_minute=64.0).reasons[0].evidence == "64"


def test_pool_evidence() -> None:
    assert classified(pool_utilisation=0.92).reasons[0].evidence == "92 % in use"


# Facts that meet a class definition: (signals, class, rule).
FACTS = [
    ({"service_unreachable": True}, "P0", "complete service outage"),
    ({"service_unhealthy": True}, "P0", "complete service outage"),
    ({"database_down": True}, "P0", "database unavailable"),
    ({"data_corruption": True}, "P0", "database corruption or data loss"),
    ({"auth_failed": True}, "P0", "authentication system failure"),
    ({"breach_indicators": ["token reuse"]}, "P0", "security incident"),
    ({"critical_flows_failed": ["schedule post"]}, "P1", "critical feature broken"),
    ({"integrations_down": ["instagram"]}, "P1", "integration down"),
    ({"other_flows_failed": ["dashboard"]}, "P2", "non-critical feature broken"),
    ({"health_degraded": True}, "P2", "service degraded"),
    ({"maintenance_notes": ["docs outdated"]}, "P3", "maintenance"),
]


@pytest.mark.parametrize(("signals", "severity", "rule"), FACTS)
def test_fact_classes(signals: dict[str, Any], severity: str, rule: str) -> None:
    result = classified(**signals)
    assert result.severity == severity
    assert [reason.rule for reason in result.reasons] == [rule]


def test_outage_reported_once() -> None:
    result = classified(service_unreachable=True, service_unhealthy=True)
    assert rules(result) == [("P0", "complete service outage")]
    assert result.reasons[0].evidence == "no health endpoint answered"


def test_degraded_hidden_by_outage() -> None:
    result = classified(service_unhealthy=True, health_degraded=True)
    assert rules(result) == [("P0", "complete service outage")]


def test_breach_evidence_keeps_three() -> None:
    signs = ["a from 192.0.2.1", "b from 192.0.2.2", "c from 192.0.2.3", "d"]
    reason = classified(breach_indicators=signs).reasons[0]
    assert reason.evidence == "a from 192.0.2.1; b from 192.0.2.2; c from 192.0.2.3"


def test_one_reason_per_flow() -> None:
    result = classified(critical_flows_failed=["login", "schedule post"])
    assert [reason.evidence for reason in result.reasons] == [
        "user flow 'login' fails",
        "user flow 'schedule post' fails",
    ]


def test_most_severe_wins_and_reasons_kept() -> None:
    result = classified(
        maintenance_notes=["rotate certificates"],
        pool_utilisation=0.9,
        error_rate=0.6,
        database_down=True,
    )
    assert result.severity == "P0"
    assert rules(result) == [
        ("P0", "database unavailable"),
        ("P1", "error rate above 50 %"),
        ("P2", "connection pool above 80 %"),
        ("P3", "maintenance"),
    ]


def test_equal_classes_keep_rule_order() -> None:
    result = classified(memory_fraction=0.9, p95_seconds=3.0, error_rate=0.2)
    assert result.severity == "P1"
    assert [reason.rule for reason in result.reasons] == [
        "error rate 10-50 % (escalated: between P2 and P1)",
        "p95 above 2000 ms",
        "memory above 85 %",
    ]


def test_no_signals() -> None:
    result = classify(Signals())
    assert result.severity is None
    assert result.reasons == []
    assert result.response_time is None
    assert not result.is_incident


def test_maintenance_is_not_incident() -> None:
    result = classified(maintenance_notes=["docs"])
    assert not result.is_incident
    assert result.response_time == "next business day"


@pytest.mark.parametrize(
    ("signals", "response_time"),
    [
        ({"database_down": True}, "15 minutes"),
        ({"error_rate": 0.7}, "1 hour"),
        ({"pool_utilisation": 0.9}, "4 hours"),
    ],
)
def test_response_time(signals: dict[str, Any], response_time: str) -> None:
    result = classified(**signals)
    assert result.response_time == response_time
    assert result.is_incident


def test_response_minutes() -> None:
    assert RESPONSE_MINUTES == {"P0": 15, "P1": 60, "P2": 240, "P3": None}


def test_to_dict() -> None:
    result = classified(auth_failed=True)
    assert result.to_dict() == {
        "severity": "P0",
        "response_time": "15 minutes",
        "reasons": [
            {
                "severity": "P0",
                "rule": "authentication system failure",
                "evidence": "the login flow fails",
            }
        ],
    }


def test_reason_is_frozen() -> None:
    reason = Reason("P1", "rule", "evidence")
    with pytest.raises(AttributeError):
        reason.severity = "P0"  # type: ignore[misc]


# Escalation plan: (start, end, who, contact) per class.


def plan(severity: str | None, contacts: dict[str, str] | None = None) -> list[Any]:
    return [
        (step.start_minute, step.end_minute, step.who, step.contact)
        for step in escalation_plan(severity, contacts)
    ]


def test_plan_p0() -> None:
    assert plan("P0", CONTACTS) == [
        (0, 15, "on-call engineer", "pager: veefore-primary"),
        (15, 30, "+ security team", "#sec-incidents"),
        (30, 60, "+ infrastructure team", "#infra-oncall"),
        (60, None, "+ engineering manager", "pager: veefore-em"),
    ]


def test_plan_p1() -> None:
    assert plan("P1", CONTACTS) == [
        (0, 15, "on-call engineer", "pager: veefore-primary"),
        (15, 30, "on-call engineer begins the investigation", None),
        (30, 60, "+ security team if needed", "#sec-incidents"),
        (60, None, "+ infrastructure team", "#infra-oncall"),
    ]


def test_plan_p2() -> None:
    assert plan("P2", CONTACTS) == [
        (0, 15, "create a ticket", None),
        (30, 60, "assign an engineer", "pager: veefore-primary"),
        (60, None, "normal priority", None),
    ]


def test_plan_p3() -> None:
    assert plan("P3", CONTACTS) == [(0, None, "standard ticket queue", None)]


def test_plan_without_class() -> None:
    assert plan(None, CONTACTS) == []


def test_plan_unconfigured_roles() -> None:
    contacts = [step.contact for step in escalation_plan("P0")]
    assert contacts == [
        "[primary_oncall not configured]",
        "[security not configured]",
        "[infrastructure not configured]",
        "[engineering_manager not configured]",
    ]


def test_plan_empty_contact_is_unconfigured() -> None:
    steps = escalation_plan("P0", {**CONTACTS, "security": ""})
    assert steps[1].contact == "[security not configured]"


def test_step_window_text() -> None:
    steps = escalation_plan("P0", CONTACTS)
    assert [step.window() for step in steps] == [
        "0-15 min",
        "15-30 min",
        "30-60 min",
        "from 60 min",
    ]


# Who is engaged after so many minutes, per the runbook's escalation matrix.
ENGAGED = {
    "P0": {
        0: ["on-call engineer"],
        15: ["on-call engineer", "+ security team"],
        30: ["on-call engineer", "+ security team", "+ infrastructure team"],
        60: [
            "on-call engineer",
            "+ security team",
            "+ infrastructure team",
            "+ engineering manager",
        ],
    },
    "P1": {
        0: ["on-call engineer"],
        15: ["on-call engineer", "on-call engineer begins the investigation"],
        30: [
            "on-call engineer",
            "on-call engineer begins the investigation",
            "+ security team if needed",
        ],
        60: [
            "on-call engineer",
            "on-call engineer begins the investigation",
            "+ security team if needed",
            "+ infrastructure team",
        ],
    },
    "P2": {
        0: ["create a ticket"],
        15: ["create a ticket"],
        30: ["create a ticket", "assign an engineer"],
        60: ["create a ticket", "assign an engineer", "normal priority"],
    },
}
ENGAGED_CASES = [
    (severity, minute, who)
    for severity, table in ENGAGED.items()
    for minute, who in [*table.items(), (90, table[60])]
]


@pytest.mark.parametrize(("severity", "minute", "who"), ENGAGED_CASES)
def test_engaged_at_matrix(severity: str, minute: int, who: list[str]) -> None:
    assert [step.who for step in engaged_at(severity, minute, CONTACTS)] == who


def test_engaged_just_before_step() -> None:
    assert len(engaged_at("P0", 14.9)) == 1


def test_engaged_contacts() -> None:
    steps = engaged_at("P0", 30, CONTACTS)
    assert [step.contact for step in steps] == [
        "pager: veefore-primary",
        "#sec-incidents",
        "#infra-oncall",
    ]


def test_engaged_without_class() -> None:
    assert engaged_at(None, 90) == []
