"""The runbook's alert rules as data: tier, signal, threshold, hold time and procedure.

The thresholds and hold times are those of the incident-response runbook's alerting
section (P0 critical, P1 warning, P2 information), plus ``TargetDownP0`` for a target
whose metrics cannot be scraped. Each rule also builds a PromQL expression over the
metric names of the embedded target (``veerunbook.alert_promql``), for an export to
Prometheus alerting rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from veerunbook.alert_promql import (
    RULE_RATE_WINDOW,
    blocked_ips_increase,
    error_ratio,
    memory_ratio,
    p95_seconds,
    pool_ratio,
    vector,
)


class Tier(StrEnum):
    """Alert severity tier."""

    P0 = "P0"  # critical
    P1 = "P1"  # warning
    P2 = "P2"  # information


class Signal(StrEnum):
    """Measured quantity of a rule, with its unit."""

    ERROR_RATE = "error_rate"  # ratio 0..1 of 5xx to all user requests
    AVAILABILITY = "availability"  # ratio 0..1 of user requests served without a 5xx
    P95_MS = "p95_ms"  # 95th percentile response time, milliseconds
    MEMORY_RATIO = "memory_ratio"  # ratio 0..1 of heap used to heap limit
    BLOCKED_IPS_PER_MIN = "blocked_ips_per_min"  # counter, increase over 60 s
    DB_CONNECTION_FAILURES_PER_MIN = "db_connection_failures_per_min"  # counter
    POOL_UTILISATION = "pool_utilisation"  # ratio 0..1 of active to max connections
    UP = "up"  # 1.0 when the scrape of the target's metrics succeeded, 0.0 when not


# Counter signals. Each sample is the counter's increase since the previous sample,
# the per-series increases summed, and a rule on one of them compares the sum of
# those increases over ``window_seconds`` with the threshold.
COUNTER_SIGNALS = frozenset(
    {Signal.BLOCKED_IPS_PER_MIN, Signal.DB_CONNECTION_FAILURES_PER_MIN}
)


class Comparison(StrEnum):
    """Strict comparison of a signal value with a rule's threshold."""

    ABOVE = ">"
    BELOW = "<"

    def is_met(self, value: float, threshold: float) -> bool:
        """Return whether ``value`` is strictly above or below ``threshold``."""
        if self is Comparison.ABOVE:
            return value > threshold
        return value < threshold


@dataclass(frozen=True)
class AlertRule:
    """One alert rule of the runbook.

    ``for_seconds`` is the Prometheus ``for`` duration: how long the condition must
    hold at every evaluation before the alert fires. For a counter signal,
    ``window_seconds`` is the range over which the increases are summed.
    ``build_promql`` returns the PromQL alert expression for a selector (see
    ``promql_for``). It is None when the embedded target exports no metric for the
    signal, and ``derivation`` then describes where the signal comes from.
    """

    name: str
    tier: Tier
    signal: Signal
    comparison: Comparison
    threshold: float
    for_seconds: float
    summary: str
    procedure: str
    build_promql: Callable[[str], str] | None = field(repr=False, compare=False)
    derivation: str = ""
    window_seconds: float = 60.0

    @property
    def promql(self) -> str | None:
        """PromQL alert expression over the series of every job, None without one."""
        return self.promql_for("")

    def promql_for(self, selector: str) -> str | None:
        """Return the alert expression with ``selector`` added to every vector.

        ``selector`` contains label matchers such as ``job="veefore"`` from
        ``veerunbook.alert_promql.job_matcher``, or is empty for every job.
        """
        if self.build_promql is None:
            return None
        return self.build_promql(selector)

    def condition_met(self, value: float) -> bool:
        """Return whether one evaluated ``value`` meets the rule's condition."""
        return self.comparison.is_met(value, self.threshold)


# NOTE: availability is derived as 1 - the 5xx ratio of user requests, which is our
# choice. HTTP probe results are the other possible source.
_AVAILABILITY_DERIVATION = (
    "1 - the 5xx ratio of user requests, because the target exports no availability"
    " metric."
)
# NOTE: the target exports no database connection-failure counter, so the caller
# supplies this signal as a counter of failed connection attempts, which is our choice.
_DB_FAILURES_DERIVATION = (
    "A counter of failed database connection attempts that the caller supplies,"
    " because the target exports no connection-failure counter."
)


def _error_rate(tier: Tier, threshold: float, minutes: int) -> AlertRule:
    return AlertRule(
        name=f"ErrorRate{tier}",
        tier=tier,
        signal=Signal.ERROR_RATE,
        comparison=Comparison.ABOVE,
        threshold=threshold,
        for_seconds=minutes * 60.0,
        summary=(
            f"More than {threshold:.1%} of user requests failed with a 5xx status"
            f" for {minutes} minutes."
        ),
        procedure="high-error-rate",
        build_promql=lambda selector: (
            f"{error_ratio(RULE_RATE_WINDOW, selector, by='job')} > {threshold}"
        ),
    )


def _p95(tier: Tier, threshold_ms: float, minutes: int) -> AlertRule:
    return AlertRule(
        name=f"ResponseTimeP95{tier}",
        tier=tier,
        signal=Signal.P95_MS,
        comparison=Comparison.ABOVE,
        threshold=threshold_ms,
        for_seconds=minutes * 60.0,
        summary=(
            f"The 95th percentile response time was above {threshold_ms:.0f} ms"
            f" for {minutes} minutes."
        ),
        procedure="performance-degradation",
        # The histogram is in seconds, the threshold in milliseconds.
        build_promql=lambda selector: (
            f"{p95_seconds(RULE_RATE_WINDOW, selector, by='job')}"
            f" > {threshold_ms / 1000}"
        ),
    )


def _blocked_ips(tier: Tier, threshold: int) -> AlertRule:
    # "More than N blocked IPs in 1 minute": the increase over the last 60 s exceeds N
    # at one evaluation, so the rule has no hold time (for 0 s).
    return AlertRule(
        name=f"BlockedIps{tier}",
        tier=tier,
        signal=Signal.BLOCKED_IPS_PER_MIN,
        comparison=Comparison.ABOVE,
        threshold=float(threshold),
        for_seconds=0.0,
        summary=f"More than {threshold} IP addresses were blocked within one minute.",
        procedure="security-incident",
        build_promql=lambda selector: (
            f"{blocked_ips_increase(RULE_RATE_WINDOW, selector)} > {threshold}"
        ),
    )


# Every rule of the runbook's alerting section and TargetDownP0, P0 first.
ALERT_RULES: tuple[AlertRule, ...] = (
    # P0 critical: error rate > 5 % for 2 minutes.
    _error_rate(Tier.P0, 0.05, 2),
    # P0 critical: service availability < 95 % for 1 minute.
    AlertRule(
        name="AvailabilityP0",
        tier=Tier.P0,
        signal=Signal.AVAILABILITY,
        comparison=Comparison.BELOW,
        threshold=0.95,
        for_seconds=60.0,
        summary="Fewer than 95% of user requests were served without error for 1 min.",
        procedure="triage",
        build_promql=lambda selector: (
            f"1 - ({error_ratio(RULE_RATE_WINDOW, selector, by='job')}) < 0.95"
        ),
        derivation=_AVAILABILITY_DERIVATION,
    ),
    # P0 critical: more than 50 blocked IPs in 1 minute.
    _blocked_ips(Tier.P0, 50),
    # P0 critical: more than 10 database connection failures in 1 minute, which is
    # an increase over 60 s like the blocked IPs.
    AlertRule(
        name="DatabaseConnectionFailuresP0",
        tier=Tier.P0,
        signal=Signal.DB_CONNECTION_FAILURES_PER_MIN,
        comparison=Comparison.ABOVE,
        threshold=10.0,
        for_seconds=0.0,
        summary="More than 10 database connection attempts failed within one minute.",
        procedure="database-connection",
        build_promql=None,
        derivation=_DB_FAILURES_DERIVATION,
    ),
    # NOTE: the runbook has no rule for a target whose metrics cannot be read. We
    # treat one whose scrape fails for a minute as unavailable, so this rule sits
    # beside the runbook's P0 availability line (below 95 % for 1 minute).
    AlertRule(
        name="TargetDownP0",
        tier=Tier.P0,
        signal=Signal.UP,
        comparison=Comparison.BELOW,
        threshold=1.0,
        for_seconds=60.0,
        summary="The target's metrics could not be scraped for 1 minute.",
        procedure="triage",
        build_promql=lambda selector: f"{vector('up', selector)} == 0",
    ),
    # P1 warning: error rate > 1 % for 5 minutes.
    _error_rate(Tier.P1, 0.01, 5),
    # P1 warning: p95 response time > 2000 ms for 5 minutes.
    _p95(Tier.P1, 2000.0, 5),
    # P1 warning: memory usage > 85 % for 10 minutes.
    AlertRule(
        name="MemoryUsageP1",
        tier=Tier.P1,
        signal=Signal.MEMORY_RATIO,
        comparison=Comparison.ABOVE,
        threshold=0.85,
        for_seconds=600.0,
        summary="Heap use was above 85% of the heap limit for 10 minutes.",
        procedure="triage",
        build_promql=lambda selector: f"{memory_ratio(selector)} > 0.85",
    ),
    # P1 warning: more than 10 blocked IPs in 1 minute.
    _blocked_ips(Tier.P1, 10),
    # P2 information: error rate > 0.5 % for 15 minutes.
    _error_rate(Tier.P2, 0.005, 15),
    # P2 information: p95 response time > 1500 ms for 15 minutes.
    _p95(Tier.P2, 1500.0, 15),
    # P2 information: database pool utilisation > 80 % for 15 minutes.
    AlertRule(
        name="PoolUtilisationP2",
        tier=Tier.P2,
        signal=Signal.POOL_UTILISATION,
        comparison=Comparison.ABOVE,
        threshold=0.80,
        for_seconds=900.0,
        summary=(
            "More than 80% of the database pool's connections were in use"
            " for 15 minutes."
        ),
        procedure="database-connection",
        build_promql=lambda selector: f"{pool_ratio(selector)} > 0.8",
    ),
)


def rule_named(name: str) -> AlertRule:
    """Return the rule called ``name``, or raise KeyError listing the known rules."""
    for rule in ALERT_RULES:
        if rule.name == name:
            return rule
    known = ", ".join(rule.name for rule in ALERT_RULES)
    raise KeyError(f"alert rule {name!r} not found. Known rules: {known}")
