"""Tests of the benchmark helpers in bench/: statistics, the table, child processes,
the process-tree sampler, the embedded target and the figure selection."""

from __future__ import annotations

import json
import platform
import socket
import sys
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from common import MB, BenchError, Goal, Row, format_number, format_table, spread  # noqa: E402
from machine import machine_facts  # noqa: E402
from processes import embedded_target, free_port, run_command, sample_tree  # noqa: E402
from reused import _optional_module, _parse_load  # noqa: E402
from run import select, write_json  # noqa: E402

ALLOCATE_50MB = "x = bytearray(50_000_000); import time; time.sleep(1)"


def test_median_of_odd_list() -> None:
    assert Row("x", "s", [3.0, 1.0, 2.0]).median == 2.0


def test_median_of_even_list() -> None:
    assert Row("x", "s", [4.0, 1.0, 3.0, 2.0]).median == 2.5


def test_spread_of_known_list() -> None:
    assert spread([3.0, 1.0, 2.0]) == (1.0, 3.0)


def test_spread_of_empty_list_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        spread([])


def test_row_ratio_to_reference() -> None:
    assert Row("x", "s", [2.0, 4.0, 6.0], reference=8.0).ratio == 0.5


def test_row_ratio_to_median_goal() -> None:
    row = Row("x", "ms", [75.0], goal=Goal("<", 150.0, on="median"))
    assert row.ratio == 0.5


def test_row_goal_on_ratio_met() -> None:
    row = Row("x", "s", [1.0], reference=4.0, goal=Goal("<=", 0.4))
    assert row.met is True


def test_row_goal_on_ratio_missed() -> None:
    row = Row("x", "s", [2.0], reference=4.0, goal=Goal("<=", 0.4))
    assert row.met is False


def test_row_goal_on_median() -> None:
    row = Row("x", "MB", [260.0, 240.0, 255.0], goal=Goal("<", 250.0, on="median"))
    assert row.met is False


def test_row_extra_condition_fails_goal() -> None:
    goal = Goal(">=", 200.0, on="median")
    row = Row("x", "req/s", [230.0], goal=goal, extra_ok=False)
    assert row.met is False


def test_row_without_goal_has_no_verdict() -> None:
    assert Row("x", "s", [1.0]).met is None


def test_row_without_samples_has_no_verdict() -> None:
    row = Row("x", "s", [], goal=Goal("<", 1.0, on="median"), note="not available")
    assert row.met is None


def test_row_json_fields() -> None:
    document = Row("x", "s", [1.0, 3.0, 2.0], reference=4.0).to_json()
    assert document["median"] == 2.0
    assert document["min"] == 1.0
    assert document["max"] == 3.0
    assert document["ratio"] == 0.5
    assert document["met"] is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (123456.7, "123,457"),
        (123.4, "123"),
        (12.34, "12.3"),
        (1.234, "1.23"),
        (0.0, "0.00"),
        (0.01234, "0.0123"),
    ],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text


def test_table_aligns_columns() -> None:
    rows = [
        Row("papermill", "s", [2.4, 2.5, 2.3], note="the reference"),
        Row("triage", "s", [4.0], reference=2.4, goal=Goal("<=", 0.4)),
    ]
    lines = format_table(rows).splitlines()
    cells = ("median", "2.40", "4.00")
    starts = {line.index(cell) for line, cell in zip(lines, cells, strict=True)}
    assert len(starts) == 1


def test_table_shows_values() -> None:
    rows = [Row("triage", "s", [4.0, 3.0, 5.0], reference=2.0, goal=Goal("<=", 0.4))]
    line = format_table(rows).splitlines()[1].split()
    assert line == [
        "triage",
        "4.00",
        "s",
        "3.00-5.00",
        "s",
        "2.00",
        "s",
        "2.00",
        "ratio",
        "<=",
        "0.4",
        "NO",
    ]


def test_table_shows_not_available_row() -> None:
    row = Row("metrics parsing", "", [], note="not available: bench/x.py is missing")
    assert "not available" in format_table([row])


def test_table_refers_failure_below() -> None:
    row = Row("triage", "", [], note="failed: exit code 3\n" + "detail " * 40)
    assert "failed (see below)" in format_table([row])


def test_table_omits_spread_of_one_sample() -> None:
    line = format_table([Row("parse", "series/s", [1234.0])]).splitlines()[1]
    assert line.split()[3] == "-"


def test_sampler_sees_child_memory(tmp_path: Path) -> None:
    peak = sample_tree([sys.executable, "-c", ALLOCATE_50MB], cwd=tmp_path)
    assert peak.rss > 40 * MB
    assert peak.uss > 40 * MB
    assert peak.pss > 40 * MB


def test_sampler_sums_descendants(tmp_path: Path) -> None:
    # The parent allocates nothing, so only its child can lift the sum past 40 MB.
    parent = (
        "import subprocess, sys; "
        f"subprocess.run([sys.executable, '-c', {ALLOCATE_50MB!r}], check=True)"
    )
    peak = sample_tree([sys.executable, "-c", parent], cwd=tmp_path)
    assert peak.rss > 40 * MB


def test_sampler_raises_on_exit_code(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="exited with code 4"):
        sample_tree([sys.executable, "-c", "raise SystemExit(4)"], cwd=tmp_path)


def test_run_command_raises_with_output(tmp_path: Path) -> None:
    code = "print('disk full'); raise SystemExit(3)"
    with pytest.raises(BenchError, match=r"(?s)exited with code 3.*disk full"):
        run_command([sys.executable, "-c", code], cwd=tmp_path)


def test_run_command_accepts_listed_code(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "raise SystemExit(1)"]
    assert run_command(argv, cwd=tmp_path, ok_codes=(0, 1)) > 0


def test_run_command_writes_log(tmp_path: Path) -> None:
    log = tmp_path / "output.txt"
    run_command([sys.executable, "-c", "print('throughput 1 req/s')"], log=log)
    assert log.read_text() == "throughput 1 req/s\n"


def test_run_command_timeout_stops_grandchild(tmp_path: Path) -> None:
    log = tmp_path / "output.txt"
    parent = (
        "import subprocess, sys, time; "
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(60)']; "
        "child = subprocess.Popen(sleeper); "
        "print(child.pid, flush=True); time.sleep(60)"
    )
    with pytest.raises(BenchError, match="timed out"):
        run_command([sys.executable, "-c", parent], timeout=5, log=log)
    child = int(log.read_text().split()[0])
    stopped = not psutil.pid_exists(child)
    if not stopped:
        # Without a reaping init in the container, the stopped child stays a zombie.
        stopped = psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert stopped


def test_free_port_is_bindable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", free_port()))


def test_embedded_target_serves_and_stops(tmp_path: Path) -> None:
    veerunbook = Path(sys.executable).parent / "veerunbook"
    data = tmp_path / "data"
    data.mkdir()
    with embedded_target(veerunbook, data, tmp_path) as url:
        assert httpx.get(f"{url}/health").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")


def test_select_adds_reference() -> None:
    assert [figure.name for figure in select("triage")] == ["papermill", "triage"]


def test_select_keeps_run_order() -> None:
    names = [figure.name for figure in select("memory,import")]
    assert names == ["import", "memory"]


def test_select_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown figure bogus"):
        select("bogus")


def test_write_json_replaces_file(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text("old")
    write_json(path, {"figures": {}})
    assert json.loads(path.read_text()) == {"figures": {}}
    assert [p.name for p in tmp_path.iterdir()] == ["bench.json"]


def test_missing_script_is_not_available() -> None:
    assert _optional_module("no_such_bench_script") is None


def test_load_output_parsed(tmp_path: Path) -> None:
    output = tmp_path / "load.txt"
    output.write_text(
        "requests       600 in 2.75 s\n"
        "throughput     218.6 req/s\n"
        "errors         2\n"
        "  /health: HTTP 503\n"
    )
    assert _parse_load(output) == (218.6, 2)


def test_load_output_without_figures_raises(tmp_path: Path) -> None:
    output = tmp_path / "load.txt"
    output.write_text("Traceback (most recent call last):\n")
    with pytest.raises(BenchError, match="no throughput"):
        _parse_load(output)


def test_machine_facts() -> None:
    facts = machine_facts()
    assert isinstance(facts["cpu_count"], int)
    assert facts["cpu_count"] > 0
    assert facts["python"] == platform.python_version()
