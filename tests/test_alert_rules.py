import pytest

from veerunbook.alert_rules import (
    ALERT_RULES,
    COUNTER_SIGNALS,
    Comparison,
    Signal,
    Tier,
    rule_named,
)


def _thresholds(tier: Tier) -> dict[Signal, tuple[float, float]]:
    return {
        rule.signal: (rule.threshold, rule.for_seconds)
        for rule in ALERT_RULES
        if rule.tier is tier
    }


def test_p0_thresholds_and_hold_times() -> None:
    assert _thresholds(Tier.P0) == {
        Signal.ERROR_RATE: (0.05, 120.0),
        Signal.AVAILABILITY: (0.95, 60.0),
        Signal.BLOCKED_IPS_PER_MIN: (50.0, 0.0),
        Signal.DB_CONNECTION_FAILURES_PER_MIN: (10.0, 0.0),
        Signal.UP: (1.0, 60.0),
    }


def test_p1_thresholds_and_hold_times() -> None:
    assert _thresholds(Tier.P1) == {
        Signal.ERROR_RATE: (0.01, 300.0),
        Signal.P95_MS: (2000.0, 300.0),
        Signal.MEMORY_RATIO: (0.85, 600.0),
        Signal.BLOCKED_IPS_PER_MIN: (10.0, 0.0),
    }


def test_p2_thresholds_and_hold_times() -> None:
    assert _thresholds(Tier.P2) == {
        Signal.ERROR_RATE: (0.005, 900.0),
        Signal.P95_MS: (1500.0, 900.0),
        Signal.POOL_UTILISATION: (0.80, 900.0),
    }


def test_rule_names_unique() -> None:
    names = [rule.name for rule in ALERT_RULES]
    assert len(names) == len(set(names))


def test_procedure_per_signal() -> None:
    expected = {
        Signal.ERROR_RATE: "high-error-rate",
        Signal.AVAILABILITY: "triage",
        Signal.P95_MS: "performance-degradation",
        Signal.MEMORY_RATIO: "triage",
        Signal.BLOCKED_IPS_PER_MIN: "security-incident",
        Signal.DB_CONNECTION_FAILURES_PER_MIN: "database-connection",
        Signal.POOL_UTILISATION: "database-connection",
        Signal.UP: "triage",
    }
    for rule in ALERT_RULES:
        assert rule.procedure == expected[rule.signal], rule.name


def test_rule_count() -> None:
    # The runbook's 11 rules and TargetDownP0.
    assert len(ALERT_RULES) == 12


def test_only_availability_and_up_below() -> None:
    below = [r.name for r in ALERT_RULES if r.comparison is Comparison.BELOW]
    assert below == ["AvailabilityP0", "TargetDownP0"]


def test_target_down_rule() -> None:
    rule = rule_named("TargetDownP0")
    assert rule.tier is Tier.P0
    assert rule.signal is Signal.UP
    assert rule.for_seconds == 60.0
    assert rule.procedure == "triage"
    assert rule.condition_met(0.0)
    assert not rule.condition_met(1.0)


def test_counter_rules_use_minute_window() -> None:
    for rule in ALERT_RULES:
        if rule.signal in COUNTER_SIGNALS:
            assert rule.window_seconds == 60.0, rule.name


def test_promql_uses_target_metric_names() -> None:
    assert "http_requests_total" in str(rule_named("ErrorRateP0").promql)


def test_promql_expressions() -> None:
    expressions = {rule.name: rule.promql for rule in ALERT_RULES}
    assert expressions["BlockedIpsP0"] == (
        "sum by (job) (increase(security_blocked_ips_total[1m])) > 50"
    )
    assert expressions["MemoryUsageP1"] == (
        "nodejs_heap_size_used_bytes / nodejs_heap_size_limit_bytes > 0.85"
    )
    assert expressions["PoolUtilisationP2"] == (
        'sum by (job, instance) (database_connections{state="active"})'
        " / sum by (job, instance) (database_connections_max) > 0.8"
    )
    assert expressions["TargetDownP0"] == "up == 0"
    assert expressions["ErrorRateP1"] == (
        'sum by (job) (rate(http_requests_total{endpoint!~"/metrics|/health.*|'
        '/readyz|/healthz",status_code=~"5.."}[1m]))'
        ' / sum by (job) (rate(http_requests_total{endpoint!~"/metrics|/health.*|'
        '/readyz|/healthz"}[1m])) > 0.01'
    )
    # The histogram is in seconds: 2000 ms is 2.0 s.
    assert str(expressions["ResponseTimeP95P1"]).endswith(") > 2.0")


def test_rules_without_promql_have_derivation() -> None:
    for rule in ALERT_RULES:
        if rule.promql is None:
            assert rule.derivation, rule.name


def test_availability_derivation_stated() -> None:
    assert rule_named("AvailabilityP0").derivation.startswith("1 - the 5xx ratio")


def test_condition_strict() -> None:
    # Thresholds are exclusive: "> 5 %" does not hold at exactly 5 %.
    assert not rule_named("ErrorRateP0").condition_met(0.05)
    assert rule_named("ErrorRateP0").condition_met(0.0501)
    assert not rule_named("AvailabilityP0").condition_met(0.95)
    assert rule_named("AvailabilityP0").condition_met(0.9499)


def test_unknown_rule_name() -> None:
    with pytest.raises(KeyError, match="ErrorRateP0"):
        rule_named("NoSuchRule")


def test_promql_leaves_out_probe_routes() -> None:
    # The same routes as the embedded error rate's default exclusion.
    expression = str(rule_named("ErrorRateP0").promql)
    assert 'endpoint!~"/metrics|/health.*|/readyz|/healthz"' in expression


def test_ratio_rules_sum_by_job() -> None:
    for name in ("ErrorRateP0", "AvailabilityP0", "ResponseTimeP95P1"):
        expression = str(rule_named(name).promql)
        assert "sum(" not in expression, name
        assert "by (job" in expression, name


def test_p95_keeps_job_and_bucket() -> None:
    expression = str(rule_named("ResponseTimeP95P2").promql)
    assert expression.startswith("histogram_quantile(0.95, sum by (job, le) (")


def test_promql_for_job_selector() -> None:
    expression = str(rule_named("MemoryUsageP1").promql_for('job="veefore"'))
    assert expression == (
        'nodejs_heap_size_used_bytes{job="veefore"}'
        ' / nodejs_heap_size_limit_bytes{job="veefore"} > 0.85'
    )


def test_promql_for_target_down() -> None:
    rule = rule_named("TargetDownP0")
    assert rule.promql_for('job="veefore"') == 'up{job="veefore"} == 0'


def test_promql_for_selector_in_every_vector() -> None:
    expression = str(rule_named("AvailabilityP0").promql_for('job="veefore"'))
    assert expression.count("http_requests_total{") == 2
    assert expression.count(',job="veefore"}') == 2


def test_promql_for_without_metric() -> None:
    rule = rule_named("DatabaseConnectionFailuresP0")
    assert rule.promql_for('job="veefore"') is None
