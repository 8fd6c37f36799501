"""The high-error-rate procedure's steps: logs, rates, resources, limits, deploys.

Each method of ``HighErrorRate`` is one step of the runbook's response to a 5xx rate
above 5 %. It journals what it checked and keeps the facts that ``recovery_options``
ranks the runbook's recovery actions by. A step that cannot reach its endpoint
records an ``error`` check and leaves its facts unknown. When no metrics scrape
gets a response at all, that is one ``error`` check, and every later step that
needs the target records a ``skip`` with the same reason. No step stops the
procedure, and nothing here changes the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from veerunbook import metrics, metrics_series
from veerunbook.changes import ChangeHistory, read_changes
from veerunbook.errorrate_checks import check_error_rate, check_resources, check_scrapes
from veerunbook.errorrate_diagnosis import diagnosis
from veerunbook.errorrate_evidence import (
    DeployAlignment,
    ErrorStart,
    align_deploys,
    error_start,
)
from veerunbook.errorrate_logs import read_error_logs
from veerunbook.errorrate_options import Evidence, RecoveryOption, collect_evidence
from veerunbook.errorrate_recovery import rank_recovery
from veerunbook.errorrate_resources import Resources, read_resources
from veerunbook.errorrate_security import (
    BreachEvent,
    breach_events,
    check_security,
    failed_logins_since,
)
from veerunbook.errorrate_tables import (
    change_rows,
    resource_rows,
    route_rows,
    security_rows,
)
from veerunbook.logs import ErrorGroup
from veerunbook.redact import mask_url
from veerunbook.security import SecuritySummary, summarise_security
from veerunbook.session import Session
from veerunbook.triage_tables import Nothing

if TYPE_CHECKING:
    import pandas as pd

# Events requested from the security audit endpoint, for failed-login counts.
AUDIT_LIMIT = 1000


@dataclass
class HighErrorRate:
    """State of one high-error-rate run, filled in step by step."""

    session: Session
    unreachable: str | None = None
    error_groups: list[ErrorGroup] = field(default_factory=list)
    logs_read: bool = False
    logs_truncated: bool = False
    series: list[metrics_series.Sample] = field(default_factory=list)
    window: metrics.ErrorRate | None = None
    lifetime: metrics.ErrorRate | None = None
    statuses: dict[str, float] = field(default_factory=dict)
    resources: Resources | None = None
    security: SecuritySummary | None = None
    failed_logins_minute: int | None = None
    failed_login_sources: int = 0
    breaches: list[BreachEvent] = field(default_factory=list)
    history: ChangeHistory | None = None
    start: ErrorStart | None = None
    alignment: DeployAlignment | None = None
    options: list[RecoveryOption] = field(default_factory=list)

    # Step 2: 5xx rate over the window.
    def sample_error_rate(
        self,
        window_seconds: float,
        samples: int,
        progress: Callable[[str], None] | None = print,
    ) -> pd.DataFrame | Nothing:
        """Scrape the metrics over the window and tabulate the 5xx rate per route."""
        fetch = metrics_series.session_fetch(self.session, record=False)
        self.series = metrics_series.sample_series(
            fetch, window_seconds=window_seconds, samples=samples, progress=progress
        )
        reason = metrics_series.unreachable_reason(self.series)
        if reason is not None:
            return self._record_unreachable(reason)
        check_scrapes(self.session.run, self.series)
        self.window = metrics_series.window_rate(self.series)
        if self.window is None:
            return Nothing("no error rate: fewer than two scrapes succeeded")
        last = self.series_scrapes()[-1]
        self.lifetime = metrics.error_rate(None, last)
        self.statuses = metrics_series.status_counts(self.series)
        check_error_rate(self.session.run, self.window)
        return route_rows(self.window)

    def _record_unreachable(self, reason: str) -> Nothing:
        url = self.session.redactor.mask(mask_url(self.session.target.base_url or ""))
        self.unreachable = metrics_series.unreachable_line(reason, url)
        self.session.run.check(
            "target reachability",
            "error",
            observed=0,
            unit="responses",
            expected="a response to the metrics scrape",
            evidence=[
                {"at": sample.at.isoformat(), "problem": sample.problem}
                for sample in self.series
            ],
            summary=self.unreachable,
        )
        return Nothing(self.unreachable)

    def _skip_unreachable(self, name: str) -> Nothing | None:
        """Record a skip for a step that needs the target, if it is unreachable."""
        if self.unreachable is None:
            return None
        self.session.run.check(name, "skip", summary=self.unreachable)
        return Nothing(self.unreachable)

    def error_rate_over_time(self) -> pd.DataFrame | Nothing:
        """Tabulate the user 5xx rate of each interval, in percent."""
        if self.unreachable is not None:
            return Nothing(self.unreachable)
        rates = metrics_series.error_rate_series(self.series)
        if rates.empty:
            return Nothing("no interval between two successful scrapes")
        table = rates.assign(**{"5xx (%)": (rates["rate"] * 100).round(2)})
        columns = ["end", "seconds", "requests", "5xx", "5xx (%)", "probe requests"]
        return table[[*columns, "probe 5xx", "partial"]]

    def series_scrapes(self) -> list[metrics.Scrape]:
        """Return the successful scrapes of the series, in time order."""
        return [sample.scrape for sample in self.series if sample.scrape is not None]

    # Step 3: error logs, grouped. Read after the window, so that they cover it.
    def read_error_logs(self, minutes: int = 60) -> pd.DataFrame | Nothing:
        """Read the error logs of the last ``minutes`` and group them by fingerprint."""
        if (skipped := self._skip_unreachable("error logs")) is not None:
            return skipped
        logs, table = read_error_logs(self.session, minutes)
        self.error_groups = logs.groups
        self.logs_read, self.logs_truncated = logs.read, logs.truncated
        return table

    # Step 4: resource usage.
    def resource_usage(self) -> pd.DataFrame | Nothing:
        """Read memory, pool, CPU and event loop lag from the scrapes."""
        if (skipped := self._skip_unreachable("resources")) is not None:
            return skipped
        scrapes = self.series_scrapes()
        if not scrapes:
            self.session.run.check("resources", "skip", summary="no metrics scrape")
            return Nothing("no resource figures: no metrics scrape succeeded")
        self.resources = read_resources(scrapes[0], scrapes[-1])
        check_resources(self.session.run, self.resources)
        return resource_rows(self.resources)

    # Step 5: breach signs, rate limiting and blocked addresses.
    def rate_limiting(self) -> pd.DataFrame | Nothing:
        """Read breach signs, the rate limiter, blocked IPs and failed logins."""
        if (skipped := self._skip_unreachable("security audit")) is not None:
            return skipped
        result = self.session.probe(
            "audit_security",
            name="security audit",
            expect="json",
            query=f"limit={AUDIT_LIMIT}",
        )
        if result.status != "pass":
            return Nothing(f"the security audit could not be read: {result.summary()}")
        now = datetime.now(UTC)
        self.security = summarise_security(result.json, now)
        self.breaches = breach_events(result.json)
        logins = failed_logins_since(result.json, now - timedelta(minutes=1))
        self.failed_logins_minute, self.failed_login_sources = logins
        check_security(self.session.run, self.security, self.breaches, logins)
        return security_rows(self.security, self.breaches, *logins)

    # Step 6: deployments against the start of the errors.
    def deployments(
        self, hours: float = 6.0, window_minutes: float = 60.0
    ) -> pd.DataFrame | Nothing:
        """List recent changes and find the last deployment before the errors."""
        if (skipped := self._skip_unreachable("recent changes")) is not None:
            return skipped
        self.history = read_changes(self.session, hours)
        self.start = error_start(
            self.error_groups, self.series, logs_truncated=self.logs_truncated
        )
        self.alignment = align_deploys(
            self.history.changes,
            self.start.at,
            window_minutes,
            history_read=self.history.deployments_read,
        )
        alignment = self.alignment
        status = "pass"
        if alignment.start is None or not alignment.history_read:
            status = "skip"
        elif alignment.within_window:
            status = "warn"
        caveat = self.start.caveat
        summary = alignment.reason + (f"; {caveat}" if caveat else "")
        self.session.run.check(
            "deployment before the errors",
            status,
            observed=alignment.minutes_before,
            unit="min",
            expected=f"no deployment within {window_minutes:g} min before the errors",
            evidence={**alignment.to_dict(), "start": self.start.to_dict()},
            summary=summary,
        )
        print(summary)
        return change_rows(self.history.changes, alignment, self.history.describe())

    # Step 7: the rate over time, with the deployments.
    def plot_error_rate(self) -> Any:
        """Plot the user 5xx rate over the window with the alert lines and deploys."""
        from veerunbook.errorrate_plots import plot_error_rate

        if self.unreachable is not None:
            print(f"nothing to plot: {self.unreachable}")
            return None
        done = [sample for sample in self.series if sample.scrape is not None]
        return plot_error_rate(
            metrics_series.error_rate_series(self.series),
            start=done[0].at if done else None,
            deployments=self.history.changes if self.history else [],
        )

    # Step 8: recovery options.
    def recovery_options(self) -> pd.DataFrame:
        """Rank the runbook's recovery actions by the evidence, performing none."""
        import pandas as pd

        self.options = rank_recovery(self.evidence())
        ranked = [option for option in self.options if option.rank is not None]
        if ranked:
            text = "recovery options ranked: " + ", ".join(
                f"{option.rank}. {option.action} ({option.score})" for option in ranked
            )
        elif self.unreachable is not None:
            text = f"no recovery option ranked: {self.unreachable}"
        elif self.window is None and not self.logs_read:
            text = "no recovery option ranked: the metrics and error logs are unread"
        else:
            text = "no recovery needed: no finding supports any recovery action"
        self.session.run.note(
            text, recovery_options=[option.to_dict() for option in self.options]
        )
        print(text)
        table = pd.DataFrame([option.to_row() for option in self.options])
        return table.astype({"rank": "Int64"})

    def evidence(self) -> Evidence:
        """Collect the findings of every step that ran into ranking evidence."""
        return collect_evidence(self)

    # Step 9: diagnosis and summary.
    def diagnose(self) -> str:
        """Return the diagnosis in one line and journal it."""
        text = diagnosis(self)
        self.session.run.note(f"diagnosis: {text}", diagnosis=text)
        return text

    def summary(self) -> pd.DataFrame:
        """Return every check of the run as a table, worst first."""
        checks = self.session.run.checks_frame()
        if checks.empty:
            return checks
        order = {"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}
        checks = checks.assign(_order=checks["status"].map(order))
        checks = checks.sort_values(["_order", "time"]).drop(columns="_order")
        return checks.reset_index(drop=True)
