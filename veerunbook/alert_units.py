"""Display text of alert signals, rule values, times and durations, with units.

Ratios are shown in percent, because the runbook states those thresholds so.
Response times are in milliseconds, a counter rule's value is its increase over the
rule's window, and any other signal is the plain number.
"""

from __future__ import annotations

from datetime import UTC, datetime

from veerunbook.alert_rules import COUNTER_SIGNALS, AlertRule, Comparison, Signal

_PERCENT = frozenset(
    {
        Signal.ERROR_RATE,
        Signal.AVAILABILITY,
        Signal.MEMORY_RATIO,
        Signal.POOL_UTILISATION,
    }
)
_MILLISECONDS = frozenset({Signal.P95_MS})

# Usual reason a signal has no value although the scrape succeeded.
_MISSING_REASONS = {
    Signal.ERROR_RATE: "no user request in the window",
    Signal.AVAILABILITY: "no user request in the window",
    Signal.P95_MS: "no user request in the window",
    Signal.MEMORY_RATIO: "no heap used or heap limit gauge",
    Signal.POOL_UTILISATION: (
        "no active-connection or maximum-connection gauge of the database pool"
    ),
    Signal.DB_CONNECTION_FAILURES_PER_MIN: (
        "the target exports no connection-failure counter"
    ),
}
_COUNTER_MISSING = "no counter increase in the window: a first check or a missed one"


def signal_value_text(signal: Signal, value: float | None) -> tuple[float | None, str]:
    """Return a stored sample's value as shown and its unit.

    A counter signal's sample is the counter's increase since the previous check.
    """
    if signal in _PERCENT:
        return _scaled(value, 100.0), "%"
    if signal in COUNTER_SIGNALS:
        return _scaled(value, 1.0), "since previous check"
    if signal in _MILLISECONDS:
        return _scaled(value, 1.0), "ms"
    return _scaled(value, 1.0), ""


def rule_value_text(rule: AlertRule, value: float | None) -> tuple[float | None, str]:
    """Return a rule's compared value (or threshold) as shown and its unit.

    For a counter signal the compared value is the increase over the rule's window.
    """
    if rule.signal in COUNTER_SIGNALS:
        return _scaled(value, 1.0), f"per {rule.window_seconds:g} s"
    return signal_value_text(rule.signal, value)


def number_text(value: float) -> str:
    """Format a shown value with three significant digits, whole from 1000 up."""
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.3g}"


def quantity_text(value: float | None, unit: str) -> str:
    """Format a shown value and its unit, such as ``26.3 %``, or ``no value``."""
    if value is None:
        return "no value"
    return f"{number_text(value)} {unit}".rstrip()


def rule_quantity(rule: AlertRule, value: float | None) -> str:
    """Format a rule's compared value in its display unit, such as ``26.3 %``."""
    return quantity_text(*rule_value_text(rule, value))


def condition_text(rule: AlertRule) -> str:
    """Describe when ``rule`` alerts, such as ``alert above 5 % for 2 min``."""
    word = "above" if rule.comparison is Comparison.ABOVE else "below"
    text = f"alert {word} {rule_quantity(rule, rule.threshold)}"
    if rule.for_seconds > 0:
        text += f" for {hold_text(rule.for_seconds)}"
    return text


def hold_text(seconds: float) -> str:
    """Format a hold time: ``2 min`` for whole minutes, else as ``duration_text``."""
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return duration_text(seconds)


def duration_text(seconds: float) -> str:
    """Format a duration as ``45 s``, ``4 min 00 s`` or ``2 h 04 min 00 s``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def clock_text(unix_seconds: float) -> str:
    """Format a Unix time as the UTC clock time ``14:22:30 UTC``."""
    moment = datetime.fromtimestamp(unix_seconds, UTC)
    return f"{moment:%H:%M:%S} UTC"


def missing_reason(signal: Signal, scrape_error: str | None) -> str:
    """Return why ``signal`` has no value at a check, as far as it is known.

    A failed scrape explains every missing value. Otherwise the reason is the usual
    one for the signal, from the metric names of the embedded target.
    """
    if scrape_error:
        return f"the scrape failed: {scrape_error}"
    if signal in _MISSING_REASONS:
        return _MISSING_REASONS[signal]
    if signal in COUNTER_SIGNALS:
        return _COUNTER_MISSING
    return "no sample at this check"


def _scaled(value: float | None, factor: float) -> float | None:
    if value is None:
        return None
    return round(value * factor, 3)
