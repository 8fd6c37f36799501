"""The alert-check procedure's steps: evaluate, tabulate, plot, notify.

Each method of ``AlertCheck`` is one step of the ``alert-check`` notebook, which a
scheduler runs once per interval. The evaluation itself is
``veerunbook.alert_check.check_alerts``, and these steps show and send its result.
Its signals, rules and transitions tables are in ``veerunbook.alert_check_tables``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veerunbook.alert_check import CheckResult, check_alerts
from veerunbook.alert_check_lock import check_lock
from veerunbook.alert_check_result import transition_text
from veerunbook.alert_check_tables import (
    NO_VALUE,
    rules_table,
    signals_table,
    transition_row,
)
from veerunbook.alert_rules import ALERT_RULES, Signal
from veerunbook.alert_store import SampleStore, store_path
from veerunbook.errors import StoreError
from veerunbook.journal import utc_timestamp
from veerunbook.notify import (
    Delivery,
    OutboxDelivery,
    build_message,
    deliver,
    send_outbox,
    webhook_url,
)
from veerunbook.session import Session
from veerunbook.triage_tables import Nothing, frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HISTORY_MINUTES", "NO_VALUE", "AlertCheck"]

# Minutes of stored samples that the history plot shows.
HISTORY_MINUTES = 30.0


@dataclass
class AlertCheck:
    """State of one alert-check run, filled in step by step."""

    session: Session
    result: CheckResult | None = None
    interval_seconds: float = 60.0

    @property
    def archive(self) -> Path:
        """The archive root that contains this run's incident folder."""
        return self.session.run.incident_dir.parent

    # Step 1: lock, scrape, store and evaluate.
    def evaluate(
        self,
        interval_seconds: float,
        sample_seconds: float,
        replay_time: float = 0.0,
        send: bool = False,
    ) -> pd.DataFrame | Nothing:
        """Run one check at ``replay_time`` (0: now) and show how it went.

        With ``send`` and a webhook URL configured, each transition's line is
        queued in the store's outbox, which ``notify`` sends.
        """
        self.interval_seconds = interval_seconds
        config = self.session.config
        queue = send and webhook_url(config.notify_webhook_env) is not None
        try:
            self.result = check_alerts(
                self.session.target,
                self.archive,
                now=replay_time or None,
                interval_seconds=interval_seconds,
                sample_seconds=sample_seconds,
                run=self.session.run,
                redactor=self.session.redactor,
                progress=print,
                queue_notifications=queue,
            )
        except StoreError as error:
            # Recorded, then raised, so the run ends as failed with this reason.
            self.session.run.check("alert sample store", "error", summary=str(error))
            raise
        result = self.result
        if result.skipped:
            return Nothing(f"CHECK SKIPPED, nothing evaluated: {result.skipped}")
        if result.read_only:
            print(f"read-only check: {result.read_only}")
        window = result.window_seconds
        moment = datetime.fromtimestamp(result.time, UTC)
        return frame(
            [
                {
                    "time (UTC)": utc_timestamp(moment),
                    "time (Unix s)": f"{result.time:.3f}".rstrip("0").rstrip("."),
                    "window s": NO_VALUE if window is None else round(window, 1),
                    "scrape error": result.scrape_error or "",
                    "store": str(store_path(self.archive, self.session.target.name)),
                }
            ]
        )

    # Step 2: signal values.
    def signals_table(self) -> pd.DataFrame | Nothing:
        """Tabulate each signal's value at this check, and a counter's increase over
        each rule window, with the reason where a value is missing."""
        return signals_table(self.result)

    # Step 3: rule states.
    def rules_table(self) -> pd.DataFrame | Nothing:
        """Tabulate every rule with its value, threshold, hold time, state and since
        when it is active."""
        return rules_table(self.result)

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
        # Samples from before the plot's left edge let each rule's hold time run.
        plotted = [r for r in ALERT_RULES if r.signal in _PLOTTED]
        lead = max(r.for_seconds + r.window_seconds for r in plotted)
        first = start - lead - 2 * self.interval_seconds
        with SampleStore(self.archive, self.session.target.name) as store:
            errors = store.read(Signal.ERROR_RATE, first, result.time)
            p95 = store.read(Signal.P95_MS, first, result.time)
        return plot_history(
            errors,
            p95,
            start=start,
            now=result.time,
            interval_seconds=self.interval_seconds,
        )

    # Step 5: transitions and notification.
    def notify(self, send: bool) -> pd.DataFrame | Nothing:
        """Tabulate this check's transitions, send the queued lines in one message,
        and record the ``alert notification`` check.

        The check passes when the message was sent, and warns when it was not sent
        (``send`` false or no webhook URL). It is an error when sending failed, and
        then the lines stay queued for the next check. It is skipped when there was
        nothing to send, and after a read-only check, which sends nothing.
        """
        result = self.result
        run = self.session.run
        config = self.session.config
        url = webhook_url(config.notify_webhook_env)
        if result is None or result.skipped:
            run.check("alert notification", "skip", summary=_NOT_EVALUATED)
            return Nothing(_NOT_EVALUATED)
        if result.read_only:
            summary = f"nothing sent: {result.read_only}"
            run.check("alert notification", "skip", summary=summary)
            return Nothing(summary)
        table: pd.DataFrame | Nothing = Nothing(_NO_TRANSITION)
        if result.transitions:
            table = frame([transition_row(change) for change in result.transitions])
        if send and url:
            sent = self._send_queued(result.time, url)
            if sent is None:
                run.check("alert notification", "skip", summary=_NOTHING_TO_SEND)
                return Nothing(_NOTHING_TO_SEND)
            _record_outbox(self.session, sent)
        elif result.transitions:
            text = "\n".join(transition_text(c, result) for c in result.transitions)
            message = build_message(config.notify_channel, text)
            delivery = deliver(
                message, variable=config.notify_webhook_env, send=send, run=run
            )
            _record_delivery(self.session, delivery, len(result.transitions))
            print(f"notification: {delivery.outcome}")
            print(text)
        else:
            run.check("alert notification", "skip", summary=_NOTHING_TO_SEND)
            return Nothing(_NOTHING_TO_SEND)
        return table

    def _send_queued(self, now: float, url: str) -> OutboxDelivery | str | None:
        """Send the store's outbox under the check lock; None when it is empty."""
        name = self.session.target.name
        folder = store_path(self.archive, name).parent
        with check_lock(folder) as held:
            if held is not None:
                return f"lines left queued: {held.reason()}"
            with SampleStore(self.archive, name) as store:
                return send_outbox(
                    store,
                    now=now,
                    channel=self.session.config.notify_channel,
                    url=url,
                    run=self.session.run,
                )

    # Step 6: summary.
    def summary(self) -> pd.DataFrame:
        """Return every check of the run as a table, worst first."""
        checks = self.session.run.checks_frame()
        if checks.empty:
            return checks
        order = {"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}
        ranked = checks.assign(_order=checks["status"].map(order))
        ranked = ranked.sort_values(["_order", "time"])
        ranked = ranked.drop(columns="_order").reset_index(drop=True)
        # Blank, not NaN, where a check has no observed or expected value.
        return ranked.astype(object).where(ranked.notna(), "")


_NOT_EVALUATED = "nothing to send: the check was skipped"
_NO_TRANSITION = "no alert started firing or resolved at this check"
_NOTHING_TO_SEND = (
    "nothing to send: no alert started firing or resolved, and no line is queued"
)

# Signals that the history plot draws.
_PLOTTED = frozenset({Signal.ERROR_RATE, Signal.P95_MS})


def _record_outbox(session: Session, sent: OutboxDelivery | str) -> None:
    """Record the ``alert notification`` check of sending the outbox."""
    if isinstance(sent, str):
        # Another check holds the lock and sends the queued lines itself.
        session.run.check("alert notification", "warn", summary=sent)
        print(f"notification: {sent}")
        return
    delivery = sent.delivery
    summary = f"{delivery.outcome}; lines sent: {sent.lines}, delayed: {sent.delayed}"
    if not delivery.sent:
        summary = f"{delivery.outcome}; lines left for the next check: {sent.pending}"
    session.run.check(
        "alert notification",
        "pass" if delivery.sent else "error",
        observed=sent.lines,
        unit="lines",
        expected="sent through the configured webhook",
        summary=summary,
    )
    print(f"notification: {summary}")


def _record_delivery(session: Session, delivery: Delivery, count: int) -> None:
    """Record the ``alert notification`` check: pass sent, error failed, warn not
    sent, so a lost page shows in the run summary and in the scheduler's log."""
    status = "warn"
    if delivery.sent:
        status = "pass"
    elif delivery.failed:
        status = "error"
    session.run.check(
        "alert notification",
        status,
        observed=count,
        unit="transitions",
        expected="sent through the configured webhook",
        summary=delivery.outcome,
    )
