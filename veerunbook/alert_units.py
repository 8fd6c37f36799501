"""How alert signals and rule values are shown: scaled to percent, with their unit."""

from __future__ import annotations

from veerunbook.alert_rules import COUNTER_SIGNALS, AlertRule, Signal

# Ratio signals are shown in percent, because the runbook states those thresholds so.
_PERCENT = frozenset(
    {
        Signal.ERROR_RATE,
        Signal.AVAILABILITY,
        Signal.MEMORY_RATIO,
        Signal.POOL_UTILISATION,
    }
)


def signal_value_text(signal: Signal, value: float | None) -> tuple[float | None, str]:
    """Return a stored sample's value as shown and its unit.

    A counter signal's sample is the cumulative counter, shown as a total.
    """
    if signal in _PERCENT:
        return _scaled(value, 100.0), "%"
    if signal in COUNTER_SIGNALS:
        return _scaled(value, 1.0), "total"
    return _scaled(value, 1.0), "ms"


def rule_value_text(rule: AlertRule, value: float | None) -> tuple[float | None, str]:
    """Return a rule's compared value (or threshold) as shown and its unit.

    For a counter signal the compared value is the increase over the rule's window.
    """
    if rule.signal in COUNTER_SIGNALS:
        return _scaled(value, 1.0), f"per {rule.window_seconds:g} s"
    return signal_value_text(rule.signal, value)


def _scaled(value: float | None, factor: float) -> float | None:
    if value is None:
        return None
    return round(value * factor, 3)
