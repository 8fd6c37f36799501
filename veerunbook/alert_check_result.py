"""The outcome of one alert check, and how it is written into the run's journal.

A rule's state becomes one check per rule: a firing alert is a failed check, so the
run's status is ``findings`` and its exit code 1 while anything fires. Each firing or
resolved transition becomes one note, whose text is also the notification's line.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from veerunbook.alert_eval import AlertState
from veerunbook.alert_rules import AlertRule, Signal
from veerunbook.alert_units import (
    clock_text,
    condition_text,
    duration_text,
    missing_reason,
    rule_quantity,
    rule_value_text,
)
from veerunbook.journal import utc_timestamp

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

    @property
    def duration_seconds(self) -> float | None:
        """Seconds the alert was active before it resolved, None while firing."""
        if self.transition != "resolved" or self.since is None:
            return None
        return self.time - self.since


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one alert check at ``time`` (Unix seconds).

    ``skipped`` gives the reason nothing was evaluated (another check holds the
    lock), and ``scrape_error`` the reason the signals are None. ``target`` is the
    name of the checked target. ``read_only`` gives the reason a check that
    evaluated wrote, queued and sent nothing. ``vanished`` names the metric
    families of the previous scrape that this scrape lacks, and ``reasons`` gives
    a signal's known reason for having no value.
    """

    time: float
    target: str = ""
    values: Mapping[Signal, float | None] = field(default_factory=dict)
    rules: tuple[RuleStatus, ...] = ()
    transitions: tuple[AlertTransition, ...] = ()
    skipped: str | None = None
    scrape_error: str | None = None
    window_seconds: float | None = None
    read_only: str | None = None
    vanished: tuple[str, ...] = ()
    reasons: Mapping[Signal, str] = field(default_factory=dict)

    @property
    def firing(self) -> list[RuleStatus]:
        """The rules whose alert fires at this check."""
        return [status for status in self.rules if status.state is AlertState.FIRING]

    def missing_reason(self, signal: Signal) -> str:
        """Return why ``signal`` has no value at this check, as far as it is known."""
        if not self.scrape_error and signal in self.reasons:
            return self.reasons[signal]
        return missing_reason(signal, self.scrape_error)


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


def journal_clock_behind(run: RunContext, reason: str, newest: float) -> None:
    """Record a check whose clock is not after the newest stored sample."""
    run.check(
        "alert clock",
        "error",
        observed=newest,
        unit="Unix s",
        expected="a check time after the newest stored sample",
        summary=f"nothing evaluated, no state changed: {reason}",
    )


def journal_result(run: RunContext, result: CheckResult) -> None:
    """Record a failed scrape, one check per rule and one note per transition.

    A failed scrape is an ``error`` check, so a target that cannot be read never
    leaves the run's status ``ok``.
    """
    if result.read_only:
        run.note(f"alert check read-only: {result.read_only}", read_only=True)
    if result.scrape_error:
        run.check(
            "alert metrics scrape",
            "error",
            summary=f"every signal but up has no value: {result.scrape_error}",
        )
    elif result.vanished:
        names = ", ".join(result.vanished)
        run.check(
            "alert metrics scrape",
            "warn",
            observed=names,
            expected="every metric family of the previous scrape",
            summary=f"absent from this scrape but in the previous one: {names};"
            " the signals computed from them have no value",
        )
    for status in result.rules:
        rule = status.rule
        shown, unit = rule_value_text(rule, status.value)
        state = status.state
        check = "skip" if status.value is None and not status.since else None
        run.check(
            f"alert {rule.name}",
            check or _CHECK_STATUS[state],
            observed=shown,
            unit=unit,
            expected=condition_text(rule),
            summary=rule_summary(status, result),
        )

    for change in result.transitions:
        text = transition_text(change, result)
        run.note(text, **transition_fields(change, result))


def rule_summary(status: RuleStatus, result: CheckResult) -> str:
    """Describe a rule's state at the check, such as ``firing: error_rate 26.3 %,
    active since 14:22:30 UTC``, or why it has no value."""
    rule = status.rule
    text = f"{status.state.value}: {rule.signal.value}"
    if status.value is None:
        text += f" no value, {result.missing_reason(rule.signal)}"
    else:
        text += f" {rule_quantity(rule, status.value)}"
    if status.since is not None:
        text += f", active since {clock_text(status.since)}"
    return text


def transition_text(change: AlertTransition, result: CheckResult) -> str:
    """Return the one-line message of a transition, as journaled and sent.

    Firing: ``[P0] ErrorRateP0 firing since 14:22:30 UTC (26.3 %, alert above 5 %
    for 2 min): <summary> Run: veerunbook run high-error-rate --target prod``.
    Resolved: ``[P0] ErrorRateP0 resolved after 4 min 00 s (now 0.4 %)``, or with
    ``: no value, <reason>`` in place of the value when there is none.
    """
    rule = change.rule
    head = f"[{rule.tier.value}] {rule.name}"
    if change.transition == "resolved":
        duration = change.duration_seconds
        after = "" if duration is None else f" after {duration_text(duration)}"
        if change.value is None:
            reason = result.missing_reason(rule.signal)
            return f"{head} resolved{after}: no value, {reason}"
        return f"{head} resolved{after} (now {rule_quantity(rule, change.value)})"
    since = change.time if change.since is None else change.since
    command = f"veerunbook run {rule.procedure}"
    if result.target:
        command += f" --target {shlex.quote(result.target)}"
    return (
        f"{head} firing since {clock_text(since)}"
        f" ({rule_quantity(rule, change.value)}, {condition_text(rule)}):"
        f" {rule.summary} Run: {command}"
    )


def transition_fields(change: AlertTransition, result: CheckResult) -> dict[str, Any]:
    """Return a transition note's fields: times in ISO 8601 UTC and Unix seconds,
    value and threshold in the rule's display unit."""
    rule = change.rule
    value, unit = rule_value_text(rule, change.value)
    threshold, _ = rule_value_text(rule, rule.threshold)
    fields: dict[str, Any] = {
        "alert": rule.name,
        "tier": rule.tier.value,
        "transition": change.transition,
        "value": value,
        "threshold": threshold,
        "unit": unit,
        "since": _iso(change.since),
        "since_unix": change.since,
        "at": _iso(change.time),
        "at_unix": change.time,
        "procedure": rule.procedure,
    }
    if change.transition == "resolved":
        fields["duration_s"] = change.duration_seconds
    if change.value is None:
        fields["reason"] = result.missing_reason(rule.signal)
    return fields


def _iso(unix_seconds: float | None) -> str | None:
    if unix_seconds is None:
        return None
    return utc_timestamp(datetime.fromtimestamp(unix_seconds, UTC))
