from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest

from veerunbook import session as vr_session
from veerunbook.alert_check import check_alerts, check_option
from veerunbook.alert_check_lock import LockHeld, check_lock
from veerunbook.alert_check_plot import firing_spans, plot_history
from veerunbook.alert_check_result import CheckResult, RuleStatus, transition_text
from veerunbook.alert_check_steps import AlertCheck
from veerunbook.alert_eval import AlertState, SignalSample
from veerunbook.alert_rules import ALERT_RULES, Signal, rule_named
from veerunbook.alert_store import RuleState, SampleStore, StoredScrape, store_path
from veerunbook.alert_units import (
    clock_text,
    condition_text,
    duration_text,
    rule_quantity,
)
from veerunbook.cli import main
from veerunbook.config import load_config
from veerunbook.errors import UsageError
from veerunbook.record import RunContext, start_run
from veerunbook.redact import Redactor

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
    code = main([*argv, "--sample-seconds", "1"])
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
    main([*argv, "--sample-seconds", "1"])
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
    code, stderr = _closed_pipe_run([*args, "--sample-seconds", "1"])
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
    values[Signal.BLOCKED_IPS_PER_MIN] = 12.0
    values[Signal.ERROR_RATE] = 0.02
    return CheckResult(time=T0 + 1350, target="prod", values=values, rules=statuses)


def test_signals_table_counter_increase(tmp_path: Path) -> None:
    steps = _steps(tmp_path, _blocked_result())
    table = steps.signals_table()
    steps.session.close()
    assert isinstance(table, pd.DataFrame)
    row = table.set_index("signal").loc["blocked_ips_per_min"]
    # BlockedIpsP0 and P1 share the 60 s window, so one increase is shown.
    assert row["value"] == 12.0
    assert row["unit"] == "since previous check"
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


class _Lying(BaseHTTPRequestHandler):
    """A metrics endpoint that responds 200 text/plain with a fixed body."""

    body: ClassVar[bytes] = b"up 1\nprocess_start_time_seconds 1\n"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def lying() -> Iterator[str]:
    _Lying.body = b"up 1\nprocess_start_time_seconds 1\n"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Lying)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_lying_target_is_down(tmp_path: Path, lying: str) -> None:
    target = load_config(None).resolve_target(lying)
    with SampleStore(tmp_path, target.name) as store:
        store.set_rule_state(RuleState("ErrorRateP0", "firing", T0 - 240, T0 - 60))
    result = check_alerts(target, tmp_path, now=T0, sample_seconds=0.1)
    assert result.scrape_error is not None
    assert "none of the rules' metric families found" in result.scrape_error
    assert "http_requests_total" in result.scrape_error
    assert result.values[Signal.UP] == 0.0
    assert result.values[Signal.ERROR_RATE] is None


def test_lying_target_run_has_error(tmp_path: Path, lying: str) -> None:
    target = load_config(None).resolve_target(lying)
    run = start_run("alert-check", incident="INC-LIE", archive=str(tmp_path))
    check_alerts(target, tmp_path, now=T0, sample_seconds=0.1, run=run)
    status = run.finish()
    scrape = next(c for c in run.checks if c.name == "alert metrics scrape")
    assert scrape.status == "error"
    assert status == "findings"


def test_html_body_is_failed_scrape(tmp_path: Path, lying: str) -> None:
    _Lying.body = b"<html><body>maintenance</body></html>\n"
    target = load_config(None).resolve_target(lying)
    result = check_alerts(target, tmp_path, now=T0, sample_seconds=0.1)
    assert result.scrape_error is not None
    assert result.values[Signal.UP] == 0.0


def test_failed_scrape_named_once(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    result = check_alerts(target, tmp_path, now=T0, sample_seconds=0.1)
    assert result.scrape_error is not None
    assert result.scrape_error.startswith("metrics (first scrape)  ERROR")
    assert result.scrape_error.count("metrics (first scrape)") == 1


def test_cli_corrupt_store_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _dead_url()
    path = store_path(tmp_path, load_config(None).resolve_target(url).name)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not an SQLite database" * 100)
    argv = ["alerts", "check", "--target", url, "--archive", str(tmp_path)]
    code = main([*argv, "--sample-seconds", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert len(err) == 1
    assert str(path) in err[0]
    assert "Move the file aside" in err[0]


def test_cli_unwritable_alerts_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A file where the alerts folder belongs: no folder can be created under it.
    (tmp_path / "alerts").write_text("not a folder")
    argv = ["alerts", "check", "--target", _dead_url(), "--archive", str(tmp_path)]
    code = main([*argv, "--sample-seconds", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3
    assert len(err) == 1
    assert err[0].startswith("veerunbook: error: alert sample store ")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--interval-seconds", "1e-9"),
        ("--interval-seconds", "3601"),
        ("--sample-seconds", "0.5"),
        ("--sample-seconds", "601"),
        ("--sample-seconds", "nan"),
    ],
)
def test_cli_option_bounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    argv = ["alerts", "check", "--target", _dead_url(), "--archive", str(tmp_path)]
    code = main([*argv, option, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith(f"veerunbook: error: invalid {option} ")


def test_option_bounds_from_notebook() -> None:
    # The notebook declares interval_seconds [1..3600] and sample_seconds [1..600].
    check_option("interval_seconds", 1.0)
    check_option("interval_seconds", 3600.0)
    check_option("sample_seconds", 600.0)
    with pytest.raises(UsageError, match=r"\[1\.\.600\]"):
        check_option("sample_seconds", 600.5)


def _seed_store(tmp_path: Path, name: str) -> None:
    """Store samples at T0 and T0 + 60 s and a firing ErrorRateP0."""
    with SampleStore(tmp_path, name) as store:
        for moment in (T0, T0 + 60):
            store.append(moment, {Signal.ERROR_RATE: 0.08, Signal.UP: 1.0})
            store.save_scrape(moment, "http_requests_total 1\n")
        store.set_rule_state(RuleState("ErrorRateP0", "firing", T0 - 120, T0))


def test_clock_behind_changes_nothing(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    _seed_store(tmp_path, target.name)
    run = start_run("alert-check", incident="INC-CLOCK", archive=str(tmp_path))
    # 30 s before the newest stored sample at T0 + 60.
    result = check_alerts(target, tmp_path, now=T0 + 30, run=run, sample_seconds=0.1)
    status = run.finish()
    clock = next(c for c in run.checks if c.name == "alert clock")
    with SampleStore(tmp_path, target.name) as store:
        states = store.rule_states()
        scrape = store.last_scrape(T0 + 61)
        newest = store.newest_time()
    assert result.skipped == "clock behind the newest stored sample by 30 s"
    assert result.rules == ()
    assert result.transitions == ()
    assert clock.status == "error"
    assert status == "findings"
    assert states["ErrorRateP0"].state == "firing"
    assert scrape is not None
    assert scrape.time == T0 + 60
    assert newest == T0 + 60


def test_clock_behind_cli_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _dead_url()
    target = load_config(None).resolve_target(url)
    # A sample 30 s ahead of the clock: a step back within two 60 s intervals.
    with SampleStore(tmp_path, target.name) as store:
        store.append(time.time() + 30, {Signal.UP: 1.0})
    argv = ["alerts", "check", "--target", url, "--archive", str(tmp_path)]
    code = main([*argv, "--sample-seconds", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("skipped: clock behind the newest stored sample by ")


def test_replay_of_stored_time_evaluates(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    _seed_store(tmp_path, target.name)
    result = check_alerts(target, tmp_path, now=T0 + 60, sample_seconds=0.1)
    assert result.skipped is None
    assert len(result.rules) == len(ALERT_RULES)


def test_replay_of_stored_time_read_only(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    _seed_store(tmp_path, target.name)
    run = start_run("alert-check", incident="INC-REPLAY", archive=str(tmp_path))
    result = check_alerts(
        target, tmp_path, now=T0 + 60, run=run, queue_notifications=True
    )
    run.finish()
    with SampleStore(tmp_path, target.name) as store:
        states = store.rule_states()
        scrape = store.last_scrape(T0 + 61)
        outbox = store.outbox()
    notes = [e for e in _journal(run) if e["event"] == "note" and e.get("read_only")]
    # The stored 8 % error rate at T0 and T0 + 60 s: pending, not firing, yet the
    # stored firing state is kept and no resolved transition is reported.
    assert result.values[Signal.ERROR_RATE] == 0.08
    assert result.rules[0].state is AlertState.PENDING
    assert result.transitions == ()
    assert result.read_only is not None
    assert states["ErrorRateP0"] == RuleState("ErrorRateP0", "firing", T0 - 120, T0)
    assert scrape == StoredScrape(T0 + 60, "http_requests_total 1\n")
    assert outbox == []
    assert [c.name for c in run.checks if c.name.startswith("metrics")] == []
    assert len(notes) == 1


def _far_future() -> float:
    """A whole second about three years ahead of the clock."""
    return float(int(time.time()) + 100_000_000)


def test_future_replay_keeps_history(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    hour_ago = float(int(time.time()) - 3600)
    with SampleStore(tmp_path, target.name) as store:
        store.append(hour_ago, {Signal.UP: 1.0})
    check_alerts(target, tmp_path, now=_far_future(), sample_seconds=0.1)
    with SampleStore(tmp_path, target.name) as store:
        kept = store.read(Signal.UP, hour_ago, hour_ago)
    # Pruning two days before the replay time would delete the sample an hour old.
    assert kept == [SignalSample(hour_ago, 1.0)]


def test_future_samples_deleted(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    future = _far_future()
    check_alerts(target, tmp_path, now=future, sample_seconds=0.1)
    with SampleStore(tmp_path, target.name) as store:
        store.save_scrape(future, "http_requests_total 1\n")
    now = float(int(time.time()))
    run = start_run("alert-check", incident="INC-FUTURE", archive=str(tmp_path))
    result = check_alerts(target, tmp_path, now=now, run=run, sample_seconds=0.1)
    run.finish()
    clock = [c for c in run.checks if c.name == "alert clock"]
    with SampleStore(tmp_path, target.name) as store:
        newest = store.newest_time()
        scrape = store.last_scrape(future + 1)
    assert result.skipped is None
    assert len(result.rules) == len(ALERT_RULES)
    assert [c.status for c in clock] == ["warn"]
    assert clock[0].observed == 1
    assert "deleted the samples of 1 checks from " in clock[0].summary
    assert newest == now
    assert scrape is None


def test_no_store_ignores_future(tmp_path: Path) -> None:
    target = load_config(None).resolve_target(_dead_url())
    future = _far_future()
    with SampleStore(tmp_path, target.name) as store:
        store.append(future, {Signal.UP: 1.0})
    result = check_alerts(target, tmp_path, store=False, sample_seconds=0.1)
    with SampleStore(tmp_path, target.name) as store:
        newest = store.newest_time()
    assert result.skipped is None
    assert len(result.rules) == len(ALERT_RULES)
    assert newest == future


_REQUESTS_AND_HEAP = (
    "# TYPE http_requests_total counter\n"
    'http_requests_total{endpoint="/api",status_code="200"} 1000\n'
    'http_requests_total{endpoint="/api",status_code="500"} 100\n'
    "nodejs_heap_size_used_bytes 100000000\n"
    "nodejs_heap_size_limit_bytes 400000000\n"
)
_HEAP_ONLY = (
    "nodejs_heap_size_used_bytes 100000000\nnodejs_heap_size_limit_bytes 400000000\n"
)


def test_vanished_requests_not_quiet(tmp_path: Path, lying: str) -> None:
    target = load_config(None).resolve_target(lying)
    _Lying.body = _REQUESTS_AND_HEAP.encode()
    check_alerts(target, tmp_path, now=T0, sample_seconds=0.1)
    with SampleStore(tmp_path, target.name) as store:
        store.set_rule_state(RuleState("ErrorRateP0", "firing", T0 - 240, T0))
    _Lying.body = _HEAP_ONLY.encode()
    run = start_run("alert-check", incident="INC-GONE", archive=str(tmp_path))
    result = check_alerts(target, tmp_path, now=T0 + 60, run=run)
    run.finish()
    scrape = [c for c in run.checks if c.name == "alert metrics scrape"]
    change = next(c for c in result.transitions if c.rule.name == "ErrorRateP0")
    assert result.scrape_error is None
    assert result.vanished == ("http_requests_total",)
    assert [c.status for c in scrape] == ["warn"]
    assert "http_requests_total" in scrape[0].summary
    assert transition_text(change, result) == (
        "[P0] ErrorRateP0 resolved after 5 min 00 s: no value,"
        " http_requests_total absent from the scrape"
    )
    assert result.missing_reason(Signal.AVAILABILITY) == (
        "http_requests_total absent from the scrape"
    )
    assert result.values[Signal.MEMORY_RATIO] == 0.25


def test_stored_body_masked(tmp_path: Path, lying: str) -> None:
    secret = "Zq8storedsecretvalue"
    _Lying.body = f'http_requests_total{{token="{secret}"}} 5\n'.encode()
    target = load_config(None).resolve_target(lying)
    check_alerts(
        target, tmp_path, now=T0, sample_seconds=0.1, redactor=Redactor([secret])
    )
    with SampleStore(tmp_path, target.name) as store:
        stored = store.last_scrape(T0 + 1)
    assert stored is not None
    assert "http_requests_total" in stored.body
    assert secret not in stored.body


def test_deleted_lock_file_still_locks(tmp_path: Path) -> None:
    seen: list[object] = []
    with check_lock(tmp_path) as first:
        (tmp_path / "check.lock").unlink()
        thread = threading.Thread(target=lambda: seen.append(_take(tmp_path)))
        thread.start()
        thread.join()
    assert first is None
    assert isinstance(seen[0], LockHeld)


def test_moved_folder_locks_anew(tmp_path: Path) -> None:
    # A store folder moved aside takes its lock along, so a new folder is free.
    folder = tmp_path / "store"
    with check_lock(folder) as first:
        folder.rename(tmp_path / "old")
        with check_lock(folder) as second:
            assert first is None
            assert second is None
