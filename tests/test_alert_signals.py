from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from tests.httpfixture import RawServer, replay, response_bytes
from veerunbook.alert_check import check_alerts
from veerunbook.alert_check_scrape import measure_signals
from veerunbook.alert_eval import AlertState, SignalSample, evaluate
from veerunbook.alert_rules import Signal, rule_named
from veerunbook.alert_signals import counter_increase, signal_values
from veerunbook.alert_store import StoredScrape
from veerunbook.config import Target
from veerunbook.metrics_parse import parse_exposition
from veerunbook.metrics_scrape import Scrape
from veerunbook.record import RunContext
from veerunbook.redact import Redactor

FIXTURE = Path(__file__).parent / "fixtures" / "veefore-counter-reset-between-scrapes"


def _scrape(name: str, at: float) -> Scrape:
    text = (FIXTURE / name).read_text(encoding="utf-8")
    return parse_exposition(text, scraped_at=at)


def test_counter_reset_error_rate() -> None:
    values = signal_values(_scrape("scrape-0.txt", 0.0), _scrape("scrape-1.txt", 120.0))
    # After the restart every series counts from 0. User requests without /metrics:
    # 180 + 22 + 410 + 30 = 642, of which 5xx 22 + 30 = 52, so 52 / 642 = 8.10 %.
    assert values[Signal.ERROR_RATE] == pytest.approx(52 / 642)
    assert values[Signal.AVAILABILITY] == pytest.approx(1 - 52 / 642)


def test_single_scrape_has_no_window() -> None:
    values = signal_values(None, _scrape("scrape-1.txt", 120.0))
    assert values[Signal.ERROR_RATE] is None
    assert values[Signal.P95_MS] is None


def test_connection_failures_unmeasured() -> None:
    values = signal_values(None, _scrape("scrape-1.txt", 120.0))
    assert values[Signal.DB_CONNECTION_FAILURES_PER_MIN] is None


def test_signal_values_leave_out_up() -> None:
    values = signal_values(_scrape("scrape-0.txt", 0.0), _scrape("scrape-1.txt", 120.0))
    assert Signal.UP not in values


BLOCKED = "security_blocked_ips_total"


def _blocked(at: float, *lines: str, started: float = 1000.0) -> Scrape:
    """Parse a scrape of the blocked-IP counter, one ``{labels} value`` per line."""
    text = "# TYPE security_blocked_ips_total counter\n"
    text += "".join(f"{BLOCKED}{line}\n" for line in lines)
    text += f"process_start_time_seconds {started}\n"
    return parse_exposition(text, scraped_at=at)


def test_blocked_is_increase() -> None:
    # brute 200 -> 230 and scan 300 -> 305: 30 + 5 = 35.
    before = _blocked(0.0, '{reason="brute"} 200', '{reason="scan"} 300')
    after = _blocked(60.0, '{reason="brute"} 230', '{reason="scan"} 305')
    assert signal_values(before, after)[Signal.BLOCKED_IPS_PER_MIN] == 35.0


def test_blocked_needs_before() -> None:
    after = _blocked(60.0, '{reason="brute"} 230')
    assert signal_values(None, after)[Signal.BLOCKED_IPS_PER_MIN] is None


def test_blocked_absent_counter_unmeasured() -> None:
    before = _blocked(0.0, '{reason="brute"} 200')
    assert counter_increase(before, _blocked(60.0), BLOCKED) is None


def test_vanished_series_adds_nothing() -> None:
    # brute 200 -> 201 and scan 300 -> gone: 1 + 0. The sum 500 -> 201 would look
    # like a reset and count 201.
    before = _blocked(0.0, '{reason="brute"} 200', '{reason="scan"} 300')
    after = _blocked(60.0, '{reason="brute"} 201')
    assert counter_increase(before, after, BLOCKED) == 1.0


def test_vanished_series_no_alert() -> None:
    # Increases at t = 60 and 120: 1 and 1, far below BlockedIpsP0's 50.
    scrapes = [
        _blocked(0.0, '{reason="brute"} 200', '{reason="scan"} 300'),
        _blocked(60.0, '{reason="brute"} 201'),
        _blocked(120.0, '{reason="brute"} 202'),
    ]
    samples = [SignalSample(0.0, None)]
    for before, after in pairwise(scrapes):
        value = counter_increase(before, after, BLOCKED)
        samples.append(SignalSample(float(after.scraped_at or 0.0), value))
    result = evaluate(rule_named("BlockedIpsP0"), samples, interval_seconds=60.0)
    assert result.values == (None, None, 1.0)
    assert set(result.states) == {AlertState.INACTIVE}


def test_new_series_counts_from_first() -> None:
    # brute 200 -> 203 and scan new at 4: 3 + 0, as increase() gives nothing for a
    # series' first sample.
    before = _blocked(0.0, '{reason="brute"} 200')
    after = _blocked(60.0, '{reason="brute"} 203', '{reason="scan"} 4')
    assert counter_increase(before, after, BLOCKED) == 3.0


def test_relabelled_series_counts_nothing() -> None:
    # The same 5000 blocked addresses under a new label set: nothing new blocked.
    before = _blocked(0.0, '{reason="brute"} 5000')
    after = _blocked(60.0, '{reason="brute",pod="b"} 5000')
    assert counter_increase(before, after, BLOCKED) == 0.0


def test_returning_series_counts_nothing() -> None:
    # scan 300 is missing from the middle scrape and returns at 300: 0 each time.
    first = _blocked(0.0, '{reason="brute"} 200', '{reason="scan"} 300')
    middle = _blocked(60.0, '{reason="brute"} 200')
    last = _blocked(120.0, '{reason="brute"} 200', '{reason="scan"} 300')
    assert counter_increase(first, middle, BLOCKED) == 0.0
    assert counter_increase(middle, last, BLOCKED) == 0.0


def test_relabelled_series_no_alert() -> None:
    # 5000 relabelled at t = 60, 5001 at t = 120: increases 0 and 1, far below
    # BlockedIpsP0's 50.
    scrapes = [
        _blocked(0.0, '{reason="brute"} 5000'),
        _blocked(60.0, '{reason="brute",pod="b"} 5000'),
        _blocked(120.0, '{reason="brute",pod="b"} 5001'),
    ]
    samples = [SignalSample(0.0, 0.0)]
    for before, after in pairwise(scrapes):
        value = counter_increase(before, after, BLOCKED)
        samples.append(SignalSample(float(after.scraped_at or 0.0), value))
    result = evaluate(rule_named("BlockedIpsP0"), samples, interval_seconds=60.0)
    assert result.values == (None, 0.0, 1.0)
    assert set(result.states) == {AlertState.INACTIVE}


def test_new_series_after_restart_counts() -> None:
    # process_start_time_seconds 1000 -> 1050: every series counts from 0, the new
    # scan series too: 10 + 4 = 14.
    before = _blocked(0.0, '{reason="brute"} 200')
    after = _blocked(60.0, '{reason="brute"} 10', '{reason="scan"} 4', started=1050.0)
    assert counter_increase(before, after, BLOCKED) == 14.0


def test_duplicate_series_first_kept() -> None:
    # brute 5 (and a duplicate 5) -> 7 (and a duplicate 100): 7 - 5 = 2, not 5 + 5.
    before = _blocked(0.0, '{reason="brute"} 5', '{reason="brute"} 5')
    after = _blocked(60.0, '{reason="brute"} 7', '{reason="brute"} 100')
    assert counter_increase(before, after, BLOCKED) == 2.0


def test_huge_series_sum_unmeasured() -> None:
    # Two series rising by 1e308 each: the sum overflows to infinity, so no value.
    before = _blocked(0.0, '{reason="a"} 0', '{reason="b"} 0')
    after = _blocked(60.0, '{reason="a"} 1e308', '{reason="b"} 1e308')
    assert counter_increase(before, after, BLOCKED) is None


def test_huge_duplicate_counts_once() -> None:
    # 1e308 twice under one label set: the first is kept, 1e308 - 0 = 1e308.
    before = _blocked(0.0, '{reason="a"} 0')
    after = _blocked(60.0, '{reason="a"} 1e308', '{reason="a"} 1e308')
    assert counter_increase(before, after, BLOCKED) == 1e308


def test_nonfinite_series_left_out() -> None:
    # scan is NaN later, brute 3 -> 5: 2.
    before = _blocked(0.0, '{reason="brute"} 3', '{reason="scan"} 1')
    after = _blocked(60.0, '{reason="brute"} 5', '{reason="scan"} NaN')
    assert counter_increase(before, after, BLOCKED) == 2.0


def test_reset_series_counts_new_value() -> None:
    # The same process: brute 200 -> 250 is 50, scan 300 -> 5 was reset, so 5.
    before = _blocked(0.0, '{reason="brute"} 200', '{reason="scan"} 300')
    after = _blocked(60.0, '{reason="brute"} 250', '{reason="scan"} 5')
    assert counter_increase(before, after, BLOCKED) == 55.0


def test_restart_counts_from_zero() -> None:
    # process_start_time_seconds 1000 -> 1050: the process restarted, so every
    # series counts from 0: 250 + 5 = 255.
    before = _blocked(0.0, '{reason="brute"} 200', '{reason="scan"} 300')
    after = _blocked(60.0, '{reason="brute"} 250', '{reason="scan"} 5', started=1050.0)
    assert counter_increase(before, after, BLOCKED) == 255.0


@dataclass
class _Context:
    """The fields of an alert check's context that ``measure_signals`` reads."""

    target: Target
    now: float = 1_796_394_120.0
    sample_seconds: float = 0.1
    run: RunContext | None = None
    redactor: Redactor | None = None
    progress: Callable[[str], None] | None = None


def _previous() -> StoredScrape:
    body = (FIXTURE / "scrape-0.txt").read_text(encoding="utf-8")
    return StoredScrape(1_796_394_000.0, body)


def test_scrape_success_sets_up() -> None:
    body = (FIXTURE / "scrape-1.txt").read_bytes()
    raw = response_bytes(body, "text/plain; version=0.0.4")
    with RawServer(replay(raw)) as server:
        target = Target(name="veefore", base_url=server.url("").rstrip("/"))
        measurement = measure_signals(_Context(target), _previous())
    assert measurement.error is None
    assert measurement.values[Signal.UP] == 1.0
    assert measurement.values[Signal.ERROR_RATE] == pytest.approx(52 / 642)


def test_scrape_failure_sets_up_zero() -> None:
    raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    with RawServer(replay(raw)) as server:
        target = Target(name="veefore", base_url=server.url("").rstrip("/"))
        measurement = measure_signals(_Context(target), _previous())
    assert measurement.error is not None
    assert measurement.values[Signal.UP] == 0.0
    assert measurement.values[Signal.ERROR_RATE] is None


def test_refused_first_scrape_sets_up_zero() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
    measurement = measure_signals(_Context(Target(name="veefore", base_url=url)), None)
    assert measurement.error is not None
    assert measurement.values[Signal.UP] == 0.0


def test_dead_target_fires_target_down(tmp_path: Path) -> None:
    # Two failed checks 60 s apart: UP is 0 for 60 s, TargetDownP0's hold time.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{bound.getsockname()[1]}"
    target = Target(name="veefore", base_url=url)
    found = []
    for minute in range(2):
        now = 1_796_394_000.0 + 60 * minute
        result = check_alerts(target, tmp_path, now=now, sample_seconds=0.1)
        found += [(c.rule.name, c.transition, c.time) for c in result.transitions]
    assert found == [("TargetDownP0", "firing", 1_796_394_060.0)]
