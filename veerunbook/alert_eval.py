"""Evaluate alert rules over a series of samples with Prometheus ``for`` semantics.

An alert is inactive until its condition is met at an evaluation. It is then pending,
active since that evaluation, and fires at the first evaluation at which it has been
active for at least ``for_seconds``. The boundary is inclusive, as in Prometheus's
rule manager (active duration >= ``for``). One evaluation at which the condition is
not met makes the alert inactive again and resolves it if it was firing.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from typing import TypeVar

from veerunbook.alert_rules import COUNTER_SIGNALS, AlertRule
from veerunbook.errors import UsageError

Key = TypeVar("Key", bound=Hashable)


class AlertState(StrEnum):
    """State of an alert at one evaluation."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class SignalSample:
    """One scrape's value of a signal at ``time`` (Unix seconds).

    ``value`` is None for a missing sample or a failed scrape. For a counter signal
    it is the cumulative counter, otherwise the signal itself.
    """

    time: float
    value: float | None


@dataclass(frozen=True)
class Transition:
    """An alert starting to fire or resolving at ``time``."""

    time: float
    state: AlertState  # FIRING when it fired, INACTIVE when it resolved


@dataclass(frozen=True)
class RuleEvaluation:
    """A rule's evaluated value and state at each sample time, and its transitions.

    ``values`` contains the compared value: the signal itself, or for a counter signal
    its increase over the rule's window, None where there was nothing to compare.
    """

    rule: AlertRule
    times: tuple[float, ...]
    values: tuple[float | None, ...]
    states: tuple[AlertState, ...]
    transitions: tuple[Transition, ...]


def evaluate(
    rule: AlertRule,
    samples: Sequence[SignalSample],
    *,
    interval_seconds: float,
    max_gap_seconds: float | None = None,
) -> RuleEvaluation:
    """Evaluate ``rule`` at each sample's time and return its states and transitions.

    ``samples`` must be in strictly increasing time order, one per evaluation
    interval. A gap resets the alert like an evaluation at which the condition is
    not met. Both a sample whose value is None and a sample that comes more than
    ``max_gap_seconds`` (default twice ``interval_seconds``) after the one before it
    count as failed evaluations. A firing alert resolves at that sample, and a
    pending alert restarts its ``for`` clock at the next evaluation that meets the
    condition.

    For a counter signal the compared value is the counter's increase over the last
    ``rule.window_seconds``, see ``window_increase``. A rule on "more than N in
    1 minute" therefore fires when the increase over the last 60 s exceeds N.
    """
    if interval_seconds <= 0:
        raise UsageError(
            f"invalid interval_seconds {interval_seconds}: it must be positive."
        )
    max_gap = 2 * interval_seconds if max_gap_seconds is None else max_gap_seconds
    _check_order(samples)

    times = tuple(sample.time for sample in samples)
    values = tuple(
        _compared_value(rule, samples, index) for index in range(len(samples))
    )
    condition_met = [
        value is not None
        and not (index > 0 and times[index] - times[index - 1] > max_gap)
        and rule.condition_met(value)
        for index, value in enumerate(values)
    ]
    states, transitions = _run_states(rule.for_seconds, times, condition_met)
    return RuleEvaluation(rule, times, values, states, transitions)


def _run_states(
    for_seconds: float, times: Sequence[float], condition_met: Sequence[bool]
) -> tuple[tuple[AlertState, ...], tuple[Transition, ...]]:
    states: list[AlertState] = []
    transitions: list[Transition] = []
    active_since: float | None = None
    state = AlertState.INACTIVE

    for time, met in zip(times, condition_met, strict=True):
        if not met:
            if state is AlertState.FIRING:
                transitions.append(Transition(time, AlertState.INACTIVE))
            state, active_since = AlertState.INACTIVE, None
        elif state is not AlertState.FIRING:
            if active_since is None:
                active_since = time
            state = AlertState.PENDING
            # Inclusive boundary: fires once active for exactly for_seconds.
            if time - active_since >= for_seconds:
                state = AlertState.FIRING
                transitions.append(Transition(time, AlertState.FIRING))
        states.append(state)

    return tuple(states), tuple(transitions)


def _check_order(samples: Sequence[SignalSample]) -> None:
    for earlier, later in pairwise(samples):
        if later.time <= earlier.time:
            raise UsageError(
                f"samples must be in strictly increasing time order, but {later.time}"
                f" follows {earlier.time}; sort them before evaluating."
            )


def _compared_value(
    rule: AlertRule, samples: Sequence[SignalSample], index: int
) -> float | None:
    if rule.signal not in COUNTER_SIGNALS:
        return samples[index].value
    if samples[index].value is None:
        return None
    return window_increase(samples[: index + 1], rule.window_seconds)


def counter_increase(previous: float, current: float) -> float:
    """Return a counter's increase between two readings, never negative.

    Prometheus's counter-reset rule: a decrease means the counter restarted from 0,
    so the increase is the new value.
    """
    if current < previous:
        return current
    return current - previous


# How far before the window start the base reading of ``window_increase`` may lie,
# as a fraction of the window. Half a window lets a check every 60 s with a 60 s
# window find its base when a scrape is up to 30 s late, and keeps the measured span
# at most 1.5 windows. A missed check (a 120 s gap) therefore gives no value, not a
# two-minute increase compared with a one-minute threshold.
BASE_LOOKBACK = 0.5


def window_increase(
    samples: Sequence[SignalSample], window_seconds: float
) -> float | None:
    """Return the counter's increase over the ``window_seconds`` before the last sample.

    The increase runs from a base reading to the last reading, and the increases
    between consecutive readings are summed with the counter-reset rule. The base is
    the latest reading at or before the window start (last - ``window_seconds``) if
    it lies at most ``BASE_LOOKBACK`` windows before that start, otherwise the first
    reading in the window. So with a check every 60 s and a 60 s window, readings
    60.4 s apart still give an increase. The span can then be up to 1.5 windows, and
    the increase over it is not scaled down. Prometheus's ``increase()`` takes only
    the samples inside the window and extrapolates to its edges; nothing is
    extrapolated here. Returns None when fewer than two readings remain.
    """
    if not samples:
        return None
    start = samples[-1].time - window_seconds
    earliest = start - BASE_LOOKBACK * window_seconds
    readings = [
        sample
        for sample in samples
        if sample.value is not None and sample.time >= earliest
    ]
    # Readings before the base, the latest one at or before the start, drop out.
    base = 0
    for index, sample in enumerate(readings):
        if sample.time <= start:
            base = index
    values = [sample.value for sample in readings[base:] if sample.value is not None]
    if len(values) < 2:
        return None
    pairs = pairwise(values)
    return sum(counter_increase(previous, current) for previous, current in pairs)


def counter_increases(
    before: Mapping[Key, float], after: Mapping[Key, float]
) -> tuple[dict[Key, float], bool]:
    """Return each series' increase between two scrapes and whether a reset was seen.

    Series absent from ``before`` count from 0 and series absent from ``after``
    contribute nothing. When any series decreased, the process behind the counters
    is taken to have restarted, so every series counts from 0: its increase is its
    value in ``after``.
    """
    # NOTE: one decrease resetting every series is our choice for counters that share
    # one exporting process. Prometheus's increase() applies the reset rule to each
    # series alone.
    restarted = any(
        key in before and value < before[key] for key, value in after.items()
    )
    increases: dict[Key, float] = {}
    for key, value in after.items():
        previous = 0.0 if restarted else before.get(key, 0.0)
        increases[key] = counter_increase(previous, value)
    return increases, restarted
