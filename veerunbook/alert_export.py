"""Export the runbook's alert rules as a Prometheus alerting-rule file.

The output is a rule file in the format that Prometheus loads through
``rule_files`` and that ``promtool check rules`` validates: one group, one alerting
rule per alert rule that has a PromQL expression. Rules without one (their signal
has no metric on the embedded target) are left out and listed in a comment at the
top of the file with their derivation. The ratio expressions sum ``by (job)``, so
each alert carries its job label, and with ``job`` every vector selector also
matches ``job="<job>"``, so that one Prometheus server can watch several services.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from veerunbook.alert_promql import job_matcher
from veerunbook.alert_rules import ALERT_RULES, AlertRule, Tier

GROUP_NAME = "veerunbook"

# Prometheus defines no severity scale, so the ``severity`` label uses the common
# critical, warning and info values, one per tier.
SEVERITIES: dict[Tier, str] = {
    Tier.P0: "critical",
    Tier.P1: "warning",
    Tier.P2: "info",
}

# Prometheus duration units from the largest down, in milliseconds. The export uses
# no day or week units, so a duration reads as hours, minutes and seconds.
_DURATION_UNITS = (("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))


def prometheus_duration(seconds: float) -> str:
    """Format ``seconds`` as a Prometheus duration such as ``1h30m`` or ``0s``.

    Raises ValueError for a negative duration or one that is not a whole number of
    milliseconds, because Prometheus durations have millisecond resolution.
    """
    if seconds < 0:
        raise ValueError(f"duration must not be negative, not {seconds!r} s")
    milliseconds = round(seconds * 1000)
    if abs(milliseconds - seconds * 1000) > 1e-6:
        raise ValueError(f"duration {seconds!r} s is not a whole number of ms")
    if milliseconds == 0:
        return "0s"
    parts = []
    for unit, size in _DURATION_UNITS:
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def alerting_rule(rule: AlertRule, job: str | None = None) -> dict[str, Any]:
    """Build the Prometheus alerting rule for ``rule``, which must have PromQL.

    With ``job`` the expression reads only the series with that job label.
    """
    expression = rule.promql_for(_selector(job))
    if expression is None:
        raise ValueError(f"alert rule {rule.name!r} has no PromQL expression")
    return {
        "alert": rule.name,
        "expr": expression,
        "for": prometheus_duration(rule.for_seconds),
        "labels": {"severity": SEVERITIES[rule.tier], "tier": str(rule.tier)},
        "annotations": {
            "summary": rule.summary,
            "runbook": f"veerunbook run {rule.procedure}",
            "procedure": rule.procedure,
        },
    }


def rules_document(
    rules: Iterable[AlertRule] = ALERT_RULES, *, job: str | None = None
) -> dict[str, Any]:
    """Build the rule file's content: one group with every rule that has PromQL."""
    exported = [
        alerting_rule(rule, job) for rule in rules if rule.build_promql is not None
    ]
    return {"groups": [{"name": GROUP_NAME, "rules": exported}]}


def export_yaml(
    rules: Iterable[AlertRule] = ALERT_RULES, *, job: str | None = None
) -> str:
    """Render ``rules`` as a Prometheus rule file, with the left-out rules on top.

    With ``job`` every expression reads only the series with that job label. The
    text depends only on the rules and ``job``, so two such exports are equal.
    """
    rules = tuple(rules)
    body = yaml.safe_dump(
        rules_document(rules, job=job),
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        # A wide line keeps each PromQL expression on one line.
        width=1_000_000,
    )
    return _header(rules, job) + body


def _selector(job: str | None) -> str:
    return "" if job is None else job_matcher(job)


def _header(rules: tuple[AlertRule, ...], job: str | None) -> str:
    lines = ["# Prometheus alerting rules exported by 'veerunbook alerts export'."]
    if job is not None:
        lines.append(f"# Every expression reads only the series with {_selector(job)}.")
    left_out = [rule for rule in rules if rule.build_promql is None]
    if left_out:
        lines.append("# Left out because the target exports no metric for the signal:")
        for rule in left_out:
            reason = " ".join(rule.derivation.split()) or "no derivation given."
            lines.append(f"#   {rule.name}: {reason}")
    return "\n".join(lines) + "\n"
