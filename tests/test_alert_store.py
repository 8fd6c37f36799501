from pathlib import Path

import pytest

from veerunbook.alert_eval import AlertState, SignalSample, Transition, evaluate
from veerunbook.alert_rules import Signal, rule_named
from veerunbook.alert_store import SampleStore, store_path
from veerunbook.errors import UsageError


def test_store_under_archive(tmp_path: Path) -> None:
    with SampleStore(tmp_path) as store:
        assert store.path == tmp_path / "alerts" / "samples.sqlite3"
    assert store_path(tmp_path).is_file()


def test_store_uses_wal(tmp_path: Path) -> None:
    with SampleStore(tmp_path) as store:
        assert store.journal_mode() == "wal"


def test_append_and_read_back(tmp_path: Path) -> None:
    with SampleStore(tmp_path) as store:
        store.append(30.0, {Signal.ERROR_RATE: 0.02, Signal.P95_MS: 850.0})
        store.append(15.0, {Signal.ERROR_RATE: 0.01, Signal.P95_MS: 900.0})
        assert store.read(Signal.ERROR_RATE, 0.0, 100.0) == [
            SignalSample(15.0, 0.01),
            SignalSample(30.0, 0.02),
        ]
        assert store.read(Signal.P95_MS, 0.0, 100.0) == [
            SignalSample(15.0, 900.0),
            SignalSample(30.0, 850.0),
        ]


def test_read_range_inclusive(tmp_path: Path) -> None:
    with SampleStore(tmp_path) as store:
        for time in (0.0, 15.0, 30.0, 45.0):
            store.append(time, {Signal.MEMORY_RATIO: 0.5})
        times = [sample.time for sample in store.read(Signal.MEMORY_RATIO, 15.0, 30.0)]
        assert times == [15.0, 30.0]


def test_missing_value_round_trip(tmp_path: Path) -> None:
    with SampleStore(tmp_path) as store:
        store.append(15.0, {Signal.POOL_UTILISATION: None})
        assert store.read(Signal.POOL_UTILISATION, 0.0, 60.0) == [
            SignalSample(15.0, None)
        ]


def test_duplicate_scrape_rejected(tmp_path: Path) -> None:
    with SampleStore(tmp_path) as store:
        store.append(15.0, {Signal.ERROR_RATE: 0.01})
        with pytest.raises(UsageError, match="already stored"):
            store.append(15.0, {Signal.P95_MS: 100.0, Signal.ERROR_RATE: 0.03})
        # The rejected scrape stored nothing, not even its new p95 value.
        assert store.read(Signal.P95_MS, 0.0, 60.0) == []
        assert store.read(Signal.ERROR_RATE, 0.0, 60.0) == [SignalSample(15.0, 0.01)]


def test_samples_survive_reopen(tmp_path: Path) -> None:
    with SampleStore(tmp_path) as store:
        store.append(15.0, {Signal.BLOCKED_IPS_PER_MIN: 42.0})
    with SampleStore(tmp_path) as store:
        assert store.read(Signal.BLOCKED_IPS_PER_MIN, 0.0, 60.0) == [
            SignalSample(15.0, 42.0)
        ]


def test_reader_sees_committed_scrape(tmp_path: Path) -> None:
    with SampleStore(tmp_path) as writer, SampleStore(tmp_path) as reader:
        writer.append(15.0, {Signal.ERROR_RATE: 0.2})
        assert reader.read(Signal.ERROR_RATE, 0.0, 60.0) == [SignalSample(15.0, 0.2)]


def test_stored_samples_evaluate(tmp_path: Path) -> None:
    # Error rate 8 % every 15 s from t = 0 to 120: ErrorRateP0 fires at t = 120.
    with SampleStore(tmp_path) as store:
        for step in range(9):
            store.append(step * 15.0, {Signal.ERROR_RATE: 0.08})
        samples = store.read(Signal.ERROR_RATE, 0.0, 120.0)
    result = evaluate(rule_named("ErrorRateP0"), samples, interval_seconds=15.0)
    assert result.transitions == (Transition(120.0, AlertState.FIRING),)
