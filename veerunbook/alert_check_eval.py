"""Rule evaluation and state comparison for one alert check.

``evaluate_all`` evaluates every alert rule at one moment over the samples of a
``SampleSource`` with Prometheus ``for`` semantics, and ``compare_states`` finds the
firing and resolved transitions against the rule states stored by the last check.
``WithCurrent`` adds a check's values to the stored samples in memory, for a check
that writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from veerunbook.alert_check_result import AlertTransition, RuleStatus
from veerunbook.alert_eval import AlertState, SignalSample, evaluate
from veerunbook.alert_rules import ALERT_RULES, AlertRule, Signal
from veerunbook.alert_store import RuleState, SampleStore


class SampleSource(Protocol):
    """Stored signal samples, such as ``SampleStore`` or a Prometheus server."""

    def read(self, signal: Signal, start: float, end: float) -> list[SignalSample]: ...


class WithCurrent:
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


def evaluate_all(
    reader: SampleSource, now: float, interval: float
) -> tuple[RuleStatus, ...]:
    """Evaluate every alert rule at ``now`` over ``reader``'s samples."""
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


def compare_states(
    samples: SampleStore, statuses: tuple[RuleStatus, ...], now: float
) -> tuple[tuple[AlertTransition, ...], list[RuleState]]:
    """Return the transitions since the stored states and the states that changed."""
    stored = samples.rule_states()
    transitions: list[AlertTransition] = []
    changed_states: list[RuleState] = []
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
        if changed:
            changed_states.append(RuleState(name, status.state, status.since, now))
    return tuple(transitions), changed_states
