"""One unattended evaluation of the runbook's alert rules against a target.

``check_alerts`` is what a scheduler (cron, a systemd timer) runs once per interval:
take the target's check lock, scrape its metrics once, compute the alert signals
against the previous stored scrape, store the sample, evaluate every rule over the
stored samples with Prometheus ``for`` semantics, and journal each alert's firing and
resolved transitions exactly once by comparing with the rule states stored last time.
A dead, slow or lying target is a scrape error: every signal is stored as None, which
counts as a failed evaluation, so a firing alert resolves as in Prometheus.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from veerunbook.alert_check_lock import check_lock
from veerunbook.alert_check_result import (
    AlertTransition,
    CheckResult,
    RuleStatus,
    journal_result,
    journal_skipped,
    journal_source_error,
)
from veerunbook.alert_check_scrape import Measurement, measure_signals
from veerunbook.alert_eval import AlertState, SignalSample, evaluate
from veerunbook.alert_rules import ALERT_RULES, AlertRule, Signal
from veerunbook.alert_store import (
    DEFAULT_RETENTION_SECONDS,
    RuleState,
    SampleStore,
    StoredScrape,
    store_path,
)
from veerunbook.errors import PrometheusQueryError

__all__ = [
    "AlertTransition",
    "CheckResult",
    "RuleStatus",
    "SampleSource",
    "check_alerts",
]

if TYPE_CHECKING:
    from veerunbook.config import Target
    from veerunbook.record import RunContext
    from veerunbook.redact import Redactor


class SampleSource(Protocol):
    """Stored signal samples, such as ``SampleStore`` or a Prometheus server."""

    def read(self, signal: Signal, start: float, end: float) -> list[SignalSample]: ...


def check_alerts(
    target: Target,
    archive: Path,
    *,
    now: float | None = None,
    interval_seconds: float = 60.0,
    sample_seconds: float = 10.0,
    run: RunContext | None = None,
    redactor: Redactor | None = None,
    store: bool = True,
    record_states: bool = True,
    source: SampleSource | None = None,
    progress: Callable[[str], None] | None = None,
) -> CheckResult:
    """Evaluate every alert rule once at ``now`` (default: the clock); never raises
    for a dead, slow or lying target.

    With ``run`` the scrapes, one check per rule and each transition are journaled.
    Without ``store`` nothing is written: the stored samples, if any, are read and
    this check's sample is added in memory only. Without ``record_states`` the
    samples are stored but the rule states are not, so the next check that records
    them reports the same transitions again: a quick look by hand never takes a
    transition away from the scheduled check. With ``source``, or when the target
    names a ``prometheus_url``, no scrape is taken and the rules are evaluated over
    the source's samples, while the stored rule states still make each transition
    journaled once. A source that fails leaves those states unchanged.
    """
    if source is None and target.prometheus_url is not None:
        from veerunbook.alert_prometheus import prometheus_source

        source = prometheus_source(target, step_seconds=interval_seconds)
    moment = time.time() if now is None else now
    context = _Context(target, moment, interval_seconds, sample_seconds, run)
    context.redactor, context.progress = redactor, progress
    context.record_states = record_states
    if not store:
        return _check_read_only(context, archive, source)
    with check_lock(store_path(archive, target.name).parent) as held:
        if held is not None:
            return _skipped(context, held.reason())
        with SampleStore(archive, target.name) as samples:
            return _check_stored(context, samples, source)


@dataclass
class _Context:
    target: Target
    now: float
    interval: float
    sample_seconds: float
    run: RunContext | None
    redactor: Redactor | None = None
    progress: Callable[[str], None] | None = None
    record_states: bool = True

    @property
    def max_gap(self) -> float:
        return 2 * self.interval


def _skipped(context: _Context, reason: str) -> CheckResult:
    if context.run is not None:
        journal_skipped(context.run, reason)
    return CheckResult(time=context.now, target=context.target.name, skipped=reason)


def _source_failed(context: _Context, error: PrometheusQueryError) -> CheckResult:
    # A failed query says nothing about the target, so the stored states are kept
    # and a firing alert neither resolves nor fires again.
    reason = str(error)
    if context.redactor is not None:
        reason = context.redactor.mask(reason)
    if context.run is not None:
        journal_source_error(context.run, reason)
    return CheckResult(
        time=context.now, target=context.target.name, scrape_error=reason
    )


def _check_stored(
    context: _Context, samples: SampleStore, source: SampleSource | None
) -> CheckResult:
    now = context.now
    samples.prune(now - DEFAULT_RETENTION_SECONDS)
    if source is not None:
        try:
            measurement = _from_source(source, context)
            statuses = _evaluate_all(source, now, context.interval)
        except PrometheusQueryError as error:
            return _source_failed(context, error)
    else:
        measurement = measure_signals(context, _recent_scrape(samples, context))
        if measurement.body is not None:
            samples.save_scrape(now, measurement.body)
        _append(context, samples, measurement.values)
        statuses = _evaluate_all(samples, now, context.interval)
    write = context.record_states
    transitions = _compare_states(samples, statuses, now, write=write)
    return _finish(context, statuses, transitions, measurement)


def _check_read_only(
    context: _Context, archive: Path, source: SampleSource | None
) -> CheckResult:
    now = context.now
    stored: SampleStore | None = None
    if store_path(archive, context.target.name).is_file():
        stored = SampleStore(archive, context.target.name)
    try:
        if source is not None:
            try:
                measurement = _from_source(source, context)
                statuses = _evaluate_all(source, now, context.interval)
            except PrometheusQueryError as error:
                return _source_failed(context, error)
        else:
            previous = _recent_scrape(stored, context) if stored else None
            measurement = measure_signals(context, previous)
            reader = _WithCurrent(stored, now, measurement.values)
            statuses = _evaluate_all(reader, now, context.interval)
        transitions: tuple[AlertTransition, ...] = ()
        if stored is not None:
            transitions = _compare_states(stored, statuses, now, write=False)
        return _finish(context, statuses, transitions, measurement)
    finally:
        if stored is not None:
            stored.close()


def _recent_scrape(samples: SampleStore, context: _Context) -> StoredScrape | None:
    """Return the stored scrape before now, unless it is older than the max gap."""
    previous = samples.last_scrape(context.now)
    if previous is None or context.now - previous.time > context.max_gap:
        return None
    return previous


def _from_source(source: SampleSource, context: _Context) -> Measurement:
    values: dict[Signal, float | None] = {}
    for signal in Signal:
        found = source.read(signal, context.now - context.max_gap, context.now)
        values[signal] = found[-1].value if found else None
    return Measurement(values, None, None, None)


class _WithCurrent:
    """Stored samples before ``now`` plus this check's values, held in memory."""

    def __init__(
        self,
        stored: SampleStore | None,
        now: float,
        values: Mapping[Signal, float | None],
    ) -> None:
        self._stored, self._now, self._values = stored, now, values

    def read(self, signal: Signal, start: float, end: float) -> list[SignalSample]:
        found = [] if self._stored is None else self._stored.read(signal, start, end)
        older = [sample for sample in found if sample.time < self._now]
        if start <= self._now <= end:
            older.append(SignalSample(self._now, self._values.get(signal)))
        return older


def _append(
    context: _Context, samples: SampleStore, values: Mapping[Signal, float | None]
) -> None:
    if samples.has_samples_at(context.now):
        # A replay of a time already checked: keep the first sample, evaluate again.
        if context.run is not None:
            context.run.note(
                f"samples at {context.now} already stored; this check's not stored"
            )
        return
    samples.append(context.now, values)


def _evaluate_all(
    reader: SampleSource, now: float, interval: float
) -> tuple[RuleStatus, ...]:
    return tuple(_evaluate_rule(rule, reader, now, interval) for rule in ALERT_RULES)


def _evaluate_rule(
    rule: AlertRule, reader: SampleSource, now: float, interval: float
) -> RuleStatus:
    """Evaluate ``rule`` over enough history to decide its state at ``now``.

    The span is the hold time, the counter window and two intervals, so an alert
    active for its whole hold time is seen to fire.
    """
    span = rule.for_seconds + rule.window_seconds + 2 * interval
    samples = reader.read(rule.signal, now - span, now)
    if not samples or now - samples[-1].time > 2 * interval:
        return RuleStatus(rule, AlertState.INACTIVE, None, None)
    result = evaluate(rule, samples, interval_seconds=interval)
    state = result.states[-1]
    since = None
    for moment, earlier in zip(
        reversed(result.times), reversed(result.states), strict=True
    ):
        if earlier is AlertState.INACTIVE:
            break
        since = moment
    return RuleStatus(rule, state, result.values[-1], since)


def _compare_states(
    samples: SampleStore, statuses: tuple[RuleStatus, ...], now: float, *, write: bool
) -> tuple[AlertTransition, ...]:
    """Return the transitions since the stored states, storing the new ones."""
    stored = samples.rule_states()
    transitions: list[AlertTransition] = []
    for status in statuses:
        name = status.rule.name
        before = stored.get(name)
        old = before.state if before is not None else AlertState.INACTIVE.value
        firing = status.state is AlertState.FIRING
        if firing and old != AlertState.FIRING.value:
            transitions.append(
                AlertTransition(status.rule, "firing", now, status.value, status.since)
            )
        elif not firing and old == AlertState.FIRING.value:
            since = before.since if before is not None else None
            transitions.append(
                AlertTransition(status.rule, "resolved", now, status.value, since)
            )
        changed = before is None or (old, before.since) != (
            status.state.value,
            status.since,
        )
        if write and changed:
            samples.set_rule_state(RuleState(name, status.state, status.since, now))
    return tuple(transitions)


def _finish(
    context: _Context,
    statuses: tuple[RuleStatus, ...],
    transitions: tuple[AlertTransition, ...],
    measurement: Measurement,
) -> CheckResult:
    result = CheckResult(
        time=context.now,
        target=context.target.name,
        values=dict(measurement.values),
        rules=statuses,
        transitions=transitions,
        scrape_error=measurement.error,
        window_seconds=measurement.window_seconds,
    )
    if context.run is not None:
        journal_result(context.run, result)
    return result
