"""Evaluate alert rules over a series of samples with Prometheus ``for`` semantics.

An alert is inactive until its condition is met at an evaluation. It is then pending,
active since that evaluation, and fires at the first evaluation at which it has been
active for at least ``for_seconds``. The boundary is inclusive, as in Prometheus's
rule manager (active duration >= ``for``). One evaluation at which the condition is
not met makes the alert inactive again and resolves it if it was firing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from veerunbook.alert_rules import COUNTER_SIGNALS, AlertRule
from veerunbook.errors import UsageError


class AlertState(StrEnum):
    """State of an alert at one evaluation."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class SignalSample:
    """One scrape's value of a signal at ``time`` (Unix seconds).

    ``value`` is None for a missing sample or a failed scrape. For a counter signal
    it is the counter's increase since the previous sample (each series' increase
    with the counter-reset rule, summed over the series), otherwise the signal
    itself.
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

    For a counter signal the compared value is the sum of the stored increases over
    the last ``rule.window_seconds``, see ``window_increase``. A rule on "more than
    N in 1 minute" therefore fires when the increase over the last 60 s exceeds N.
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


# How long a span the summed increases of ``window_increase`` may cover, in windows.
# Half a window of slack lets a check every 60 s with a 60 s window compare the
# increase since the check before it when a scrape is up to 30 s late. A missed check
# (120 s since the last reading) therefore gives no value, not a two-minute increase
# compared with a one-minute threshold.
MAX_SPAN_WINDOWS = 1.5


def window_increase(
    samples: Sequence[SignalSample], window_seconds: float
) -> float | None:
    """Sum the counter increases in the ``window_seconds`` up to the last sample.

    Each sample's value is the counter's increase since the sample before it, so it
    covers the span from the previous sample with a value to its own time. An
    increase counts when the midpoint of that span lies in the window
    (last - ``window_seconds``, last]. So with a check every 60 s and a 60 s window,
    readings 59.6 s or 61 s apart give exactly one increase. The increase of a
    sample at the window start covers the time before the window and is left out,
    and the first sample's increase never counts, because its span is unknown.
    Returns None when the counted increases cover more than ``MAX_SPAN_WINDOWS``
    windows (a missed check), when the last sample has no value, when no increase
    counts, or when the sum is not finite. The sum is not scaled to the window:
    Prometheus's ``increase()`` extrapolates to the window's edges, but nothing is
    extrapolated here.
    """
    if not samples or samples[-1].value is None:
        return None
    end = samples[-1].time
    start = end - window_seconds
    readings = [
        (sample.time, sample.value) for sample in samples if sample.value is not None
    ]

    # Walk back from the last reading while the span of each increase lies mostly
    # inside the window.
    total = 0.0
    covered_from: float | None = None
    for (previous_time, _), (time, value) in reversed(list(pairwise(readings))):
        if (previous_time + time) / 2 <= start:
            break
        total += value
        covered_from = previous_time

    if covered_from is None or end - covered_from > MAX_SPAN_WINDOWS * window_seconds:
        return None
    return total if math.isfinite(total) else None
