from __future__ import annotations

from pathlib import Path

import pytest

from veerunbook.alert_rules import Signal
from veerunbook.alert_signals import signal_values
from veerunbook.metrics_parse import parse_exposition
from veerunbook.metrics_scrape import Scrape

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
