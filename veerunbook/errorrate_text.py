"""Wording shared by the high-error-rate checks, options and diagnosis.

The alert lines come from the runbook's alerting section. An alert line is named as
an alert, never as an incident class, because only triage sets the class. A value
above the critical alert line fails its check, and a value above a warning or
information alert line warns.
"""

from __future__ import annotations

from veerunbook.security import BLOCKED_P1_PER_MINUTE
from veerunbook.triage import ERROR_RATE_FAIL, ERROR_RATE_WARN

# The warning alert: 5xx above 1 % for 5 minutes.
ERROR_RATE_WARNING = 0.01
# The critical alert: more than 50 IPs blocked in 1 minute. The warning alert is
# more than 10 (veerunbook.security.BLOCKED_P1_PER_MINUTE).
BLOCKED_CRITICAL = 50
BLOCKED_WARNING = BLOCKED_P1_PER_MINUTE

RATE_CRITICAL_LINE = "the critical alert line (5 % for 2 min)"
RATE_WARNING_LINE = "the warning alert line (1 % for 5 min)"
RATE_INFORMATION_LINE = "the information alert line (0.5 % for 15 min)"
BLOCKED_CRITICAL_LINE = "the critical alert line (more than 50 in 1 min)"
BLOCKED_WARNING_LINE = "the warning alert line (more than 10 in 1 min)"


def rate_level(rate: float) -> tuple[str, str]:
    """Grade a 5xx rate against the alert lines: (check status, phrase)."""
    if rate > ERROR_RATE_FAIL:
        return "fail", f"above {RATE_CRITICAL_LINE}"
    if rate > ERROR_RATE_WARNING:
        return "warn", f"above {RATE_WARNING_LINE}"
    if rate > ERROR_RATE_WARN:
        return "warn", f"above {RATE_INFORMATION_LINE}"
    return "pass", f"at or below {RATE_INFORMATION_LINE}"


def blocked_level(blocked: int) -> tuple[str, str]:
    """Grade IPs blocked in the last minute against the alert lines."""
    if blocked > BLOCKED_CRITICAL:
        return "fail", f"above {BLOCKED_CRITICAL_LINE}"
    if blocked > BLOCKED_WARNING:
        return "warn", f"above {BLOCKED_WARNING_LINE}"
    return "pass", f"at or below {BLOCKED_WARNING_LINE}"
