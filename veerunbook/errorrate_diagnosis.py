"""The one-line diagnosis of a high-error-rate run.

The line leads with what needs acting on first: an unreachable target, then a
security incident, then the 5xx rate, the routes and errors behind it, the
deployment before the errors, and the first recovery action.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from veerunbook import metrics
from veerunbook.errorrate_evidence import application_frame, error_type
from veerunbook.errorrate_security import FAILED_LOGINS_WARN, security_incident
from veerunbook.errorrate_text import BLOCKED_WARNING, BLOCKED_WARNING_LINE, rate_level
from veerunbook.run_summary import procedure_step
from veerunbook.text import counted, percent

if TYPE_CHECKING:
    from veerunbook.errorrate import HighErrorRate


def diagnosis(procedure: HighErrorRate) -> str:
    """Describe the most urgent finding first, then the rate, errors and deploys."""
    if procedure.unreachable is not None:
        return procedure.unreachable
    window = procedure.window
    if window is None and not procedure.logs_read:
        failed = [sample.problem for sample in procedure.series if sample.problem]
        reason = f" (first failure: {failed[0]})" if failed else ""
        return f"the target could not be observed: no metrics and no error logs{reason}"

    incident, signs = _security_findings(procedure)
    parts = [*incident, *_rate_findings(window)]
    groups = procedure.error_groups[:2]
    if groups:
        described = [
            f"{error_type(group) or group.signature[:40]} in {application_frame(group)}"
            for group in groups
        ]
        parts.append("errors: " + ", ".join(described))
    parts += signs
    alignment = procedure.alignment
    if alignment is not None and (alignment.start or not alignment.history_read):
        parts.append(alignment.reason)
    parts.append(_recovery_finding(procedure))
    return "; ".join(part for part in parts if part)


def _security_findings(procedure: HighErrorRate) -> tuple[list[str], list[str]]:
    """Return the security incident to lead with, and attack signs for later.

    A security incident leads the line with its findings and the procedure to run.
    Without one, failed-login or blocking bursts are signs that follow the errors.
    """
    security = procedure.security
    logins = procedure.failed_logins_minute or 0
    incident = security_incident(security, procedure.breaches, logins)
    blocked = security.blocked_last_minute if security is not None else 0
    signs = []
    if logins >= FAILED_LOGINS_WARN:
        sources = counted(procedure.failed_login_sources, "address", "addresses")
        signs.append(f"{logins} failed logins from {sources} in the last minute")
    if blocked > BLOCKED_WARNING:
        signs.append(
            f"{blocked} IPs blocked in the last minute, above {BLOCKED_WARNING_LINE}"
        )
    if not incident:
        return [], signs
    breaches = [event.describe() for event in procedure.breaches[:2]]
    lead = ", ".join(breaches) if breaches else incident[0]
    rest = signs if breaches else signs[1:]
    steps = [f"security incident: {lead}", *rest, procedure_step("security-incident")]
    return steps, []


def _rate_findings(window: metrics.ErrorRate | None) -> list[str]:
    if window is None or window.rate is None:
        return ["5xx rate unknown"]
    _, level = rate_level(window.rate)
    findings = [f"5xx {percent(window.rate, 1)} of user requests, {level}"]
    worst = [item for item in window.routes if not item.probe and item.errors][:2]
    if worst:
        routes = ", ".join(f"{item.method} {item.route}" for item in worst)
        findings.append(f"most on {routes}")
    return findings


def _recovery_finding(procedure: HighErrorRate) -> str:
    ranked = sorted(
        (option for option in procedure.options if option.rank is not None),
        key=lambda option: option.rank or 0,
    )
    if ranked and ranked[0].key == "security":
        # The security-incident procedure is already named with its findings.
        ranked = ranked[1:]
        label = "then"
    else:
        label = "first action:"
    if ranked:
        return f"{label} {ranked[0].action}, {ranked[0].confidence} confidence"
    if procedure.options and procedure.window is not None and label != "then":
        return "no recovery needed"
    return ""
