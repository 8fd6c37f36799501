"""The high-error-rate procedure's steps: logs, rates, resources, limits, deploys.

Each method of ``HighErrorRate`` is one step of the runbook's response to a 5xx rate
above 5 %. It journals what it checked and keeps the facts that ``recovery_options``
ranks the runbook's recovery actions by. A step that cannot reach its endpoint
records an ``error`` check and leaves its facts unknown. It never stops the
procedure, and nothing here changes the target.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from veerunbook import metrics, metrics_series
from veerunbook.changes import Change, recent_changes
from veerunbook.errorrate_checks import (
    check_error_rate,
    check_resources,
    check_scrapes,
    check_security,
    diagnosis,
)
from veerunbook.errorrate_evidence import (
    DeployAlignment,
    ErrorStart,
    align_deploys,
    error_kind,
    error_start,
    error_type,
    failed_logins_since,
    new_signatures,
    release_in_stack,
)
from veerunbook.errorrate_recovery import Evidence, RecoveryOption, rank_recovery
from veerunbook.errorrate_resources import Resources, read_resources
from veerunbook.errorrate_tables import (
    change_rows,
    group_rows,
    resource_rows,
    route_rows,
    security_rows,
)
from veerunbook.logs import ErrorGroup, group_errors, normalise_entries, parse_log_text
from veerunbook.security import SecuritySummary, summarise_security
from veerunbook.session import Session
from veerunbook.triage_tables import Nothing

if TYPE_CHECKING:
    import pandas as pd

# Entries requested from the log endpoint. The demo serves at most 1000 per request.
LOG_LIMIT = 1000
# Events requested from the security audit endpoint, for failed-login counts.
AUDIT_LIMIT = 1000


@dataclass
class HighErrorRate:
    """State of one high-error-rate run, filled in step by step."""

    session: Session
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
    changes: list[Change] | None = None
    start: ErrorStart | None = None
    alignment: DeployAlignment | None = None
    options: list[RecoveryOption] = field(default_factory=list)

    # Step 3: error logs, grouped. Read after the window, so that they cover it.
    def read_error_logs(self, minutes: int = 60) -> pd.DataFrame | Nothing:
        """Read the error logs of the last ``minutes`` and group them by fingerprint."""
        query = f"level=error&last={minutes}m&limit={LOG_LIMIT}"
        result = self.session.probe(
            "logs", name="error logs", expect="text", query=query
        )
        if result.status not in ("pass", "warn"):
            return Nothing(f"error logs could not be read: {result.summary()}")
        entries = _entries_of(result.json)
        if isinstance(entries, list):
            records = normalise_entries(entries)
            self.logs_truncated = len(entries) >= _limit_of(result.json)
        else:
            records = parse_log_text(result.text, source="error logs").records
        self.logs_read = True
        self.error_groups = group_errors(records)
        total = sum(group.count for group in self.error_groups)
        cut = " (the endpoint's limit was reached, so older entries may be missing)"
        self.session.run.check(
            "error log entries",
            "warn" if total else "pass",
            observed=total,
            unit="entries",
            expected=f"none in the last {minutes} min",
            evidence=[group.to_dict() for group in self.error_groups[:10]],
            summary=f"{total} errors in {len(self.error_groups)} groups"
            + (cut if self.logs_truncated else ""),
        )
        return group_rows(self.error_groups)

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
        check_scrapes(self.session.run, self.series)
        self.window = metrics_series.window_rate(self.series)
        if self.window is None:
            return Nothing("no error rate: fewer than two scrapes succeeded")
        last = self.series_scrapes()[-1]
        self.lifetime = metrics.error_rate(None, last)
        self.statuses = metrics_series.status_counts(self.series)
        check_error_rate(self.session.run, self.window)
        return route_rows(self.window)

    def error_rate_over_time(self) -> pd.DataFrame | Nothing:
        """Tabulate the user 5xx rate of each interval, in percent."""
        rates = metrics_series.error_rate_series(self.series)
        if rates.empty:
            return Nothing("no interval between two successful scrapes")
        table = rates.assign(**{"5xx %": (rates["rate"] * 100).round(2)})
        columns = ["end", "seconds", "requests", "5xx", "5xx %", "probe requests"]
        return table[[*columns, "probe 5xx", "partial"]]

    def plot_error_rate(self) -> Any:
        """Plot the user 5xx rate over the window with the P0 and P1 alert lines."""
        from veerunbook.errorrate_plots import plot_error_rate

        return plot_error_rate(metrics_series.error_rate_series(self.series))

    def series_scrapes(self) -> list[metrics.Scrape]:
        """Return the successful scrapes of the series, in time order."""
        return [sample.scrape for sample in self.series if sample.scrape is not None]

    # Step 4: resource usage.
    def resource_usage(self) -> pd.DataFrame | Nothing:
        """Read memory, pool, CPU and event loop lag from the scrapes."""
        scrapes = self.series_scrapes()
        if not scrapes:
            self.session.run.check("resources", "skip", summary="no metrics scrape")
            return Nothing("no resource figures: no metrics scrape succeeded")
        self.resources = read_resources(scrapes[0], scrapes[-1])
        check_resources(self.session.run, self.resources)
        return resource_rows(self.resources)

    # Step 5: rate limiting and blocked addresses.
    def rate_limiting(self) -> pd.DataFrame | Nothing:
        """Read the rate limiter, blocked IPs and failed logins from the audit."""
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
        self.failed_logins_minute, self.failed_login_sources = failed_logins_since(
            result.json, now - timedelta(minutes=1)
        )
        check_security(self.session.run, self.security, self.failed_logins_minute)
        return security_rows(
            self.security, self.failed_logins_minute, self.failed_login_sources
        )

    # Step 6: deployments against the start of the errors.
    def deployments(
        self, hours: float = 6.0, window_minutes: float = 60.0
    ) -> pd.DataFrame | Nothing:
        """List recent changes and find the last deployment before the errors."""
        self.changes = recent_changes(self.session, hours)
        self.start = error_start(
            self.error_groups, self.series, logs_truncated=self.logs_truncated
        )
        self.alignment = align_deploys(self.changes, self.start.at, window_minutes)
        alignment = self.alignment
        status = "skip" if alignment.start is None else "pass"
        if alignment.within_window:
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
        return change_rows(self.changes, alignment)

    # Step 7: recovery options.
    def recovery_options(self) -> pd.DataFrame:
        """Rank the runbook's recovery actions by the evidence, performing none."""
        import pandas as pd

        self.options = rank_recovery(self.evidence())
        ranked = [option for option in self.options if option.rank is not None]
        if ranked:
            text = "recovery options ranked: " + ", ".join(
                f"{option.rank}. {option.action} ({option.score})" for option in ranked
            )
        elif self.window is None and not self.logs_read:
            text = "no recovery option ranked: the metrics and error logs are unread"
        else:
            text = "no recovery needed: no finding supports any recovery action"
        self.session.run.note(
            text, options=[option.to_dict() for option in self.options]
        )
        print(text)
        table = pd.DataFrame([option.to_row() for option in self.options])
        return table.astype({"rank": "Int64"})

    def evidence(self) -> Evidence:
        """Collect the findings of every step that ran into ranking evidence."""
        kinds: Counter[str] = Counter()
        types: Counter[str] = Counter()
        for group in self.error_groups:
            kind = error_kind(group)
            kinds[kind] += group.count
            if kind == "code":
                types[error_type(group) or "Error"] += group.count
        alignment = self.alignment or align_deploys([], None, 0.0)
        window, lifetime = self.window, self.lifetime
        return Evidence(
            error_rate=window.rate if window else None,
            requests_per_second=_per_second(window),
            baseline_per_second=_per_second(lifetime),
            statuses=dict(self.statuses),
            error_kinds=dict(kinds),
            code_error_types=[name for name, _ in types.most_common()],
            new_signatures=new_signatures(self.error_groups, alignment),
            release_in_stack=release_in_stack(self.error_groups, alignment),
            deploy=self.alignment,
            resources=self.resources,
            security=self.security,
            failed_logins_minute=self.failed_logins_minute,
            failed_login_sources=self.failed_login_sources,
        )

    # Step 8: diagnosis and summary.
    def diagnose(self) -> str:
        """Return the diagnosis in one line and journal it."""
        text = diagnosis(self)
        self.session.run.note(f"diagnosis: {text}")
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


def _entries_of(body: Any) -> Any:
    """Return the entry list of a log endpoint's body (a list, or under a key)."""
    if isinstance(body, dict):
        for key in ("logs", "entries", "items", "data"):
            if isinstance(body.get(key), list):
                return body[key]
    return body


def _limit_of(body: Any) -> int:
    """Return the entry limit the log endpoint applied, or the one requested."""
    limit = body.get("limit") if isinstance(body, dict) else None
    return limit if isinstance(limit, int) and limit > 0 else LOG_LIMIT


def _per_second(rate: metrics.ErrorRate | None) -> float | None:
    if rate is None or not rate.window_seconds:
        return None
    return rate.requests / rate.window_seconds
