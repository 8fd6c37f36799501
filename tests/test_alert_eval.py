from pathlib import Path

import pytest

from veerunbook.alert_eval import (
    AlertState,
    SignalSample,
    Transition,
    counter_increase,
    counter_increases,
    evaluate,
    window_increase,
)
from veerunbook.alert_rules import (
    ALERT_RULES,
    COUNTER_SIGNALS,
    AlertRule,
    Comparison,
    rule_named,
)
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
    # The counter jumps by threshold + 1 between t = 60 and t = 75, then stays flat.
    # At t = 75 the increase over [15, 75] is threshold + 1, so the rule fires. At
    # t = 135 the window [75, 135] has only flat readings: increase 0, resolved.
    jump = rule.threshold + 1
    values: list[float | None] = [7.0] * 5 + [7.0 + jump] * 5
    result = evaluate(rule, _series(values), interval_seconds=INTERVAL)
    assert result.values[5] == jump
    assert result.values[9] == 0.0
    assert result.transitions == (
        Transition(75.0, FIRING),
        Transition(135.0, INACTIVE),
    )


def test_first_counter_reading_not_compared() -> None:
    # One reading gives no increase, so the first evaluation has nothing to compare.
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


def test_counter_reset_rule() -> None:
    # A decrease means a restart from 0: the increase is the new value.
    assert counter_increase(100.0, 3.0) == 3.0
    assert counter_increase(100.0, 104.0) == 4.0


def test_counter_reset_inside_window() -> None:
    # Readings 100, 105, restart, 3, 8: increase 5 + 3 + 5 = 13 > 10, where the naive
    # difference 8 - 100 would be -92.
    rule = rule_named("BlockedIpsP1")
    result = evaluate(
        rule, _series([100.0, 105.0, 3.0, 8.0]), interval_seconds=INTERVAL
    )
    assert result.values[-1] == 13.0
    assert result.transitions == (Transition(45.0, FIRING),)


def test_window_includes_start_edge() -> None:
    # Readings at 0 and 60 with a 60 s window: the one at the start is the base.
    samples = [SignalSample(0.0, 10.0), SignalSample(60.0, 15.0)]
    assert window_increase(samples, 60.0) == 5.0


def test_window_base_is_latest_at_start() -> None:
    # Readings every 15 s: the one at t = 15 is the latest at or before the start
    # of [15, 75], so t = 0 drops out and 12 - 10 = 2 counts.
    samples = _series([0.0, 10.0, 11.0, 11.0, 12.0, 12.0])
    assert window_increase(samples, 60.0) == 2.0


def test_window_base_before_start() -> None:
    # No reading at 15, the start of [15, 75]: the base is the reading at 0, so the
    # increase is 15 - 10 = 5, not the 15 - 12 = 3 of the readings inside.
    samples = [SignalSample(0.0, 10.0), SignalSample(30.0, 12.0)]
    samples.append(SignalSample(75.0, 15.0))
    assert window_increase(samples, 60.0) == 5.0


def test_window_base_at_most_half_window_early() -> None:
    # The start of [30, 90] less half a window is t = 0: a base at 0 counts.
    samples = [SignalSample(0.0, 10.0), SignalSample(90.0, 15.0)]
    assert window_increase(samples, 60.0) == 5.0


def test_window_base_too_early() -> None:
    # A missed check: readings 120 s apart are two windows, so nothing is compared.
    samples = [SignalSample(0.0, 10.0), SignalSample(120.0, 15.0)]
    assert window_increase(samples, 60.0) is None


def test_window_base_skips_failed_scrape() -> None:
    # The reading at 60 failed, so the base is the one at 0.4 s.
    samples = [SignalSample(0.4, 10.0), SignalSample(60.0, None)]
    samples.append(SignalSample(60.8, 14.0))
    assert window_increase(samples, 60.0) == 4.0


@pytest.mark.parametrize("apart", [59.6, 60.0, 60.4, 61.0])
def test_window_jitter_has_value(apart: float) -> None:
    # A check every 60 s with a 60 s window, the two scrapes off by up to a second.
    samples = [SignalSample(1000.0, 10.0), SignalSample(1000.0 + apart, 16.0)]
    assert window_increase(samples, 60.0) == 6.0


def test_window_jitter_series_each_minute() -> None:
    # Scrapes 60.4 s, 59.6 s and 61 s apart: every one after the first compares the
    # increase since the scrape before it.
    times = [0.0, 60.4, 120.0, 181.0]
    counts = [10.0, 12.0, 15.0, 75.0]
    samples = [SignalSample(t, c) for t, c in zip(times, counts, strict=True)]
    result = evaluate(rule_named("BlockedIpsP0"), samples, interval_seconds=60.0)
    assert result.values == (None, 2.0, 3.0, 60.0)
    assert result.transitions == (Transition(181.0, FIRING),)


def _requests(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    scrape = parse_exposition((FIXTURE / name).read_text())
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for sample in scrape.find("http_requests_total")
        if sample.labels["endpoint"] != "/metrics"
    }


def _is_5xx(key: tuple[tuple[str, str], ...]) -> bool:
    return dict(key)["status_code"].startswith("5")


def test_fixture_restart_detected() -> None:
    _, restarted = counter_increases(
        _requests("scrape-0.txt"), _requests("scrape-1.txt")
    )
    assert restarted


def test_fixture_reset_aware_increases() -> None:
    # After the restart every series counts from 0: 180 + 22 + 410 + 30 requests,
    # of which 22 + 30 are 5xx. The naive difference would be negative.
    increases, _ = counter_increases(
        _requests("scrape-0.txt"), _requests("scrape-1.txt")
    )
    requests = sum(increases.values())
    errors = sum(value for key, value in increases.items() if _is_5xx(key))
    assert requests == 642
    assert errors == 52
    assert round(errors / requests * 100, 2) == 8.10


def test_fixture_two_minute_rule_not_confirmed() -> None:
    # The two scrapes give one error-rate value, 8.10 % at 14:22:00Z. That starts
    # the P0 "> 5 % for 2 minutes" alert pending but cannot confirm it.
    increases, _ = counter_increases(
        _requests("scrape-0.txt"), _requests("scrape-1.txt")
    )
    errors = sum(value for key, value in increases.items() if _is_5xx(key))
    rate = errors / sum(increases.values())
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
