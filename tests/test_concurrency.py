"""Twenty runs started at once into one incident: no journal line lost or broken."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from veerunbook.verify import verify

RUNS = 20
NOTEBOOKS = Path(__file__).parent / "notebooks"


def test_concurrent_runs_share_one_journal(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "VEERUNBOOK_ARCHIVE": str(tmp_path),
        "VEERUNBOOK_NOTEBOOKS": str(NOTEBOOKS),
    }
    command = [sys.executable, "-m", "veerunbook.cli", "run", "ok"]
    command += ["--incident", "INC-CONCURRENT", "--target", "http://127.0.0.1:9"]
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(RUNS)
    ]
    results = [process.communicate(timeout=300) for process in processes]
    codes = [process.returncode for process in processes]

    folder = tmp_path / "INC-CONCURRENT"
    lines = (folder / "journal.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    started = {e["run"] for e in events if e["event"] == "run.started"}
    finished = {e["run"] for e in events if e["event"] == "run.finished"}
    opened = [e for e in events if e["event"] == "incident.opened"]
    assert codes == [0] * RUNS, [err[-500:] for _, err in results]
    assert len(started) == RUNS
    assert finished == started
    assert len(opened) == 1
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert verify(folder).ok
    assert len(list((folder / "runs").glob("*.ipynb"))) == RUNS
