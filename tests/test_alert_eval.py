from pathlib import Path

import pytest

from veerunbook.alert_eval import (
    AlertState,
    SignalSample,
    Transition,
    evaluate,
    window_increase,
)
from veerunbook.alert_rules import (
    ALERT_RULES,
    COUNTER_SIGNALS,
    AlertRule,
    Comparison,
    Signal,
    rule_named,
)
from veerunbook.alert_signals import signal_values
from veerunbook.errors import UsageError
from veerunbook.metrics_parse import parse_exposition

FIXTURE = Path(__file__).parent / "fixtures" / "veefore-counter-reset-between-scrapes"
INTERVAL = 15.0
FIRING = AlertState.FIRING
PENDING = AlertState.PENDING
INACTIVE = AlertState.INACTIVE


def _series(values: list[float | None], step: float = INTERVAL) -> list[SignalSample]:
    return [SignalSample(index * step, value) for index, value in enumerate(values)]


def _breaching(rule: AlertRule) -> float:
    if rule.comparison is Comparison.ABOVE:
        return rule.threshold * 2
    return rule.threshold / 2


def _healthy(rule: AlertRule) -> float:
    if rule.comparison is Comparison.ABOVE:
        return rule.threshold / 2
    return 1.0


@pytest.mark.parametrize(
    "rule",
    [rule for rule in ALERT_RULES if rule.signal not in COUNTER_SIGNALS],
    ids=lambda rule: rule.name,
)
def test_gauge_rule_fires_and_resolves(rule: AlertRule) -> None:
    # Breaching at t = 0, 15, ..., for_seconds; healthy one interval later. With the
    # inclusive boundary the alert fires at t = for_seconds and resolves 15 s later.
    held = int(rule.for_seconds // INTERVAL) + 1
    values: list[float | None] = [_breaching(rule)] * held + [_healthy(rule)]
    result = evaluate(rule, _series(values), interval_seconds=INTERVAL)
    assert result.transitions == (
        Transition(rule.for_seconds, FIRING),
        Transition(rule.for_seconds + INTERVAL, INACTIVE),
    )
    assert result.states[0] == (FIRING if rule.for_seconds == 0 else PENDING)
    assert result.states[-2] == FIRING
    assert result.states[-1] == INACTIVE


@pytest.mark.parametrize(
    "rule",
    [rule for rule in ALERT_RULES if rule.signal in COUNTER_SIGNALS],
    ids=lambda rule: rule.name,
)
def test_counter_rule_fires_and_resolves(rule: AlertRule) -> None:
    # Each sample is the increase since the one before: threshold + 1 at t = 75,
    # else 0. At t = 75 the window (15, 75] sums the increases at 30, 45, 60 and 75:
    # 0 + 0 + 0 + (threshold + 1), so the rule fires. At t = 135 the window
    # (75, 135] sums those at 90 to 135: 0, so the alert resolves.
    jump = rule.threshold + 1
    values: list[float | None] = [0.0] * 5 + [jump] + [0.0] * 4
    result = evaluate(rule, _series(values), interval_seconds=INTERVAL)
    assert result.values[5] == jump
    assert result.values[9] == 0.0
    assert result.transitions == (
        Transition(75.0, FIRING),
        Transition(135.0, INACTIVE),
    )


def test_first_counter_sample_not_compared() -> None:
    # The first sample's increase covers a span since an unseen sample, so the
    # first evaluation has nothing to compare.
    result = evaluate(
        rule_named("BlockedIpsP0"), _series([500.0]), interval_seconds=INTERVAL
    )
    assert result.values == (None,)
    assert result.states == (INACTIVE,)


def test_pending_one_second_before_for() -> None:
    # ErrorRateP0 is met from t = 0; at t = 119 it has been active 119 s < 120 s.
    samples = [SignalSample(t, 0.08) for t in (0.0, 60.0, 119.0)]
    result = evaluate(rule_named("ErrorRateP0"), samples, interval_seconds=60.0)
    assert result.states == (PENDING, PENDING, PENDING)
    assert result.transitions == ()


def test_firing_at_exactly_for() -> None:
    # Active since t = 0; at t = 120 the active time is 120 s >= for 120 s: firing.
    samples = [SignalSample(t, 0.08) for t in (0.0, 60.0, 120.0)]
    result = evaluate(rule_named("ErrorRateP0"), samples, interval_seconds=60.0)
    assert result.states == (PENDING, PENDING, FIRING)
    assert result.transitions == (Transition(120.0, FIRING),)


def test_threshold_itself_does_not_hold() -> None:
    # "> 5 %" is strict: exactly 5 % keeps the alert inactive.
    samples = _series([0.05] * 10)
    result = evaluate(rule_named("ErrorRateP0"), samples, interval_seconds=INTERVAL)
    assert set(result.states) == {INACTIVE}


def test_missing_sample_resets_pending() -> None:
    # Pending from t = 0 to 105, no sample at t = 120, pending again from t = 135.
    # Without the reset it would fire at t = 120; with it, at 135 + 120 = 255.
    values: list[float | None] = [0.08] * 8 + [None] + [0.08] * 9
    result = evaluate(rule_named("ErrorRateP0"), _series(values), interval_seconds=15)
    assert result.states[8] == INACTIVE
    assert result.transitions == (Transition(255.0, FIRING),)


def test_missing_sample_resolves_firing() -> None:
    # Firing from t = 120; the failed scrape at t = 135 resolves it.
    values: list[float | None] = [0.08] * 9 + [None]
    result = evaluate(rule_named("ErrorRateP0"), _series(values), interval_seconds=15)
    assert result.transitions == (
        Transition(120.0, FIRING),
        Transition(135.0, INACTIVE),
    )


def test_time_gap_resets_pending() -> None:
    # Samples at 0, 15, 30, then 75: 45 s apart, more than the default max gap of
    # 2 x 15 s. The sample at 75 counts as a failed evaluation, the alert is pending
    # again from t = 90 and fires at 90 + 120 = 210.
    times = [0.0, 15.0, 30.0, *(75.0 + 15.0 * i for i in range(10))]
    samples = [SignalSample(t, 0.08) for t in times]
    result = evaluate(rule_named("ErrorRateP0"), samples, interval_seconds=15)
    assert result.states[3] == INACTIVE
    assert result.states[4] == PENDING
    assert result.transitions == (Transition(210.0, FIRING),)


def test_max_gap_can_be_widened() -> None:
    # With max_gap_seconds = 60 the 45 s gap is no gap: fires at t = 120.
    times = [0.0, 15.0, 30.0, 75.0, 90.0, 105.0, 120.0]
    samples = [SignalSample(t, 0.08) for t in times]
    result = evaluate(
        rule_named("ErrorRateP0"), samples, interval_seconds=15, max_gap_seconds=60
    )
    assert result.transitions == (Transition(120.0, FIRING),)


def test_no_repeated_transitions_while_firing() -> None:
    # 40 breaching samples (10 minutes): one firing transition, no resolution.
    result = evaluate(
        rule_named("ErrorRateP0"), _series([0.2] * 40), interval_seconds=INTERVAL
    )
    assert result.transitions == (Transition(120.0, FIRING),)
    assert result.states[-1] == FIRING


def test_refire_after_resolution() -> None:
    # Fires at 120, resolves at 135, is met again from 150 and fires at 150 + 120.
    values: list[float | None] = [0.08] * 9 + [0.0] + [0.08] * 9
    result = evaluate(rule_named("ErrorRateP0"), _series(values), interval_seconds=15)
    assert result.transitions == (
        Transition(120.0, FIRING),
        Transition(135.0, INACTIVE),
        Transition(270.0, FIRING),
    )


def test_counter_increases_summed() -> None:
    # Increases 5, 3 and 5 at t = 15, 30 and 45: the window (-15, 45] sums
    # 5 + 3 + 5 = 13 > 10, so BlockedIpsP1 fires at t = 45.
    rule = rule_named("BlockedIpsP1")
    result = evaluate(rule, _series([0.0, 5.0, 3.0, 5.0]), interval_seconds=INTERVAL)
    assert result.values[-1] == 13.0
    assert result.transitions == (Transition(45.0, FIRING),)


def test_window_leaves_out_start_sample() -> None:
    # Samples at 0 and 60 with a 60 s window (0, 60]: the increase at 0 covers the
    # time before the window, so only the 5 at t = 60 counts.
    samples = [SignalSample(0.0, 10.0), SignalSample(60.0, 5.0)]
    assert window_increase(samples, 60.0) == 5.0


def test_window_sums_each_check() -> None:
    # Checks every 15 s, window (0, 60]: 1 + 2 + 3 + 4 = 10, without the 7 at t = 0.
    samples = _series([7.0, 1.0, 2.0, 3.0, 4.0])
    assert window_increase(samples, 60.0) == 10.0


def test_window_midpoint_at_start_excluded() -> None:
    # Window (20, 80]. The increase at 30 covers (10, 30], whose midpoint 20 is the
    # window start, so only the 4 at t = 80 counts.
    samples = [SignalSample(10.0, 1.0), SignalSample(30.0, 2.0)]
    samples.append(SignalSample(80.0, 4.0))
    assert window_increase(samples, 60.0) == 4.0


def test_window_midpoint_after_start_included() -> None:
    # Window (20, 80]. The increase at 30.2 covers (10, 30.2], midpoint 20.1, so
    # 2 + 4 = 6 counts, over the 70 s from t = 10.
    samples = [SignalSample(10.0, 1.0), SignalSample(30.2, 2.0)]
    samples.append(SignalSample(80.0, 4.0))
    assert window_increase(samples, 60.0) == 6.0


def test_window_span_at_limit() -> None:
    # Readings 90 s apart cover 1.5 windows, the maximum: the increase counts.
    samples = [SignalSample(0.0, 10.0), SignalSample(90.0, 5.0)]
    assert window_increase(samples, 60.0) == 5.0


def test_window_span_past_limit() -> None:
    # Readings 90.5 s apart cover more than 1.5 windows: no value.
    samples = [SignalSample(0.0, 10.0), SignalSample(90.5, 5.0)]
    assert window_increase(samples, 60.0) is None


@pytest.mark.parametrize("apart", [119.5, 120.0, 121.0])
def test_window_missed_check_no_value(apart: float) -> None:
    # A check every 60 s missed one: the increase covers two windows, not compared.
    samples = [SignalSample(0.0, 10.0), SignalSample(apart, 15.0)]
    assert window_increase(samples, 60.0) is None


def test_window_failed_scrape_is_gap() -> None:
    # The check at 60 failed, so the increase at 120 covers (0, 120]: no value.
    samples = [SignalSample(0.0, 1.0), SignalSample(60.0, None)]
    samples.append(SignalSample(120.0, 5.0))
    assert window_increase(samples, 60.0) is None


def test_window_skips_failed_scrape() -> None:
    # The check at 60 failed, so the increase at 60.8 covers (0.4, 60.8]: 4 counts.
    samples = [SignalSample(0.4, 10.0), SignalSample(60.0, None)]
    samples.append(SignalSample(60.8, 4.0))
    assert window_increase(samples, 60.0) == 4.0


def test_window_last_sample_missing() -> None:
    samples = [SignalSample(0.0, 1.0), SignalSample(15.0, None)]
    assert window_increase(samples, 60.0) is None


def test_window_infinite_sum_no_value() -> None:
    # 1e308 + 1e308 overflows to infinity, which is no count.
    samples = _series([0.0, 1e308, 1e308])
    assert window_increase(samples, 60.0) is None


@pytest.mark.parametrize("apart", [59.6, 60.0, 60.4, 61.0])
def test_window_jitter_has_value(apart: float) -> None:
    # A check every 60 s with a 60 s window, the two scrapes off by up to a second.
    # At 59.6 s the sample at 1000 lies in the window (999.6, 1059.6], but its
    # increase of 9 covers the minute before it and is left out: 6, not 9 + 6.
    samples = [SignalSample(1000.0, 9.0), SignalSample(1000.0 + apart, 6.0)]
    assert window_increase(samples, 60.0) == 6.0


def test_window_jitter_series_each_minute() -> None:
    # Scrapes 60.4 s, 59.6 s and 61 s apart: every one after the first compares the
    # increase since the scrape before it, and 60 > 50 fires BlockedIpsP0.
    times = [0.0, 60.4, 120.0, 181.0]
    increases = [10.0, 2.0, 3.0, 60.0]
    samples = [SignalSample(t, c) for t, c in zip(times, increases, strict=True)]
    result = evaluate(rule_named("BlockedIpsP0"), samples, interval_seconds=60.0)
    assert result.values == (None, 2.0, 3.0, 60.0)
    assert result.transitions == (Transition(181.0, FIRING),)


def test_fixture_two_minute_rule_not_confirmed() -> None:
    # After the restart every series counts from 0: 52 of 642 user requests are
    # 5xx, 8.10 % at 14:22:00Z. That starts the P0 "> 5 % for 2 minutes" alert
    # pending but cannot confirm it.
    before = parse_exposition((FIXTURE / "scrape-0.txt").read_text(), scraped_at=0.0)
    after = parse_exposition((FIXTURE / "scrape-1.txt").read_text(), scraped_at=120.0)
    rate = signal_values(before, after)[Signal.ERROR_RATE]
    assert rate is not None
    assert round(rate * 100, 2) == 8.10
    samples = [SignalSample(1_796_394_120.0, rate)]
    result = evaluate(rule_named("ErrorRateP0"), samples, interval_seconds=120)
    assert result.states == (PENDING,)
    assert result.transitions == ()


def test_unordered_samples_rejected() -> None:
    samples = [SignalSample(30.0, 0.1), SignalSample(15.0, 0.1)]
    with pytest.raises(UsageError, match="increasing time order"):
        evaluate(rule_named("ErrorRateP0"), samples, interval_seconds=INTERVAL)


def test_nonpositive_interval_rejected() -> None:
    with pytest.raises(UsageError, match="invalid interval_seconds"):
        evaluate(rule_named("ErrorRateP0"), [], interval_seconds=0)
