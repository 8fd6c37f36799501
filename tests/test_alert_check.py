from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

from veerunbook.alert_check import check_alerts
from veerunbook.alert_check_lock import check_lock
from veerunbook.alert_eval import AlertState, SignalSample
from veerunbook.alert_rules import Signal
from veerunbook.alert_store import store_path
from veerunbook.config import load_config

T0 = 1_796_392_800.0


class _Source:
    """Samples of a fixed error rate every 60 s, as a Prometheus server returns."""

    def __init__(self, rates: dict[float, float | None]) -> None:
        self.rates = rates

    def read(self, signal: Signal, start: float, end: float) -> list[SignalSample]:
        if signal is not Signal.ERROR_RATE:
            return []
        return [
            SignalSample(time, value)
            for time, value in sorted(self.rates.items())
            if start <= time <= end
        ]


def _dead_url() -> str:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{bound.getsockname()[1]}"


def test_second_check_skipped_while_locked(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    folder = store_path(tmp_path, target.name).parent
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        result = check_alerts(target, tmp_path, now=T0, sample_seconds=0.1)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    assert result.skipped is not None
    assert f"pid {holder.pid}" in result.skipped


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from veerunbook.alert_check_lock import check_lock
with check_lock(Path(sys.argv[1])) as held:
    print("locked" if held is None else "held", flush=True)
    time.sleep(60)
"""


def test_lock_free_after_release(tmp_path: Path) -> None:
    with check_lock(tmp_path) as first:
        assert first is None
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(_take(tmp_path)))
    thread.start()
    thread.join()
    assert seen == [None]


def _take(folder: Path) -> object:
    with check_lock(folder) as held:
        return held


def test_source_transitions_once(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    # 8 % errors from minute 0: ErrorRateP0 (> 5 % for 2 min) fires at minute 2.
    rates: dict[float, float | None] = {T0 + 60 * m: 0.08 for m in range(4)}
    source = _Source(rates)
    found = []
    for minute in range(4):
        now = T0 + 60 * minute
        result = check_alerts(target, tmp_path, now=now, source=source)
        found += [(c.rule.name, c.transition, c.time) for c in result.transitions]
    p0 = [item for item in found if item[0] == "ErrorRateP0"]
    assert p0 == [("ErrorRateP0", "firing", T0 + 120)]


def test_failed_evaluation_resolves(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    rates: dict[float, float | None] = {T0 + 60 * m: 0.08 for m in range(3)}
    rates[T0 + 180] = None  # a failed scrape
    source = _Source(rates)
    states = []
    for minute in range(4):
        result = check_alerts(target, tmp_path, now=T0 + 60 * minute, source=source)
        states.append(result.rules[0].state)
    assert states[2] is AlertState.FIRING
    assert states[3] is AlertState.INACTIVE
    assert [c.transition for c in result.transitions] == ["resolved"]


def test_dead_target_stores_none(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    result = check_alerts(target, tmp_path, now=T0, sample_seconds=0.1)
    assert result.scrape_error is not None
    assert result.values[Signal.ERROR_RATE] is None
