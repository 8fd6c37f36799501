"""The outcome of one alert check, and how it is written into the run's journal.

A rule's state becomes one check per rule: a firing alert is a failed check, so the
run's status is ``findings`` and its exit code 1 while anything fires. Each firing or
resolved transition becomes one note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from veerunbook.alert_eval import AlertState
from veerunbook.alert_rules import AlertRule, Signal
from veerunbook.alert_units import rule_value_text

if TYPE_CHECKING:
    from veerunbook.record import RunContext

# Check status of a rule's state: a firing alert is a failed check, so the run's
# status is "findings" and its exit code 1 while anything fires.
_CHECK_STATUS = {
    AlertState.INACTIVE: "pass",
    AlertState.PENDING: "warn",
    AlertState.FIRING: "fail",
}


@dataclass(frozen=True)
class RuleStatus:
    """A rule's state and compared value at the check, and since when it is active."""

    rule: AlertRule
    state: AlertState
    value: float | None
    since: float | None


@dataclass(frozen=True)
class AlertTransition:
    """An alert that started firing or resolved at this check."""

    rule: AlertRule
    transition: str  # "firing" or "resolved"
    time: float
    value: float | None
    since: float | None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one alert check at ``time`` (Unix seconds).

    ``skipped`` gives the reason nothing was evaluated (another check holds the
    lock), and ``scrape_error`` the reason the signals are None.
    """

    time: float
    values: Mapping[Signal, float | None] = field(default_factory=dict)
    rules: tuple[RuleStatus, ...] = ()
    transitions: tuple[AlertTransition, ...] = ()
    skipped: str | None = None
    scrape_error: str | None = None
    window_seconds: float | None = None

    @property
    def firing(self) -> list[RuleStatus]:
        """The rules whose alert fires at this check."""
        return [status for status in self.rules if status.state is AlertState.FIRING]


def journal_skipped(run: RunContext, reason: str) -> None:
    """Record a check that was skipped, so it never reads as a quiet run."""
    run.check(
        "alert check lock",
        "error",
        summary=f"check skipped, nothing evaluated: {reason}",
    )
    run.note(f"alert check skipped: {reason}", skipped=reason)


def journal_source_error(run: RunContext, reason: str) -> None:
    """Record a sample source that failed, so no rule was evaluated."""
    run.check(
        "alert sample source",
        "error",
        summary=f"nothing evaluated, stored alert states kept: {reason}",
    )


def journal_result(run: RunContext, result: CheckResult) -> None:
    """Record one check per rule and one note per transition."""
    for status in result.rules:
        rule = status.rule
        shown, unit = rule_value_text(rule, status.value)
        threshold, _ = rule_value_text(rule, rule.threshold)
        state = status.state
        check = "skip" if status.value is None and not status.since else None
        run.check(
            f"alert {rule.name}",
            check or _CHECK_STATUS[state],
            observed=shown,
            unit=unit,
            expected=f"alert when {rule.comparison.value} {threshold}"
            f" for {rule.for_seconds:g} s",
            summary=f"{state.value}: {rule.signal.value}"
            f" {'no value' if shown is None else f'{shown:g} {unit}'}",
        )
    for change in result.transitions:
        rule = change.rule
        run.note(
            f"alert {rule.name} {change.transition}",
            alert=rule.name,
            tier=rule.tier.value,
            transition=change.transition,
            value=change.value,
            threshold=rule.threshold,
            since=change.since,
            at=change.time,
            procedure=rule.procedure,
        )
