"""Ranking of the recovery actions for high error rates by the evidence gathered.

The runbook's recovery actions are: raise rate limits temporarily for a legitimate
traffic spike, block malicious addresses under attack, scale resources when they
are constrained, and roll back a deployment that introduced the errors. Two options
are added: the security-incident procedure when the security audit shows a breach
sign or an attack, and fixing forward as the alternative to a rollback when the
errors are code defects that no recent deployment introduced.

Each action gets a score from 0 to 100, summed from weighted findings, and the
findings that speak against it. Only an action with a finding for it gets a rank.
The procedure performs none of them.
NOTE: the weights are a judgement call that orders the actions, not a probability.
"""

from __future__ import annotations

from veerunbook.errorrate_options import Evidence, RecoveryOption
from veerunbook.errorrate_security import FAILED_LOGINS_ATTACK, FAILED_LOGINS_WARN
from veerunbook.errorrate_text import (
    BLOCKED_CRITICAL,
    BLOCKED_CRITICAL_LINE,
    BLOCKED_WARNING,
    BLOCKED_WARNING_LINE,
    rate_level,
)
from veerunbook.run_summary import procedure_step
from veerunbook.text import percent
from veerunbook.triage import MEMORY_FAIL, POOL_WARN

# NOTE: the runbook gives no figure for a request surge, a busy CPU or event loop
# lag. The next five values are estimates, not sourced thresholds.
ATTEMPTS_PER_SOURCE = 3.0  # failed logins per address: few addresses, many attempts
SURGE_FACTOR = 2.0  # user requests per second over the average since the start
LIMITED_SHARE = 0.01  # share of user requests that received 429 or 503
CPU_BUSY_CORES = 0.9  # CPU seconds per second. Node runs JavaScript on one core.
EVENT_LOOP_LAG_S = 0.1
MAJORITY = 0.5  # share of error entries or 5xx responses that makes a pattern

ACTIONS = {
    "security": "run the security-incident procedure",
    "raise": "raise rate limits temporarily",
    "block": "block abusive IP addresses",
    "scale": "scale application resources",
    "rollback": "roll back the deployment",
    "fix": "fix the defect forward (hotfix)",
}


def rank_recovery(evidence: Evidence) -> list[RecoveryOption]:
    """Score every recovery action and rank those with points, best first.

    Ties keep the listed order, which puts the security-incident procedure first
    and then the runbook's order. An action without points has no rank, and with
    an unreachable target no action has points.
    """
    if evidence.unreachable is not None:
        options = [RecoveryOption(key, action) for key, action in ACTIONS.items()]
        for option in options:
            option.from_runbook = option.key not in ("security", "fix")
            option.against.append(evidence.unreachable)
        return options
    options = [
        _security_incident(evidence),
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


def _security_incident(evidence: Evidence) -> RecoveryOption:
    option = RecoveryOption(
        "security", procedure_step("security-incident"), from_runbook=False
    )
    if evidence.breaches:
        # A breach sign outranks every recovery from the errors: the runbook's
        # security-incident response starts within its first 5 minutes.
        option.add(100, "breach signs: " + ", ".join(_breaches(evidence)))
    logins = evidence.failed_logins_minute or 0
    if logins >= FAILED_LOGINS_ATTACK:
        option.add(40, f"{logins} failed logins in the last minute, an attack")
    security = evidence.security
    if security is not None and security.blocked_last_minute > BLOCKED_CRITICAL:
        option.add(
            30,
            f"{security.blocked_last_minute} IPs blocked in the last minute,"
            f" above {BLOCKED_CRITICAL_LINE}",
        )
    if not option.score:
        option.against.append("no breach sign and no attack-sized burst")
    return option


def _breaches(evidence: Evidence) -> list[str]:
    return [
        event.describe() + (f" ({event.detail})" if event.detail else "")
        for event in evidence.breaches[:2]
    ]


def _raise_limits(evidence: Evidence) -> RecoveryOption:
    option = RecoveryOption("raise", ACTIONS["raise"])
    statuses = evidence.statuses
    total = sum(statuses.values())
    limited = statuses.get("429", 0.0)
    unavailable = statuses.get("503", 0.0)
    dependency = evidence.kind_share("dependency")
    if unavailable and dependency >= MAJORITY:
        # A 503 from a failing database or upstream is not a limit being hit.
        option.against.append(
            f"the 503s come with dependency errors ({percent(dependency, 0)} of"
            " error entries)"
        )
    else:
        limited += unavailable
    if total and limited / total > LIMITED_SHARE:
        option.add(
            40, f"{percent(limited / total, 1)} of user requests received 429 or 503"
        )
    rate, baseline = evidence.requests_per_second, evidence.baseline_per_second
    if rate is not None and baseline and rate >= SURGE_FACTOR * baseline:
        factor = rate / baseline
        option.add(30, f"{rate:.1f} requests/s, {factor:.1f} times the average")
    elif rate is not None and baseline:
        factor = rate / baseline
        option.against.append(f"request volume {factor:.1f} times the average")
    limits = evidence.security.rate_limiting if evidence.security else {}
    if limits.get("hits"):
        option.add(10, f"the rate limiter was hit {limits['hits']} times")
    signs = evidence.attack_signs()
    if signs:
        option.score = 0
        option.against.append("overruled by attack signs: " + "; ".join(signs))
    return option


def _block_addresses(evidence: Evidence) -> RecoveryOption:
    option = RecoveryOption("block", ACTIONS["block"])
    logins = evidence.failed_logins_minute or 0
    if logins >= FAILED_LOGINS_WARN:
        option.add(35, f"{logins} failed logins in the last minute")
        sources = evidence.failed_login_sources
        if sources and logins / sources >= ATTEMPTS_PER_SOURCE:
            option.add(15, f"from {sources} addresses, {logins / sources:.1f} each")
    security = evidence.security
    if security is None:
        option.against.append("the security audit could not be read")
        return option
    blocked = security.blocked_last_minute
    if blocked > BLOCKED_CRITICAL:
        line = BLOCKED_CRITICAL_LINE
        option.add(40, f"{blocked} IPs blocked in the last minute, above {line}")
    elif blocked > BLOCKED_WARNING:
        line = BLOCKED_WARNING_LINE
        option.add(30, f"{blocked} IPs blocked in the last minute, above {line}")
    if evidence.breaches:
        option.add(10, "breach signs: " + ", ".join(_breaches(evidence)))
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
        option.add(35, f"heap at {percent(heap, 0)} of its limit (above 85 %)")
    if (
        pool is not None
        and pool.utilisation is not None
        and pool.utilisation > POOL_WARN
    ):
        used = percent(pool.utilisation, 0)
        option.add(25, f"connection pool {used} in use (above 80 %)")
        if pool.waiting:
            option.add(10, f"{pool.waiting:g} requests waiting for a connection")
    if resources.cpu_cores is not None and resources.cpu_cores >= CPU_BUSY_CORES:
        option.add(20, f"CPU {resources.cpu_cores:.2f} cores busy")
    lag = resources.event_loop_lag_seconds
    if lag is not None and lag > EVENT_LOOP_LAG_S:
        option.add(10, f"event loop lag {lag * 1000:.0f} ms")
    if option.score and evidence.kind_share("resource") >= MAJORITY:
        share = percent(evidence.kind_share("resource"), 0)
        option.add(20, f"{share} of error entries are resource errors (timeouts)")
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
        option.add(
            15, f"{evidence.new_signatures} error signatures new since the deployment"
        )
    # Code defects point at a rollback only when there is a deployment to undo.
    deployed = deploy is not None and deploy.deployment is not None
    if deployed and evidence.kind_share("code") >= MAJORITY:
        option.add(20, _code_finding(evidence))
    if not option.score and not option.against:
        option.against.append("no deployment precedes the errors")
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
        and deploy.history_read
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
        _, level = rate_level(evidence.error_rate)
        option.against.append(
            f"the 5xx rate {percent(evidence.error_rate, 2)} is {level}"
        )
        return False
    return True


def _code_finding(evidence: Evidence) -> str:
    types = ", ".join(evidence.code_error_types[:3]) or "exceptions"
    share = evidence.kind_share("code")
    return f"{percent(share, 0)} of error entries are code-level exceptions ({types})"
