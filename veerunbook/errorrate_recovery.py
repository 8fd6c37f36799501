"""Ranking of the recovery actions for high error rates by the evidence gathered.

The runbook's recovery actions are: raise rate limits temporarily for a legitimate
traffic spike, block malicious addresses under attack, scale resources when they
are constrained, and roll back a deployment that introduced the errors. Fixing
forward is added as the alternative to a rollback when the errors are code defects
that no recent deployment introduced.

Each action gets a score from 0 to 100, summed from weighted findings, and the
findings that speak against it. The procedure performs none of them.
NOTE: the weights are a judgement call that orders the actions, not a probability.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from veerunbook.errorrate_evidence import DeployAlignment
from veerunbook.errorrate_resources import Resources
from veerunbook.security import BLOCKED_P1_PER_MINUTE, SecuritySummary
from veerunbook.triage import ERROR_RATE_WARN, MEMORY_FAIL, POOL_WARN

BLOCKED_P0_PER_MINUTE = 50  # critical alert: more than 50 IPs blocked in 1 minute
# NOTE: the runbook gives no figure for a failed-login burst, a request surge, a busy
# CPU or event loop lag. The next six values are estimates, not sourced thresholds.
FAILED_LOGIN_BURST = 20  # failed logins in the last minute
ATTEMPTS_PER_SOURCE = 3.0  # failed logins per address: few addresses, many attempts
SURGE_FACTOR = 2.0  # user requests per second over the average since the start
LIMITED_SHARE = 0.01  # share of user requests that received 429 or 503
CPU_BUSY_CORES = 0.9  # CPU seconds per second. Node runs JavaScript on one core.
EVENT_LOOP_LAG_S = 0.1
MAJORITY = 0.5  # share of error entries or 5xx responses that makes a pattern

ACTIONS = {
    "raise": "raise rate limits temporarily",
    "block": "block abusive IP addresses",
    "scale": "scale application resources",
    "rollback": "roll back the deployment",
    "fix": "fix the defect forward (hotfix)",
}


@dataclass
class Evidence:
    """The findings of the procedure's steps that the ranking reads.

    ``statuses`` counts user requests per HTTP status over the window and
    ``error_kinds`` counts error log entries per kind (code, resource, dependency,
    other). None means that the step could not find out.
    """

    error_rate: float | None = None
    requests_per_second: float | None = None
    baseline_per_second: float | None = None
    statuses: dict[str, float] = field(default_factory=dict)
    error_kinds: dict[str, int] = field(default_factory=dict)
    code_error_types: list[str] = field(default_factory=list)
    new_signatures: int | None = None
    release_in_stack: bool = False
    deploy: DeployAlignment | None = None
    resources: Resources | None = None
    security: SecuritySummary | None = None
    failed_logins_minute: int | None = None
    failed_login_sources: int = 0

    def errors_high(self) -> bool:
        """Return whether the 5xx rate is above the 0.5 % information alert."""
        return self.error_rate is not None and self.error_rate > ERROR_RATE_WARN

    def kind_share(self, kind: str) -> float:
        """Return the share of error log entries of ``kind``."""
        total = sum(self.error_kinds.values())
        return self.error_kinds.get(kind, 0) / total if total else 0.0

    def attack_signs(self) -> list[str]:
        """List the findings that point at an attack rather than at users."""
        signs = []
        if (self.failed_logins_minute or 0) >= FAILED_LOGIN_BURST:
            signs.append(
                f"{self.failed_logins_minute} failed logins in the last minute"
            )
        security = self.security
        if (
            security is not None
            and security.blocked_last_minute > BLOCKED_P1_PER_MINUTE
        ):
            signs.append(
                f"{security.blocked_last_minute} IPs blocked in the last minute"
            )
        if security is not None and security.breach_indicators:
            signs.append("breach signs: " + ", ".join(security.breach_indicators[:2]))
        return signs


@dataclass
class RecoveryOption:
    """One recovery action with its score, rank and the findings for and against."""

    key: str
    action: str
    score: int = 0
    rank: int | None = None
    evidence: list[str] = field(default_factory=list)
    against: list[str] = field(default_factory=list)
    from_runbook: bool = True

    @property
    def confidence(self) -> str:
        """``high`` from 70 points, ``medium`` from 40, ``low`` above 0."""
        if self.score >= 70:
            return "high"
        if self.score >= 40:
            return "medium"
        return "low" if self.score > 0 else "not indicated"

    def add(self, points: int, finding: str) -> None:
        self.score = min(100, self.score + points)
        self.evidence.append(finding)

    def to_row(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "action": self.action,
            "score": self.score,
            "confidence": self.confidence,
            "evidence": "; ".join(self.evidence) or "-",
            "against": "; ".join(self.against) or "-",
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confidence": self.confidence}


def rank_recovery(evidence: Evidence) -> list[RecoveryOption]:
    """Score every recovery action and rank those with points, best first.

    Ties keep the runbook's order. An action without points has no rank.
    """
    options = [
        _raise_limits(evidence),
        _block_addresses(evidence),
        _scale(evidence),
        _rollback(evidence),
        _fix_forward(evidence),
    ]
    ranked = sorted(options, key=lambda option: -option.score)
    for position, option in enumerate(
        (option for option in ranked if option.score), start=1
    ):
        option.rank = position
    return ranked


def _raise_limits(evidence: Evidence) -> RecoveryOption:
    option = RecoveryOption("raise", ACTIONS["raise"])
    statuses = evidence.statuses
    total = sum(statuses.values())
    limited = statuses.get("429", 0.0) + statuses.get("503", 0.0)
    if total and limited / total > LIMITED_SHARE:
        option.add(40, f"{limited / total:.1%} of user requests received 429 or 503")
    rate, baseline = evidence.requests_per_second, evidence.baseline_per_second
    if rate is not None and baseline and rate >= SURGE_FACTOR * baseline:
        option.add(30, f"{rate:.1f} requests/s, {rate / baseline:.1f}x the average")
    elif rate is not None and baseline:
        option.against.append(f"request volume {rate / baseline:.1f}x the average")
    limits = evidence.security.rate_limiting if evidence.security else {}
    if limits.get("hits"):
        option.add(10, f"the rate limiter was hit {limits['hits']} times")
    signs = evidence.attack_signs()
    if signs:
        option.score = 0
        option.against.append("attack signs: " + "; ".join(signs))
    return option


def _block_addresses(evidence: Evidence) -> RecoveryOption:
    option = RecoveryOption("block", ACTIONS["block"])
    logins = evidence.failed_logins_minute or 0
    if logins >= FAILED_LOGIN_BURST:
        option.add(35, f"{logins} failed logins in the last minute")
        sources = evidence.failed_login_sources
        if sources and logins / sources >= ATTEMPTS_PER_SOURCE:
            option.add(15, f"from {sources} addresses, {logins / sources:.1f} each")
    security = evidence.security
    if security is None:
        option.against.append("the security audit could not be read")
        return option
    blocked = security.blocked_last_minute
    if blocked > BLOCKED_P0_PER_MINUTE:
        option.add(40, f"{blocked} IPs blocked in the last minute (above 50: P0)")
    elif blocked > BLOCKED_P1_PER_MINUTE:
        option.add(30, f"{blocked} IPs blocked in the last minute (above 10: P1)")
    if security.breach_indicators:
        option.add(10, "breach signs: " + ", ".join(security.breach_indicators[:2]))
    if security.high_events and option.score:
        option.add(10, f"{security.high_events} high-severity security events")
    if not option.score:
        option.against.append("no failed-login burst and no blocking burst")
    return option


def _scale(evidence: Evidence) -> RecoveryOption:
    option = RecoveryOption("scale", ACTIONS["scale"])
    resources = evidence.resources
    if resources is None:
        option.against.append("no resource metrics could be read")
        return option
    heap, pool = resources.heap_fraction, resources.pool
    if heap is not None and heap > MEMORY_FAIL:
        option.add(35, f"heap at {heap:.0%} of its limit (above 85 %)")
    if (
        pool is not None
        and pool.utilisation is not None
        and pool.utilisation > POOL_WARN
    ):
        option.add(25, f"connection pool {pool.utilisation:.0%} in use (above 80 %)")
        if pool.waiting:
            option.add(10, f"{pool.waiting:g} requests waiting for a connection")
    if resources.cpu_cores is not None and resources.cpu_cores >= CPU_BUSY_CORES:
        option.add(20, f"CPU {resources.cpu_cores:.2f} cores busy")
    lag = resources.event_loop_lag_seconds
    if lag is not None and lag > EVENT_LOOP_LAG_S:
        option.add(10, f"event loop lag {lag * 1000:.0f} ms")
    if option.score and evidence.kind_share("resource") >= MAJORITY:
        option.add(20, f"{evidence.kind_share('resource'):.0%} of errors are timeouts")
    errors = sum(count for code, count in evidence.statuses.items() if code[:1] == "5")
    if option.score and errors and evidence.statuses.get("503", 0) / errors >= MAJORITY:
        option.add(10, "most 5xx responses are 503")
    if not option.score:
        option.against.append("memory, pool and CPU are within their limits")
    return option


def _rollback(evidence: Evidence) -> RecoveryOption:
    option = RecoveryOption("rollback", ACTIONS["rollback"])
    if not _errors_gate(evidence, option):
        return option
    deploy = evidence.deploy
    if deploy is not None and deploy.within_window:
        option.add(45, deploy.reason)
    elif deploy is not None:
        option.against.append(deploy.reason)
    if evidence.release_in_stack and deploy is not None and deploy.deployment:
        option.add(20, f"the stack traces name release {deploy.deployment.version}")
    if evidence.new_signatures:
        option.add(15, f"{evidence.new_signatures} error signatures new since it")
    if evidence.kind_share("code") >= MAJORITY:
        option.add(20, _code_finding(evidence))
    return option


def _fix_forward(evidence: Evidence) -> RecoveryOption:
    option = RecoveryOption("fix", ACTIONS["fix"], from_runbook=False)
    if not _errors_gate(evidence, option):
        return option
    if evidence.kind_share("code") >= MAJORITY:
        option.add(40, _code_finding(evidence))
    else:
        option.against.append("most errors are not code-level exceptions")
    deploy = evidence.deploy
    if (
        option.score
        and deploy is not None
        and deploy.start
        and not deploy.within_window
    ):
        option.add(30, deploy.reason)
    elif deploy is not None and deploy.within_window:
        option.against.append("a recent deployment precedes the errors")
    return option


def _errors_gate(evidence: Evidence, option: RecoveryOption) -> bool:
    if evidence.error_rate is None:
        option.against.append("the 5xx rate is unknown")
        return False
    if not evidence.errors_high():
        option.against.append(
            f"the 5xx rate {evidence.error_rate:.2%} is within the 0.5 % alert"
        )
        return False
    return True


def _code_finding(evidence: Evidence) -> str:
    types = ", ".join(evidence.code_error_types[:3]) or "exceptions"
    share = evidence.kind_share("code")
    return f"{share:.0%} of error entries are code-level exceptions ({types})"
