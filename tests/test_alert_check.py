from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from veerunbook import session as vr_session
from veerunbook.alert_check import check_alerts
from veerunbook.alert_check_lock import check_lock
from veerunbook.alert_check_plot import firing_spans, plot_history
from veerunbook.alert_check_result import CheckResult, RuleStatus, transition_text
from veerunbook.alert_check_steps import AlertCheck
from veerunbook.alert_eval import AlertState, SignalSample
from veerunbook.alert_rules import ALERT_RULES, Signal, rule_named
from veerunbook.alert_store import RuleState, SampleStore, store_path
from veerunbook.alert_units import (
    clock_text,
    condition_text,
    duration_text,
    rule_quantity,
)
from veerunbook.cli import main
from veerunbook.config import load_config
from veerunbook.record import RunContext, start_run

T0 = 1_796_392_800.0  # 2026-12-04 14:00:00 UTC


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


def _journal(run: RunContext) -> list[dict[str, Any]]:
    lines = (run.incident_dir / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _transition_notes(run: RunContext) -> list[dict[str, Any]]:
    return [e for e in _journal(run) if e["event"] == "note" and "transition" in e]


def test_quick_look_keeps_transition(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    # 8 % errors from minute 0: ErrorRateP0 (> 5 % for 2 min) fires at minute 2.
    source = _Source({T0 + 60 * m: 0.08 for m in range(4)})
    for minute in range(3):
        now = T0 + 60 * minute
        check_alerts(target, tmp_path, now=now, source=source, record_states=False)
    run = start_run("alert-check", incident="INC-QUICK", archive=str(tmp_path))
    check_alerts(target, tmp_path, now=T0 + 180, source=source, run=run)
    run.finish()
    notes = [n for n in _transition_notes(run) if n["alert"] == "ErrorRateP0"]
    assert [n["transition"] for n in notes] == ["firing"]
    # Active since minute 0 (14:00:00 UTC), the journaling check at minute 3.
    assert notes[0]["since"] == "2026-12-04T14:00:00.000000Z"
    assert notes[0]["since_unix"] == T0
    assert notes[0]["at"] == "2026-12-04T14:03:00.000000Z"
    assert notes[0]["at_unix"] == T0 + 180


def test_firing_note_in_display_unit(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    source = _Source({T0 + 60 * m: 0.08 for m in range(3)})
    run = start_run("alert-check", incident="INC-UNIT", archive=str(tmp_path))
    for minute in range(3):
        check_alerts(target, tmp_path, now=T0 + 60 * minute, source=source, run=run)
    run.finish()
    note = next(n for n in _transition_notes(run) if n["alert"] == "ErrorRateP0")
    # A ratio of 0.08 is 8 %, against the 5 % threshold.
    assert note["value"] == 8.0
    assert note["threshold"] == 5.0
    assert note["unit"] == "%"
    assert "duration_s" not in note
    assert note["text"] == (
        "[P0] ErrorRateP0 firing since 14:00:00 UTC (8 %, alert above 5 % for 2 min):"
        " More than 5.0% of user requests failed with a 5xx status for 2 minutes."
        f" Run: veerunbook run high-error-rate --target {target.name}"
    )


def test_resolved_note_has_duration(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    rates: dict[float, float | None] = {T0 + 60 * m: 0.08 for m in range(4)}
    rates[T0 + 240] = 0.004  # 0.4 %, below every error rate threshold
    source = _Source(rates)
    run = start_run("alert-check", incident="INC-RESOLVE", archive=str(tmp_path))
    for minute in range(5):
        check_alerts(target, tmp_path, now=T0 + 60 * minute, source=source, run=run)
    run.finish()
    notes = [n for n in _transition_notes(run) if n["alert"] == "ErrorRateP0"]
    resolved = notes[-1]
    # Active from 14:00:00 until the check at 14:04:00: 240 s.
    assert resolved["transition"] == "resolved"
    assert resolved["duration_s"] == 240.0
    assert resolved["value"] == 0.4
    assert resolved["text"] == "[P0] ErrorRateP0 resolved after 4 min 00 s (now 0.4 %)"


def test_failed_scrape_resolve_text(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    with SampleStore(tmp_path, target.name) as store:
        store.set_rule_state(RuleState("ErrorRateP0", "firing", T0 - 240, T0 - 60))
    result = check_alerts(target, tmp_path, now=T0, sample_seconds=0.1)
    change = next(c for c in result.transitions if c.rule.name == "ErrorRateP0")
    text = transition_text(change, result)
    assert change.transition == "resolved"
    assert text.startswith(
        "[P0] ErrorRateP0 resolved after 4 min 00 s: no value, the scrape failed:"
        " metrics (first scrape)"
    )
    assert "firing" not in text


def test_cli_check_keeps_rule_states(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _dead_url()
    target = load_config(None).resolve_target(url)
    firing = RuleState("ErrorRateP0", "firing", T0 - 240, T0 - 60)
    with SampleStore(tmp_path, target.name) as store:
        store.set_rule_state(firing)
    argv = ["alerts", "check", "--target", url, "--archive", str(tmp_path)]
    code = main([*argv, "--sample-seconds", "0.1"])
    out = capsys.readouterr().out
    with SampleStore(tmp_path, target.name) as store:
        states = store.rule_states()
    # The dead target resolves ErrorRateP0, but only the scheduled check may store it.
    assert code == 1
    assert states == {"ErrorRateP0": firing}
    assert "scrape failed: metrics (first scrape)" in out


def test_cli_lines_show_since(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _dead_url()
    argv = ["alerts", "check", "--target", url, "--archive", str(tmp_path)]
    main([*argv, "--sample-seconds", "0.1"])
    lines = capsys.readouterr().out.splitlines()
    down = next(line for line in lines if " TargetDownP0 " in line)
    rate = next(line for line in lines if " ErrorRateP0 " in line)
    assert down.startswith("pending  P0 TargetDownP0")
    assert " since " in down
    assert down.endswith(" UTC")
    assert rate.endswith("no value (alert above 5 % for 2 min)")


def _closed_pipe_run(args: list[str]) -> tuple[int, str]:
    """Run the command line with its standard output's read end already closed."""
    command = [str(Path(sys.executable).parent / "veerunbook"), *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    process.stdout.close()
    _, stderr = process.communicate()
    return process.returncode, stderr


def test_check_broken_pipe_keeps_code(tmp_path: Path) -> None:
    args = ["alerts", "check", "--target", _dead_url(), "--archive", str(tmp_path)]
    code, stderr = _closed_pipe_run([*args, "--sample-seconds", "0.1"])
    # The dead target's failed scrape gives exit code 1, not 3 for a write error.
    assert code == 1
    assert "Broken pipe" not in stderr
    assert "BrokenPipeError" not in stderr


def test_list_broken_pipe_quiet() -> None:
    code, stderr = _closed_pipe_run(["list"])
    assert code == 1
    assert stderr == ""


def test_duration_text_forms() -> None:
    assert duration_text(45.0) == "45 s"
    assert duration_text(240.0) == "4 min 00 s"
    # 2 h + 4 min + 5 s = 7445 s.
    assert duration_text(7445.0) == "2 h 04 min 05 s"


def test_clock_text_is_utc() -> None:
    # T0 + 22 min 30 s = 14:22:30 UTC.
    assert clock_text(T0 + 1350) == "14:22:30 UTC"


def test_condition_text_per_unit() -> None:
    assert condition_text(rule_named("ErrorRateP2")) == "alert above 0.5 % for 15 min"
    assert (
        condition_text(rule_named("ResponseTimeP95P1"))
        == "alert above 2000 ms for 5 min"
    )
    assert condition_text(rule_named("BlockedIpsP0")) == "alert above 50 per 60 s"


def test_quantity_three_digits() -> None:
    # 0.26345 of requests is 26.345 %, shown to three significant digits.
    assert rule_quantity(rule_named("ErrorRateP0"), 0.26345) == "26.3 %"
    assert rule_quantity(rule_named("ResponseTimeP95P1"), 2150.4) == "2150 ms"
    assert rule_quantity(rule_named("ErrorRateP0"), None) == "no value"


def _steps(tmp_path: Path, result: CheckResult) -> AlertCheck:
    session = vr_session.begin("alert-check", target=_dead_url(), archive=str(tmp_path))
    return AlertCheck(session, result)


def _blocked_result() -> CheckResult:
    """A check where the blocked-IP counter is 1200 and rose 63 in 60 s."""
    statuses = tuple(
        RuleStatus(rule, AlertState.INACTIVE, None, None) for rule in ALERT_RULES
    )
    statuses = tuple(
        RuleStatus(s.rule, AlertState.FIRING, 63.0, T0 + 1350)
        if s.rule.name == "BlockedIpsP0"
        else s
        for s in statuses
    )
    values: dict[Signal, float | None] = dict.fromkeys(Signal)
    values[Signal.BLOCKED_IPS_PER_MIN] = 1200.0
    values[Signal.ERROR_RATE] = 0.02
    return CheckResult(time=T0 + 1350, target="prod", values=values, rules=statuses)


def test_signals_table_counter_increase(tmp_path: Path) -> None:
    steps = _steps(tmp_path, _blocked_result())
    table = steps.signals_table()
    steps.session.close()
    assert isinstance(table, pd.DataFrame)
    row = table.set_index("signal").loc["blocked_ips_per_min"]
    # BlockedIpsP0 and P1 share the 60 s window, so one increase is shown.
    assert row["value"] == 1200.0
    assert row["unit"] == "total"
    assert row["increase"] == "63 per 60 s"


def test_signals_table_no_nan(tmp_path: Path) -> None:
    steps = _steps(tmp_path, _blocked_result())
    table = steps.signals_table()
    steps.session.close()
    assert isinstance(table, pd.DataFrame)
    assert not table.isna().any().any()
    row = table.set_index("signal").loc["p95_ms"]
    assert row["value"] == "no value"
    assert row["reason"] == "no user request in the window"


def test_rules_table_since_column(tmp_path: Path) -> None:
    steps = _steps(tmp_path, _blocked_result())
    table = steps.rules_table()
    steps.session.close()
    assert isinstance(table, pd.DataFrame)
    assert not table.isna().any().any()
    rows = table.set_index("rule")
    assert rows.loc["BlockedIpsP0", "since"] == "14:22:30 UTC"
    assert rows.loc["BlockedIpsP0", "value"] == 63.0
    assert rows.loc["BlockedIpsP0", "threshold"] == "> 50 per 60 s"
    assert rows.loc["ErrorRateP0", "since"] == ""


def test_firing_spans_of_stored_rate() -> None:
    # 8 % at minutes 0-4, 0 % at minute 5: ErrorRateP0 fires at minute 2 (held
    # 2 min) and resolves at minute 5.
    samples = [SignalSample(T0 + 60 * m, 0.08) for m in range(5)]
    samples.append(SignalSample(T0 + 300, 0.0))
    rule = rule_named("ErrorRateP0")
    spans = firing_spans(rule, samples, interval_seconds=60.0, end=T0 + 400)
    assert spans == [(T0 + 120, T0 + 300)]


def test_firing_span_open_until_end() -> None:
    samples = [SignalSample(T0 + 60 * m, 0.08) for m in range(4)]
    rule = rule_named("ErrorRateP0")
    spans = firing_spans(rule, samples, interval_seconds=60.0, end=T0 + 180)
    assert spans == [(T0 + 120, T0 + 180)]


def test_plot_labels_tiers_and_utc() -> None:
    errors = [SignalSample(T0 + 60 * m, 0.08) for m in range(5)]
    p95 = [SignalSample(T0 + 60 * m, 900.0) for m in range(5)]
    figure = plot_history(errors, p95, start=T0, now=T0 + 240, interval_seconds=60.0)
    rate_axis, p95_axis = figure.axes
    rate_labels = [text.get_text() for text in rate_axis.get_legend().get_texts()]
    p95_labels = [text.get_text() for text in p95_axis.get_legend().get_texts()]
    assert "P0: 5 % for 2 min" in rate_labels
    assert "P2: 0.5 % for 15 min" in rate_labels
    assert "ErrorRateP0 firing" in rate_labels
    assert "P1: 2000 ms for 5 min" in p95_labels
    assert p95_axis.get_xlabel() == "time (UTC)"
    assert p95_axis.xaxis.get_major_formatter().fmt == "%H:%M"
    assert rate_axis.get_ylabel() == "5xx error rate (%)"
