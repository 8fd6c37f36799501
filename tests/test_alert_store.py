from pathlib import Path

import pytest

from veerunbook.alert_eval import AlertState, SignalSample, Transition, evaluate
from veerunbook.alert_rules import Signal, rule_named
from veerunbook.alert_store import (
    RuleState,
    SampleStore,
    StoredSpan,
    store_path,
    target_slug,
)
from veerunbook.errors import StoreError, UsageError


def test_store_under_archive(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "demo") as store:
        assert store.path == store_path(tmp_path, "demo")
    assert store_path(tmp_path, "demo").is_file()


def test_store_uses_wal(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "demo") as store:
        assert store.journal_mode() == "wal"


def test_append_and_read_back(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "demo") as store:
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
    with SampleStore(tmp_path, "demo") as store:
        for time in (0.0, 15.0, 30.0, 45.0):
            store.append(time, {Signal.MEMORY_RATIO: 0.5})
        times = [sample.time for sample in store.read(Signal.MEMORY_RATIO, 15.0, 30.0)]
        assert times == [15.0, 30.0]


def test_missing_value_round_trip(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "demo") as store:
        store.append(15.0, {Signal.POOL_UTILISATION: None})
        assert store.read(Signal.POOL_UTILISATION, 0.0, 60.0) == [
            SignalSample(15.0, None)
        ]


def test_duplicate_scrape_rejected(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "demo") as store:
        store.append(15.0, {Signal.ERROR_RATE: 0.01})
        with pytest.raises(UsageError, match="already stored"):
            store.append(15.0, {Signal.P95_MS: 100.0, Signal.ERROR_RATE: 0.03})
        # The rejected scrape stored nothing, not even its new p95 value.
        assert store.read(Signal.P95_MS, 0.0, 60.0) == []
        assert store.read(Signal.ERROR_RATE, 0.0, 60.0) == [SignalSample(15.0, 0.01)]


def test_samples_survive_reopen(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "demo") as store:
        store.append(15.0, {Signal.BLOCKED_IPS_PER_MIN: 42.0})
    with SampleStore(tmp_path, "demo") as store:
        assert store.read(Signal.BLOCKED_IPS_PER_MIN, 0.0, 60.0) == [
            SignalSample(15.0, 42.0)
        ]


def test_reader_sees_committed_scrape(tmp_path: Path) -> None:
    with (
        SampleStore(tmp_path, "demo") as writer,
        SampleStore(tmp_path, "demo") as reader,
    ):
        writer.append(15.0, {Signal.ERROR_RATE: 0.2})
        assert reader.read(Signal.ERROR_RATE, 0.0, 60.0) == [SignalSample(15.0, 0.2)]


def test_stored_samples_evaluate(tmp_path: Path) -> None:
    # Error rate 8 % every 15 s from t = 0 to 120: ErrorRateP0 fires at t = 120.
    with SampleStore(tmp_path, "demo") as store:
        for step in range(9):
            store.append(step * 15.0, {Signal.ERROR_RATE: 0.08})
        samples = store.read(Signal.ERROR_RATE, 0.0, 120.0)
    result = evaluate(rule_named("ErrorRateP0"), samples, interval_seconds=15.0)
    assert result.transitions == (Transition(120.0, AlertState.FIRING),)


def test_store_per_target(tmp_path: Path) -> None:
    path = store_path(tmp_path, "http://127.0.0.1:8080")
    assert path.parent.parent == tmp_path / "alerts"
    assert path.parent.name.startswith("http-127.0.0.1-8080-")


def test_slugs_never_collide() -> None:
    # Both names map to the same safe text, so only the hash keeps them apart.
    assert target_slug("a/b") != target_slug("a:b")


def test_prune_drops_old_samples(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "demo") as store:
        for time in (0.0, 60.0, 120.0):
            store.append(time, {Signal.ERROR_RATE: 0.0})
        assert store.prune(before=60.0) == 1
        times = [s.time for s in store.read(Signal.ERROR_RATE, 0.0, 200.0)]
        assert times == [60.0, 120.0]


def test_last_scrape_keeps_newest(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "demo") as store:
        for time in (0.0, 60.0, 120.0, 180.0):
            store.save_scrape(time, f"body {time}")
        latest = store.last_scrape(before=1000.0)
        earlier = store.last_scrape(before=180.0)
        oldest = store.last_scrape(before=60.0)
    assert latest is not None
    assert latest.body == "body 180.0"
    assert earlier is not None
    assert earlier.time == 120.0
    # Only the newest three bodies are kept, so the one at 0 s is gone.
    assert oldest is None


def test_rule_state_round_trip(tmp_path: Path) -> None:
    state = RuleState("ErrorRateP0", "firing", 120.0, 240.0)
    with SampleStore(tmp_path, "demo") as store:
        store.set_rule_state(state)
    with SampleStore(tmp_path, "demo") as store:
        assert store.rule_states() == {"ErrorRateP0": state}


def test_corrupt_store_raises_store_error(tmp_path: Path) -> None:
    path = store_path(tmp_path, "broken")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database" * 200)
    with pytest.raises(StoreError) as raised:
        SampleStore(tmp_path, "broken")
    assert raised.value.path == str(path)
    assert raised.value.reason == "file is not a database"
    assert raised.value.fix.startswith("Move the file aside")


def test_states_and_outbox_committed_together(tmp_path: Path) -> None:
    state = RuleState("ErrorRateP0", "firing", 100.0, 220.0)
    with SampleStore(tmp_path, "t") as store:
        store.commit_states([state], [(220.0, "[P0] ErrorRateP0 firing")])
    with SampleStore(tmp_path, "t") as store:
        states = store.rule_states()
        queued = store.outbox()
    assert states == {"ErrorRateP0": state}
    assert [(entry.time, entry.text) for entry in queued] == [
        (220.0, "[P0] ErrorRateP0 firing")
    ]


def test_failed_commit_stores_no_state(tmp_path: Path) -> None:
    state = RuleState("ErrorRateP0", "firing", 100.0, 220.0)
    with SampleStore(tmp_path, "t") as store:
        # A NULL text violates the outbox's NOT NULL, so the state rolls back too.
        with pytest.raises(StoreError):
            store.commit_states([state], [(220.0, None)])  # type: ignore[list-item]
        assert store.rule_states() == {}


def test_newest_time_of_samples(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "t") as store:
        empty = store.newest_time()
        store.append(60.0, {Signal.UP: 1.0})
        store.append(120.0, {Signal.UP: 1.0})
        newest = store.newest_time()
    assert empty is None
    assert newest == 120.0


def test_newest_time_at_most(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "t") as store:
        store.append(60.0, {Signal.UP: 1.0})
        store.append(120.0, {Signal.UP: 1.0})
        assert store.newest_time(at_most=100.0) == 60.0


def test_delete_after_drops_samples_and_scrapes(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "t") as store:
        for moment in (60.0, 120.0, 180.0):
            store.append(moment, {Signal.UP: 1.0, Signal.ERROR_RATE: 0.0})
            store.save_scrape(moment, "up 1\n")
        span = store.delete_after(60.0)
        newest = store.newest_time()
        scrape = store.last_scrape(1000.0)
        again = store.delete_after(60.0)
    # Two checks (120 and 180 s) of two signals each.
    assert span == StoredSpan(2, 120.0, 180.0)
    assert newest == 60.0
    assert scrape is not None
    assert scrape.time == 60.0
    assert again is None


def test_span_after_changes_nothing(tmp_path: Path) -> None:
    with SampleStore(tmp_path, "t") as store:
        store.append(60.0, {Signal.UP: 1.0})
        store.append(120.0, {Signal.UP: 1.0})
        span = store.span_after(60.0)
        newest = store.newest_time()
    assert span == StoredSpan(1, 120.0, 120.0)
    assert newest == 120.0
