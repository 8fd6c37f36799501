"""The tables that the alert-check notebook shows: signals, rules and transitions.

Each function builds one table from a ``CheckResult``. In the signals and rules
tables a missing number reads ``NO_VALUE``, next to the reason it is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from veerunbook.alert_check_result import AlertTransition, CheckResult, RuleStatus
from veerunbook.alert_rules import COUNTER_SIGNALS, Signal
from veerunbook.alert_units import (
    clock_text,
    duration_text,
    rule_quantity,
    rule_value_text,
    signal_value_text,
)
from veerunbook.triage_tables import Nothing, frame

if TYPE_CHECKING:
    import pandas as pd

# Table text in place of a missing number, so no cell reads NaN.
NO_VALUE = "no value"


def signals_table(result: CheckResult | None) -> pd.DataFrame | Nothing:
    """Tabulate each signal's value in ``result``, and a counter's increase over
    each rule window, with the reason where a value is missing."""
    if result is None or result.skipped:
        return Nothing("no signals: the check was skipped")
    rows = []
    for signal in Signal:
        value = result.values.get(signal)
        shown, unit = signal_value_text(signal, value)
        rows.append(
            {
                "signal": signal.value,
                "value": NO_VALUE if shown is None else shown,
                "unit": unit,
                "increase": _increase_text(signal, result.rules),
                "reason": "" if value is not None else result.missing_reason(signal),
            }
        )
    return frame(rows)


def rules_table(result: CheckResult | None) -> pd.DataFrame | Nothing:
    """Tabulate every rule in ``result`` with its value, threshold, hold time, state
    and since when it is active."""
    if result is None or result.skipped:
        return Nothing("no rules evaluated: the check was skipped")
    rows = []
    for status in result.rules:
        rule = status.rule
        value, unit = rule_value_text(rule, status.value)
        since = status.since
        rows.append(
            {
                "rule": rule.name,
                "tier": rule.tier.value,
                "signal": rule.signal.value,
                "value": NO_VALUE if value is None else value,
                "unit": unit,
                "threshold": f"{rule.comparison.value}"
                f" {rule_quantity(rule, rule.threshold)}",
                "for s": rule.for_seconds,
                "state": status.state.value,
                "since": "" if since is None else clock_text(since),
                "reason": ""
                if value is not None
                else result.missing_reason(rule.signal),
            }
        )
    return frame(rows)


def _increase_text(signal: Signal, statuses: tuple[RuleStatus, ...]) -> str:
    """Return a counter's increase over each distinct rule window, as the rules
    table shows it, such as ``63 per 60 s``; empty for other signals."""
    if signal not in COUNTER_SIGNALS:
        return ""
    by_window: dict[float, RuleStatus] = {}
    for status in statuses:
        if status.rule.signal is not signal:
            continue
        window = status.rule.window_seconds
        if window not in by_window or by_window[window].value is None:
            by_window[window] = status
    shown = []
    for _, status in sorted(by_window.items()):
        shown.append(rule_quantity(status.rule, status.value))
    return "; ".join(shown) or NO_VALUE


def transition_row(change: AlertTransition) -> dict[str, Any]:
    """Return the transitions table's row for ``change``."""
    rule = change.rule
    duration = change.duration_seconds
    return {
        "rule": rule.name,
        "tier": rule.tier.value,
        "transition": change.transition,
        "value": rule_quantity(rule, change.value),
        "since": "" if change.since is None else clock_text(change.since),
        "active for": "" if duration is None else duration_text(duration),
        "procedure": rule.procedure,
    }
