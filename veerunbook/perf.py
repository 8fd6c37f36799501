"""The performance-degradation procedure's steps: measure, locate, rank the remedies.

Each method of ``Performance`` is one step of the runbook's response to slow
responses: API latency per route over a window, Core Web Vitals from the
performance audit endpoint (read after the window, so that a service that has just
started has traffic to report on), the database's share, then the runbook's
recovery actions ranked by what was observed. Each step journals its checks and
never raises for a dead, slow or lying target. It records what failed and leaves
its facts unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from veerunbook import metrics, perf_database
from veerunbook.metrics_series import Sample, sample_series, session_fetch
from veerunbook.perf_recovery import (
    Evidence,
    RecoveryOption,
    diagnose,
    options_frame,
    rank_options,
)
from veerunbook.perf_routes import (
    P1_ALERT,
    P2_ALERT,
    RouteLatency,
    alert_level,
    latency_rows,
    latency_timeline,
    route_latencies,
    to_ms,
)
from veerunbook.session import Session
from veerunbook.triage_signals import heap_fraction
from veerunbook.triage_tables import Nothing, frame
from veerunbook.webvitals import MISSING, Vital, read_vitals, sample_size

if TYPE_CHECKING:
    import pandas as pd

# The runbook's p95 alerts fire after 5 minutes (P1) and 15 minutes (P2) above.
ALERT_SECONDS = 300.0
_ALERT_STATUS = {P1_ALERT: "fail", P2_ALERT: "warn", "": "pass", "unknown": "skip"}
_P95_EXPECTED = "<= 2000 ms (P1 warning alert), <= 1500 ms (P2 information alert)"


@dataclass
class Performance:
    """State of one performance-degradation run, filled in step by step."""

    session: Session
    vitals: list[Vital] = field(default_factory=list)
    series: list[Sample] = field(default_factory=list)
    latency: metrics.LatencyReport | None = None
    routes: list[RouteLatency] = field(default_factory=list)
    timeline: pd.DataFrame | None = None
    database: perf_database.DatabaseFacts = field(
        default_factory=perf_database.DatabaseFacts
    )
    options: list[RecoveryOption] = field(default_factory=list)

    # Step 2: API response times.
    def api_latency(
        self,
        window_seconds: float,
        samples: int = 6,
        progress: Callable[[str], None] | None = print,
    ) -> pd.DataFrame | Nothing:
        """Scrape metrics over the window and tabulate p50/p95/p99 per route."""
        self.series = sample_series(
            session_fetch(self.session),
            window_seconds=window_seconds,
            samples=samples,
            progress=progress,
        )
        done = [sample for sample in self.series if sample.scrape is not None]
        if len(done) < 2:
            return self._no_window(done)
        first, last = done[0].scrape, done[-1].scrape
        assert first is not None and last is not None
        self.latency = metrics.latency_quantiles(
            first, last, quantiles=(0.5, 0.95, 0.99)
        )
        self.routes = route_latencies(self.latency)
        self.timeline = latency_timeline(self.series)
        self._check_user_p95(self.latency)
        self._check_slowest_route()
        return frame(latency_rows(self.routes), "no request was timed in the window")

    def _no_window(self, done: list[Sample]) -> Nothing:
        problems = [sample.problem for sample in self.series if sample.problem]
        reason = problems[0] if problems else "no scrape succeeded"
        self.session.run.check(
            "user API p95",
            "skip",
            summary=f"{len(done)} of {len(self.series)} scrapes succeeded, so there"
            f" is no window: {reason}",
        )
        return Nothing(f"no latency window: {reason}")

    def _check_user_p95(self, report: metrics.LatencyReport) -> None:
        aggregate = report.aggregate
        p95 = aggregate.quantile(0.95) if aggregate and aggregate.count else None
        level = alert_level(p95)
        self.session.run.check(
            "user API p95",
            _ALERT_STATUS[level],
            observed=to_ms(p95),
            unit="ms",
            expected=_P95_EXPECTED,
            evidence={
                "requests": aggregate.count if aggregate else 0,
                "window_seconds": report.window_seconds,
                "notes": report.notes,
            },
            summary=_p95_summary("all user routes", p95, level, report),
        )

    def _check_slowest_route(self) -> None:
        users = [route for route in self.routes if not route.probe]
        if not users:
            self.session.run.check(
                "slowest route p95", "skip", summary="no user request in the window"
            )
            return
        slowest = users[0]
        above = [route.route for route in users if route.alert not in ("", "unknown")]
        self.session.run.check(
            "slowest route p95",
            _ALERT_STATUS[slowest.alert],
            observed=slowest.p95_ms,
            unit="ms",
            expected=_P95_EXPECTED,
            evidence={"route": slowest.to_dict(), "routes_above_1500_ms": above},
            summary=f"{slowest.route}: p95 {_shown(slowest.p95_ms, slowest.at_least)};"
            f" {len(above)} of {len(users)} user routes above 1500 ms",
        )

    def latency_plot(self) -> Any:
        """Draw user p50/p95/p99 per interval, or return None if there are none."""
        from veerunbook.perf_plots import plot_latency_timeline

        if self.timeline is None:
            print("no latency window: nothing to plot")
            return None
        return plot_latency_timeline(self.timeline)

    # Step 3: Core Web Vitals, read after the window of step 2.
    def web_vitals(self) -> pd.DataFrame | Nothing:
        """Read the performance audit endpoint and grade each web vital."""
        result = self.session.probe(
            "audit_performance", name="performance audit", expect="json"
        )
        if result.status not in ("pass", "warn"):
            return Nothing(f"no web vitals: {result.summary()}")
        measured = sample_size(result.json)
        vitals = read_vitals(result.json)
        if all(vital.rating == MISSING for vital in vitals):
            self.session.run.check(
                "web vitals",
                "warn",
                expected=", ".join(vital.limit.name for vital in vitals),
                evidence=result.excerpt,
                summary="the performance audit response contains no web vital",
            )
            return Nothing(f"no web vitals in the response: {result.excerpt}")
        for vital in vitals:
            self._check_vital(vital, measured)
        # Figures that rest on no measurement are a model's, so they are not graded.
        self.vitals = vitals if measured != 0 else []
        return frame([vital.to_row() for vital in vitals])

    def _check_vital(self, vital: Vital, measured: float | None) -> None:
        limit = vital.limit
        unit = f" {limit.unit}" if limit.unit else ""
        status = vital.check_status
        if vital.value is None:
            summary = (
                f"{limit.name} is not in the response"
                if vital.problem is None
                else f"{limit.name} in {vital.key!r} is invalid: {vital.problem}"
            )
        else:
            summary = f"{limit.name} {vital.value:g}{unit}: {vital.rating}"
        if measured == 0 and vital.value is not None:
            status = "skip"
            summary += ", but the audit's sample size is 0, so it is not graded"
        self.session.run.check(
            f"web vital {limit.name}",
            status,
            observed=vital.value,
            unit=limit.unit or None,
            expected=f"<= {limit.good:g}{unit} good, > {limit.poor:g}{unit} poor",
            evidence={
                "field": vital.key,
                "rating": vital.rating,
                "sample_size": measured,
            },
            summary=summary,
        )

    # Step 4: database performance.
    def database_performance(self) -> pd.DataFrame | Nothing:
        """Check pool utilisation from the metrics and the database query latency."""
        last = self.last_scrape()
        user_p50 = self.user_quantile_ms(0.5)
        self.database = perf_database.observe(self.session, last, user_p50)
        return frame(self.database.rows, "no database figures could be read")

    def slow_queries(self, limit: int = 10) -> pd.DataFrame | Nothing:
        """List slow statements from PostgreSQL, or return why there are none."""
        user_p50 = self.user_quantile_ms(0.5)
        return perf_database.slow_queries(self.session, self.database, limit, user_p50)

    # Step 5: recovery options.
    def recovery_options(self) -> pd.DataFrame:
        """Rank the runbook's recovery actions by evidence and journal them."""
        self.options = rank_options(self.evidence())
        self.session.run.note(
            "recovery options ranked by evidence; none was performed",
            recovery_options=[option.to_dict() for option in self.options],
        )
        return options_frame(self.options)

    def evidence(self) -> Evidence:
        """Collect the observations that the recovery ranking reads."""
        last = self.last_scrape()
        facts = self.database
        return Evidence(
            routes=self.routes,
            user_p50_ms=self.user_quantile_ms(0.5),
            user_p95_ms=self.user_quantile_ms(0.95),
            vitals=self.vitals,
            pool=facts.pool,
            heap_fraction=heap_fraction(last) if last is not None else None,
            database_latency_ms=facts.query_latency_ms,
            slow_statements=facts.slow_statements,
            long_queries=facts.long_queries,
        )

    # Step 6: diagnosis and summary.
    def diagnosis(self) -> str:
        """Journal and return one line: the slowdown found, or why none was measured."""
        line = diagnose(self.evidence(), self.options)
        self.session.run.note(line, diagnosis=line)
        return line

    def summary(self) -> pd.DataFrame:
        """Return every check of the run as a table, worst first."""
        table = self.session.run.checks_frame()
        if table.empty:
            return table
        order = {"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}
        table = table.assign(_order=table["status"].map(order))
        table = table.sort_values(["_order", "time"]).drop(columns="_order")
        return table.reset_index(drop=True)

    def last_scrape(self) -> metrics.Scrape | None:
        """Return the last successful scrape of the window, if any."""
        done = [sample.scrape for sample in self.series if sample.scrape is not None]
        return done[-1] if done else None

    def user_quantile_ms(self, q: float) -> float | None:
        """Return quantile ``q`` of all user requests in the window, in ms."""
        aggregate = self.latency.aggregate if self.latency else None
        if aggregate is None or not aggregate.count:
            return None
        return to_ms(aggregate.quantile(q))


def _p95_summary(
    scope: str,
    p95: metrics.Quantile | None,
    level: str,
    report: metrics.LatencyReport,
) -> str:
    if p95 is None or p95.value is None:
        return f"{scope}: no p95 (no timed request in the window)"
    prefix = "at least " if p95.lower_bound else ""
    text = f"{scope}: p95 {prefix}{p95.value * 1000:.0f} ms"
    if level in (P1_ALERT, P2_ALERT):
        text += f", above the {level}"
    seconds = report.window_seconds
    if seconds is not None and seconds < ALERT_SECONDS:
        text += (
            f". The window is {seconds:.0f} s, shorter than the alert's 5 min, so the"
            " duration condition is not confirmed"
        )
    return text


def _shown(value: float | None, at_least: tuple[str, ...]) -> str:
    if value is None:
        return "unknown"
    prefix = "at least " if "p95" in at_least else ""
    return f"{prefix}{value:.0f} ms"
