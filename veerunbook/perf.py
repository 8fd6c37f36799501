"""The performance-degradation procedure's steps: measure, locate, rank the remedies.

Each method of ``Performance`` is one step of the runbook's response to slow
responses: API latency per route over a window, Core Web Vitals from the
performance audit endpoint (read after the window, so that a service that has just
started has traffic to report on), the database's share, then the runbook's
recovery actions ranked by what was observed. Each step journals its checks and
never raises for a dead, slow or lying target. It records what failed and leaves
its facts unknown. When no request to the target gets a response, one ``target``
check says so and the later steps that need the target skip for that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from veerunbook import metrics, perf_database
from veerunbook.metrics_sampling import check_scrape_count
from veerunbook.metrics_series import (
    Sample,
    sample_series,
    session_fetch,
    unreachable_line,
    unreachable_reason,
)
from veerunbook.perf_checks import (
    check_slowest_route,
    check_user_p95,
    check_vital,
)
from veerunbook.perf_recovery import (
    Evidence,
    RecoveryOption,
    diagnose,
    options_frame,
    rank_options,
)
from veerunbook.perf_routes import (
    RouteLatency,
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

_STATUS_ORDER = {"fail": 0, "error": 1, "warn": 2, "skip": 3, "pass": 4}


@dataclass
class Performance:
    """State of one performance-degradation run, filled in step by step.

    ``unreachable`` is why no request to the target got a response ("connection
    refused"), else None, and ``base_url`` is the masked URL that was tried.
    """

    session: Session
    unreachable: str | None = None
    base_url: str = ""
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
        """Scrape metrics over the window and tabulate p50/p95/p99 per route.

        When neither the first scrape nor its one retry gets a response, the
        target is unreachable, so sampling stops there and one ``target`` error is
        journaled.
        """
        fetch = session_fetch(self.session, record=False)
        self.series = sample_series(
            fetch, window_seconds=window_seconds, samples=samples, progress=progress
        )
        reason = unreachable_reason(self.series)
        if reason is not None:
            return self._target_unreachable(reason)
        check_scrape_count(self.session.run, self.series)
        done = [sample.scrape for sample in self.series if sample.scrape is not None]
        if len(done) < 2:
            return self._no_window(len(done))
        first, last = done[0], done[-1]
        self.latency = metrics.latency_quantiles(
            first, last, quantiles=(0.5, 0.95, 0.99)
        )
        self.routes = route_latencies(self.latency)
        self.timeline = latency_timeline(self.series)
        check_user_p95(self.session.run, self.latency, first, last)
        check_slowest_route(self.session.run, self.routes)
        return frame(latency_rows(self.routes), "no request was timed in the window")

    def _target_unreachable(self, reason: str) -> Nothing:
        self.unreachable = reason
        self.base_url = self.session.redactor.mask(self.session.target.base_url or "-")
        self.session.run.check(
            "target",
            "error",
            observed=reason,
            evidence={"metrics scrapes": [sample.problem for sample in self.series]},
            summary=unreachable_line(reason, self.base_url),
        )
        for name in ("user API p95", "slowest route p95"):
            self.session.run.check(name, "skip", summary=self.skip_reason())
        return Nothing(self.skip_reason())

    def _no_window(self, done: int) -> Nothing:
        problems = [sample.problem for sample in self.series if sample.problem]
        reason = problems[0] if problems else "no scrape succeeded"
        self.session.run.check(
            "user API p95",
            "skip",
            summary=f"{done} of {len(self.series)} scrapes succeeded, so there"
            f" is no window: {reason}",
        )
        return Nothing(f"no latency window: {reason}")

    def skip_reason(self) -> str:
        """Return the skip reason of the steps that need the unreachable target."""
        return f"target unreachable: {self.unreachable} at {self.base_url}"

    def latency_plot(self) -> Any:
        """Draw user p50/p95/p99 per interval, or return None if there are none."""
        from veerunbook.perf_plots import plot_latency_timeline

        if self.unreachable is not None:
            print(f"{self.skip_reason()}: nothing to plot")
            return None
        if self.timeline is None:
            print("no latency window: nothing to plot")
            return None
        return plot_latency_timeline(self.timeline)

    # Step 3: Core Web Vitals, read after the window of step 2.
    def web_vitals(self) -> pd.DataFrame | Nothing:
        """Read the performance audit endpoint and grade each web vital."""
        if self.unreachable is not None:
            self.session.run.check(
                "performance audit", "skip", summary=self.skip_reason()
            )
            return Nothing(self.skip_reason())
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
            check_vital(self.session.run, vital, measured)
        # Figures that rest on no measurement are a model's, so they are not graded.
        self.vitals = vitals if measured != 0 else []
        return frame([vital.to_row() for vital in vitals])

    # Step 4: database performance.
    def database_performance(self) -> pd.DataFrame | Nothing:
        """Check pool utilisation from the metrics and the database query latency."""
        unreachable = self.skip_reason() if self.unreachable is not None else None
        self.database = perf_database.observe(
            self.session, self.last_scrape(), self.user_quantile_ms(0.5), unreachable
        )
        if unreachable is not None:
            return Nothing(unreachable)
        return frame(self.database.rows, "no database figures could be read")

    def slow_queries(self, limit: int = 10) -> pd.DataFrame | Nothing:
        """List slow statements from PostgreSQL, or return why there are none."""
        user_p50 = self.user_quantile_ms(0.5)
        return perf_database.slow_queries(self.session, self.database, limit, user_p50)

    # Step 5: recovery options.
    def recovery_options(self) -> pd.DataFrame:
        """Rank the runbook's recovery actions by evidence and journal them."""
        self.options = rank_options(self.evidence())
        ranked = sum(option.rank is not None for option in self.options)
        self.session.run.note(
            f"recovery options: {ranked} of {len(self.options)} ranked by evidence;"
            " none was carried out",
            recovery_options=[option.to_dict() for option in self.options],
        )
        return options_frame(self.options)

    def evidence(self) -> Evidence:
        """Collect the observations that the recovery ranking reads."""
        last = self.last_scrape()
        facts = self.database
        unreachable = None
        if self.unreachable is not None:
            unreachable = unreachable_line(self.unreachable, self.base_url)
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
            unreachable=unreachable,
        )

    # Step 6: diagnosis and summary.
    def diagnosis(self) -> str:
        """Journal and return one line: the slowdown found, or why none was measured."""
        line = diagnose(self.evidence(), self.options)
        self.session.run.note(f"diagnosis: {line}", diagnosis=line)
        return line

    def summary(self) -> pd.DataFrame:
        """Return every check of the run as a table, worst first."""
        table = self.session.run.checks_frame()
        if table.empty:
            return table
        table = table.assign(_order=table["status"].map(_STATUS_ORDER))
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
