"""The application-rollback procedure's steps: measure, choose, roll back, watch.

Each method of ``ApplicationRollback`` is one step of the runbook's application
rollback. The steps before the rollback only read the target: a baseline of the
5xx rate and p95, the error logs and the deployment history, from which the version
to roll back to is chosen. The rollback itself is a guarded action
(``veerunbook.actions.perform``), so it runs only in a confirmed run. The watch
after it runs only when the rollback was executed, and otherwise the baseline is
shown instead. No step raises for a dead, slow or lying target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from veerunbook import metrics
from veerunbook.actions import ActionResult, Guard, actions_frame, perform
from veerunbook.approllback_action import rollback_action
from veerunbook.approllback_choice import (
    Choice,
    choose_version,
    describe_start,
    record_choice,
)
from veerunbook.approllback_versions import VersionHistory, read_history
from veerunbook.approllback_watch import (
    HELD,
    HOLD_SECONDS,
    Figures,
    SampleReporter,
    check_watch,
    figures,
    skip_watch,
    suffixed,
    timeline,
    verdict,
)
from veerunbook.errorrate_checks import check_error_rate, check_scrapes
from veerunbook.errorrate_evidence import ErrorStart, error_start
from veerunbook.errorrate_logs import ErrorLogs, read_error_logs
from veerunbook.metrics_series import (
    Sample,
    sample_series,
    session_fetch,
    unreachable_line,
    unreachable_reason,
    window_rate,
)
from veerunbook.perf_checks import check_user_p95
from veerunbook.redact import mask_url
from veerunbook.session import Session
from veerunbook.text import clipped
from veerunbook.triage_tables import Nothing, frame, probe_row

if TYPE_CHECKING:
    import pandas as pd


# Scrapes after the first in the baseline: three intervals show whether the rate is
# steady or changing.
BASELINE_SAMPLES = 3
BASELINE_SUFFIX = "before the rollback"


@dataclass
class ApplicationRollback:
    """State of one application-rollback run, filled in step by step."""

    session: Session
    guard: Guard
    unreachable: str | None = None
    baseline_series: list[Sample] = field(default_factory=list)
    baseline: Figures | None = None
    logs: ErrorLogs = field(default_factory=ErrorLogs)
    start: ErrorStart | None = None
    history: VersionHistory = field(default_factory=VersionHistory)
    choice: Choice | None = None
    result: ActionResult | None = None
    rolled_back_at: datetime | None = None
    healthy: bool = False
    monitor_minutes: float | None = None
    watch_series: list[Sample] = field(default_factory=list)
    watched: Figures | None = None
    verdict: str | None = None

    @classmethod
    def begin(cls, session: Session, confirm: str) -> ApplicationRollback:
        """Build the guard from ``confirm`` and show whether this is a dry-run."""
        guard = Guard.for_session(session, confirm)
        print(guard.banner())
        return cls(session, guard)

    # Step 2: the baseline, before any change.
    def sample_baseline(self, window_seconds: float) -> pd.DataFrame | Nothing:
        """Sample the user 5xx rate and p95 over ``window_seconds``."""
        fetch = session_fetch(self.session, record=False)
        series = sample_series(
            fetch,
            window_seconds=window_seconds,
            samples=BASELINE_SAMPLES,
            progress=print,
        )
        self.baseline_series = series
        reason = unreachable_reason(series)
        if reason is not None:
            return self._record_unreachable(reason)
        check_scrapes(self.session.run, series)
        window = window_rate(series)
        done = [sample.scrape for sample in series if sample.scrape is not None]
        if window is None or len(done) < 2:
            return Nothing("no baseline: fewer than two metrics scrapes succeeded")
        before = suffixed(self.session.run, BASELINE_SUFFIX)
        check_error_rate(before, window)
        report = metrics.latency_quantiles(done[0], done[-1], quantiles=(0.95,))
        check_user_p95(before, report, done[0], done[-1])
        self.baseline = figures(series)
        if self.baseline is not None:
            print(f"baseline: {self.baseline.text()}")
        return timeline(series)

    def _record_unreachable(self, reason: str) -> Nothing:
        url = self.session.redactor.mask(mask_url(self.session.target.base_url or ""))
        self.unreachable = unreachable_line(reason, url)
        self.session.run.check(
            "target reachability",
            "error",
            observed=0,
            unit="responses",
            expected="a response to the metrics scrape",
            summary=self.unreachable,
        )
        return Nothing(self.unreachable)

    # Step 3: when the errors started.
    def read_error_logs(self, minutes: int) -> pd.DataFrame | Nothing:
        """Group the error logs of the last ``minutes``; find when the errors began."""
        if self.unreachable is not None:
            self.session.run.check("error logs", "skip", summary=self.unreachable)
            return Nothing(self.unreachable)
        self.logs, table = read_error_logs(self.session, minutes)
        self.start = error_start(
            self.logs.groups, self.baseline_series, logs_truncated=self.logs.truncated
        )
        print(f"errors started: {self.start_evidence() or 'no start found'}")
        return table

    def start_evidence(self) -> str:
        """Say when the errors started and from which source, or "" when unknown."""
        return describe_start(self.start, self.logs.groups)

    # Step 4: the versions the target ran.
    def list_versions(self) -> pd.DataFrame | Nothing:
        """List the deployment history and, with an ``app_repo``, the git log."""
        if self.unreachable is not None:
            self.history.problem = "the target did not respond"
            self.session.run.check(
                "deployment history", "skip", summary=self.unreachable
            )
            return Nothing(self.unreachable)
        self.history = read_history(self.session)
        for sha, subject in self.history.commits:
            print(f"commit {sha} {subject}")
        if not self.history.read:
            return Nothing(f"no deployment history: {self.history.problem}")
        rows = [
            {**item.to_row(), "running": item.version == self.history.current}
            for item in self.history.deployments
        ]
        return frame(rows, "the deployment history is empty")

    # Step 5: the version to roll back to.
    def choose(self, version: str, window_minutes: float) -> pd.DataFrame:
        """Choose the version by evidence, or check the one given; journal it."""
        if self.unreachable is not None:
            reason = "no version chosen: the target did not respond"
            self.choice = Choice(None, "", reason, "skip")
        else:
            self.choice = choose_version(
                self.history,
                self.start.at if self.start else None,
                version,
                window_minutes,
                start_evidence=self.start_evidence(),
            )
        print(f"version: {self.choice.version or 'none'}; {self.choice.reason}")
        return record_choice(self.session.run, self.choice, self.history.current)

    # Step 6: the rollback, a guarded action.
    def roll_back(self, timeout_seconds: float) -> pd.DataFrame:
        """Roll back to the chosen version if confirmed, else report what would run."""
        choice = self.choice or Choice(None, "", "no version was chosen", "skip")
        action = rollback_action(self.session, choice, timeout_seconds)
        self.result = perform(self.session, self.guard, action)
        print(f"{self.result.mode}: {self.result.detail}")
        if self.result.mode == "executed":
            self.rolled_back_at = datetime.now(UTC)
            before = (self.result.before or {}).get("version", "the previous version")
            undo = (
                "to undo: deploy the fixed release, or run application-rollback"
                f" with -p version {before}"
            )
            print(undo)
            self.session.run.note(undo, undo=undo)
        return actions_frame([self.result])

    # Step 7: health and readiness.
    def verify_health(self) -> pd.DataFrame | Nothing:
        """Probe /health and /readyz, and after a rollback the version reported."""
        if self.unreachable is not None:
            self.session.run.check("health", "skip", summary=self.unreachable)
            return Nothing(self.unreachable)
        health = self.session.probe("health")
        readiness = self.session.probe("readyz")
        self.healthy = health.status == "pass" and readiness.status == "pass"
        mode = self.result.mode if self.result else None
        body = health.json
        reported = body.get("version") if isinstance(body, dict) else None
        if reported is not None:
            reported = clipped(str(reported))
        if mode in ("executed", "already-done") and self.choice and self.choice.version:
            version = self.choice.version
            self.healthy = self.healthy and reported == version
            self.session.run.check(
                "running version",
                "pass" if reported == version else "fail",
                observed=reported,
                expected=version,
                summary=f"/health reports version {reported}, expected {version}",
            )
        else:
            print(f"/health reports version {reported}; the rollback ended {mode}")
        return frame([probe_row(health), probe_row(readiness)])

    # Step 8: the watch after the rollback.
    def monitor(
        self, minutes: float, interval_seconds: float
    ) -> pd.DataFrame | Nothing:
        """Watch the 5xx rate and p95 after an executed rollback, one line a sample."""
        self.monitor_minutes = minutes
        mode = self.result.mode if self.result else "not run"
        if mode != "executed":
            reason = f"no watch: the rollback was not carried out ({mode})"
            baseline = self.baseline.text() if self.baseline else "no baseline"
            skip_watch(self.session.run, reason)
            if mode == "dry-run":
                reason += (
                    f"; a confirmed run watches for {minutes:g} min"
                    " (monitor_minutes) after the rollback"
                )
            return Nothing(f"{reason}. The baseline before it: {baseline}")
        samples = max(1, round(minutes * 60 / interval_seconds))
        fetch = SampleReporter(
            session_fetch(self.session, record=False), samples + 1, print
        )
        self.watch_series = sample_series(
            fetch, window_seconds=minutes * 60, samples=samples, progress=None
        )
        self.watched = figures(self.watch_series, HOLD_SECONDS)
        self.verdict, reason = verdict(self.watched)
        check_watch(self.session.run, self.watched)
        self.session.run.note(f"watch: {self.verdict}: {reason}", watch=self.verdict)
        print(f"watch: {self.verdict}: {reason}")
        return timeline(self.watch_series)

    def plot(self) -> Any:
        """Plot the baseline and the watch on one time axis, or the baseline alone."""
        from veerunbook.approllback_plot import plot_watch

        if self.unreachable is not None:
            print(f"nothing to plot: {self.unreachable}")
            return None
        baseline = timeline(self.baseline_series)
        if self.watch_series:
            version = self.choice.version if self.choice else "?"
            title = f"before and after the rollback to {version}"
            watch = timeline(self.watch_series)
            return plot_watch(baseline, title, self.rolled_back_at, watch)
        title = "baseline before any change (the watch did not run)"
        return plot_watch(baseline, title)

    # Step 9: options, diagnosis and summary.
    def recovery_options(self) -> pd.DataFrame:
        """Journal the runbook's next actions, ranked by the evidence."""
        from veerunbook.approllback_report import recovery_options

        return recovery_options(self)

    def diagnose(self) -> str:
        """Return the diagnosis in one line and journal it."""
        from veerunbook.approllback_report import diagnosis

        text = diagnosis(self)
        self.session.run.note(f"diagnosis: {text}", diagnosis=text)
        return text

    def end_status(self) -> str | None:
        """Return "ok" when the incident is fixed, else None for the run's verdict.

        Fixed means: the rollback was executed and verified, /health and /readyz
        pass with the chosen version, and the watch held. The failed checks of the
        baseline then describe the incident, not the end state.
        """
        result = self.result
        if result is None or result.mode != "executed":
            return None
        verified = result.verification is not None and result.verification.ok
        if verified and self.healthy and self.verdict == HELD:
            return "ok"
        return None

    def summary(self) -> pd.DataFrame:
        """Return every check of the run as a table, worst first."""
        from veerunbook.approllback_report import checks_table

        return checks_table(self.session.run)
