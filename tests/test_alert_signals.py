from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.httpfixture import RawServer, replay, response_bytes
from veerunbook.alert_check import check_alerts
from veerunbook.alert_check_scrape import measure_signals
from veerunbook.alert_rules import Signal
from veerunbook.alert_signals import signal_values
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
