"""One unattended evaluation of the runbook's alert rules against a target.

A scheduler (cron, a systemd timer) runs ``check_alerts`` once per interval. It takes
the target's check lock, scrapes its metrics once and computes the alert signals
against the previous stored scrape. It stores the sample, evaluates every rule over
the stored samples with Prometheus ``for`` semantics, and journals each alert's firing
and resolved transitions exactly once by comparing with the rule states stored last
time. A dead, slow or lying target is a scrape error: ``up`` is stored as 0, so
TargetDownP0 fires after a minute, and every other signal as None, which counts as a
failed evaluation, so the other firing alerts resolve as in Prometheus. Each
transition's notification line is queued in the store's outbox in the same
transaction as the new rule states.

A check's time against the stored samples (``veerunbook.alert_check_clock``): stored
samples ahead of the clock by more than two intervals are deleted with a warning,
a time within two intervals before the newest sample evaluates nothing and changes
no state, and a time already stored is evaluated read-only. The rule evaluation and
the state comparison are in ``veerunbook.alert_check_eval``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from veerunbook.alert_check_clock import check_clock
from veerunbook.alert_check_eval import (
    SampleSource,
    WithCurrent,
    compare_states,
    evaluate_all,
)
from veerunbook.alert_check_lock import check_lock
from veerunbook.alert_check_result import (
    AlertTransition,
    CheckResult,
    RuleStatus,
    journal_result,
    journal_skipped,
    journal_source_error,
    transition_text,
)
from veerunbook.alert_check_scrape import Measurement, measure_signals
from veerunbook.alert_rules import Signal
from veerunbook.alert_store import (
    DEFAULT_RETENTION_SECONDS,
    SampleStore,
    StoredScrape,
    store_path,
)
from veerunbook.errors import PrometheusQueryError, UsageError

__all__ = [
    "AlertTransition",
    "CheckResult",
    "RuleStatus",
    "SampleSource",
    "check_alerts",
    "check_option",
]

if TYPE_CHECKING:
    from veerunbook.config import Target
    from veerunbook.record import RunContext
    from veerunbook.redact import Redactor


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
    queue_notifications: bool = False,
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
    journaled once. A source that fails leaves those states unchanged. With
    ``queue_notifications`` (and ``record_states``) each transition's line is
    queued in the store's outbox, for ``AlertCheck.notify`` to send.

    Raises StoreError when the sample store or its folder fails.
    """
    if source is None and target.prometheus_url is not None:
        from veerunbook.alert_prometheus import prometheus_source

        source = prometheus_source(target, step_seconds=interval_seconds)
    wall = time.time()
    moment = wall if now is None else now
    context = _Context(target, moment, interval_seconds, sample_seconds, run)
    context.wall = wall
    context.redactor, context.progress = redactor, progress
    context.record_states = record_states
    context.queue = queue_notifications and record_states
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
    queue: bool = False
    wall: float = 0.0  # the clock (Unix seconds) when the check started

    @property
    def max_gap(self) -> float:
        return 2 * self.interval


def _skipped(context: _Context, reason: str) -> CheckResult:
    if context.run is not None:
        journal_skipped(context.run, reason)
    return CheckResult(time=context.now, target=context.target.name, skipped=reason)


def _source_failed(context: _Context, error: PrometheusQueryError) -> CheckResult:
    # A failed query tells nothing about the target, so the stored states are kept
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
    if source is None:
        early = check_clock(samples, context, delete=True)
        if early is not None:
            return early
    # A replay ahead of the clock must not prune the history up to the clock.
    samples.prune(min(now, context.wall) - DEFAULT_RETENTION_SECONDS)
    if source is not None:
        try:
            measurement = _from_source(source, context)
            statuses = evaluate_all(source, now, context.interval)
        except PrometheusQueryError as error:
            return _source_failed(context, error)
    else:
        measurement = measure_signals(context, _recent_scrape(samples, context))
        if measurement.body is not None:
            body = measurement.body
            if context.redactor is not None:
                body = context.redactor.mask(body)
            samples.save_scrape(now, body)
        samples.append(now, measurement.values)
        statuses = evaluate_all(samples, now, context.interval)
    transitions, changed = compare_states(samples, statuses, now)
    result = _result(context, statuses, transitions, measurement)
    if context.record_states:
        lines = [(c.time, transition_text(c, result)) for c in transitions]
        samples.commit_states(changed, lines if context.queue else [])
    return _journal(context, result)


def _check_read_only(
    context: _Context, archive: Path, source: SampleSource | None
) -> CheckResult:
    now = context.now
    stored: SampleStore | None = None
    if store_path(archive, context.target.name).is_file():
        stored = SampleStore(archive, context.target.name)
    try:
        if stored is not None and source is None:
            early = check_clock(stored, context, delete=False)
            if early is not None:
                return early
        if source is not None:
            try:
                measurement = _from_source(source, context)
                statuses = evaluate_all(source, now, context.interval)
            except PrometheusQueryError as error:
                return _source_failed(context, error)
        else:
            previous = _recent_scrape(stored, context) if stored else None
            measurement = measure_signals(context, previous)
            reader = WithCurrent(stored, now, measurement.values)
            statuses = evaluate_all(reader, now, context.interval)
        transitions: tuple[AlertTransition, ...] = ()
        if stored is not None:
            transitions, _ = compare_states(stored, statuses, now)
        result = _result(context, statuses, transitions, measurement)
        return _journal(context, result)
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


def _result(
    context: _Context,
    statuses: tuple[RuleStatus, ...],
    transitions: tuple[AlertTransition, ...],
    measurement: Measurement,
) -> CheckResult:
    return CheckResult(
        time=context.now,
        target=context.target.name,
        values=dict(measurement.values),
        rules=statuses,
        transitions=transitions,
        scrape_error=measurement.error,
        window_seconds=measurement.window_seconds,
        vanished=measurement.vanished,
        reasons=measurement.reasons,
    )


def _journal(context: _Context, result: CheckResult) -> CheckResult:
    if context.run is not None:
        journal_result(context.run, result)
    return result


def check_option(name: str, value: float) -> None:
    """Raise UsageError unless ``value`` is within the range that the alert-check
    notebook declares for its parameter ``name``, so both accept the same values."""
    import json

    from veerunbook.params import read_parameters
    from veerunbook.procedures import find_procedure

    path = find_procedure("alert-check").path
    notebook = json.loads(path.read_text(encoding="utf-8"))
    spec = next(spec for spec in read_parameters(notebook) if spec.name == name)
    low, high = spec.bounds
    inside = (low is None or value >= low) and (high is None or value <= high)
    if inside and math.isfinite(value):
        return
    lower = "" if low is None else f"{low:g}"
    upper = "" if high is None else f"{high:g}"
    flag = "--" + name.replace("_", "-")
    raise UsageError(
        f"invalid {flag} {value!r}: give seconds within [{lower}..{upper}]"
    )
