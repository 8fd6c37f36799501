"""The alert-check procedure's steps: evaluate, tabulate, plot, notify.

Each method of ``AlertCheck`` is one step of the ``alert-check`` notebook, which a
scheduler runs once per interval. The evaluation itself is
``veerunbook.alert_check.check_alerts``, and these steps show and send its result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veerunbook.alert_check import CheckResult, check_alerts
from veerunbook.alert_rules import Signal
from veerunbook.alert_store import SampleStore, store_path
from veerunbook.alert_units import rule_value_text, signal_value_text
from veerunbook.notify import build_message, deliver
from veerunbook.session import Session
from veerunbook.triage_tables import Nothing, frame

if TYPE_CHECKING:
    import pandas as pd

# Minutes of stored samples that the history plot shows.
HISTORY_MINUTES = 30.0


@dataclass
class AlertCheck:
    """State of one alert-check run, filled in step by step."""

    session: Session
    result: CheckResult | None = None

    @property
    def archive(self) -> Path:
        """The archive root that contains this run's incident folder."""
        return self.session.run.incident_dir.parent

    # Step 1: lock, scrape, store and evaluate.
    def evaluate(
        self, interval_seconds: float, sample_seconds: float, replay_time: float = 0.0
    ) -> pd.DataFrame | Nothing:
        """Run one check at ``replay_time`` (0: now) and show how it went."""
        self.result = check_alerts(
            self.session.target,
            self.archive,
            now=replay_time or None,
            interval_seconds=interval_seconds,
            sample_seconds=sample_seconds,
            run=self.session.run,
            redactor=self.session.redactor,
            progress=print,
        )
        result = self.result
        if result.skipped:
            return Nothing(f"CHECK SKIPPED, nothing evaluated: {result.skipped}")
        window = result.window_seconds
        return frame(
            [
                {
                    "time (Unix s)": result.time,
                    "window s": None if window is None else round(window, 1),
                    "scrape error": result.scrape_error or "",
                    "store": str(store_path(self.archive, self.session.target.name)),
                }
            ]
        )

    # Step 2: signal values.
    def signals_table(self) -> pd.DataFrame | Nothing:
        """Tabulate each signal's value at this check, None where not measured."""
        result = self.result
        if result is None or result.skipped:
            return Nothing("no signals: the check was skipped")
        rows = []
        for signal in Signal:
            shown, unit = signal_value_text(signal, result.values.get(signal))
            rows.append({"signal": signal.value, "value": shown, "unit": unit})
        return frame(rows)

    # Step 3: rule states.
    def rules_table(self) -> pd.DataFrame | Nothing:
        """Tabulate every rule with its value, threshold, hold time and state."""
        result = self.result
        if result is None or result.skipped:
            return Nothing("no rules evaluated: the check was skipped")
        rows = []
        for status in result.rules:
            rule = status.rule
            value, unit = rule_value_text(rule, status.value)
            threshold, _ = rule_value_text(rule, rule.threshold)
            rows.append(
                {
                    "rule": rule.name,
                    "tier": rule.tier.value,
                    "signal": rule.signal.value,
                    "value": value,
                    "threshold": f"{rule.comparison.value} {threshold:g} {unit}",
                    "for s": rule.for_seconds,
                    "state": status.state.value,
                }
            )
        return frame(rows)

    # Step 4: history plot.
    def plot_history(self) -> Any:
        """Draw the stored error rate and p95 of the last 30 minutes, or None."""
        from veerunbook.alert_check_plot import plot_history

        result = self.result
        path = store_path(self.archive, self.session.target.name)
        if result is None or not path.is_file():
            print("no stored samples: nothing to plot")
            return None
        start = result.time - HISTORY_MINUTES * 60
        with SampleStore(self.archive, self.session.target.name) as store:
            errors = store.read(Signal.ERROR_RATE, start, result.time)
            p95 = store.read(Signal.P95_MS, start, result.time)
        return plot_history(errors, p95, result.time)

    # Step 5: transitions and notification.
    def notify(self, send: bool) -> pd.DataFrame | Nothing:
        """Tabulate this check's transitions and send one message for all of them."""
        result = self.result
        if result is None or not result.transitions:
            return Nothing("no alert started firing or resolved at this check")
        rows = []
        for change in result.transitions:
            value, unit = rule_value_text(change.rule, change.value)
            rows.append(
                {
                    "rule": change.rule.name,
                    "tier": change.rule.tier.value,
                    "transition": change.transition,
                    "value": value,
                    "unit": unit,
                    "procedure": change.rule.procedure,
                }
            )
        config = self.session.config
        message = build_message(config.notify_channel, self._message_text(result))
        delivery = deliver(
            message, variable=config.notify_webhook_env, send=send, run=self.session.run
        )
        print(f"notification: {delivery.outcome}")
        print(message["text"])
        return frame(rows)

    def _message_text(self, result: CheckResult) -> str:
        name = self.session.target.name
        lines = [f"Alert check of {name}:"]
        for change in result.transitions:
            rule = change.rule
            value, unit = rule_value_text(rule, change.value)
            shown = "no value" if value is None else f"{value:g} {unit}"
            lines.append(
                f"[{rule.tier.value}] {rule.name} {change.transition.upper()}"
                f" ({shown}): {rule.summary} Procedure: {rule.procedure}."
            )
        return "\n".join(lines)

    # Step 6: summary.
    def summary(self) -> pd.DataFrame:
        """Return every check of the run as a table, worst first."""
        checks = self.session.run.checks_frame()
        if checks.empty:
            return checks
        order = {"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}
        ranked = checks.assign(_order=checks["status"].map(order))
        ranked = ranked.sort_values(["_order", "time"])
        return ranked.drop(columns="_order").reset_index(drop=True)
