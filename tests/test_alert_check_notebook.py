"""The alert-check notebook run once per simulated minute, as cron would run it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from veerunbook.alert_store import store_path
from veerunbook.config import load_config
from veerunbook.redact import Redactor
from veerunbook.runner import RunOutcome, run_procedure
from veerunbook.simulator import RunningTarget, start_target
from veerunbook.simulator.seed import DEMO_EMAIL, DEMO_PASSWORD

INCIDENT = "INC-20261204-140000-a1b2"
# Replayed clock of minute 0: each run evaluates at T0 + 60 * minute.
T0 = 1_796_392_800.0
# The scenario of each simulated minute's window: healthy 0-1, error spike 2-5.
MINUTES = ["healthy"] * 2 + ["error-spike"] * 4 + ["healthy"]
REQUESTS_PER_MINUTE = 40


@pytest.fixture
def target() -> Iterator[RunningTarget]:
    # No background traffic: the test sends each window's requests itself, so a
    # window holds only requests made under that minute's scenario.
    with start_target("healthy", traffic_rate=0.0, seed=7) as running:
        yield running


def _send_requests(running: RunningTarget) -> None:
    """Request the analytics route, which fails 70 % of the time in error-spike."""
    login = {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
    with httpx.Client(base_url=running.base_url, timeout=10.0) as client:
        token = client.post("/api/auth/login", json=login).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(REQUESTS_PER_MINUTE):
            client.get("/api/dashboard/analytics", headers=headers)


def _run(target: str, archive: Path, minute: int) -> RunOutcome:
    params: dict[str, Any] = {
        "interval_seconds": 60.0,
        "sample_seconds": 1.0,
        "notify": False,
        "replay_time": T0 + 60 * minute,
    }
    return run_procedure(
        "alert-check",
        incident=INCIDENT,
        target=target,
        params=params,
        archive=archive,
        redactor=Redactor(),
    )


def _events(archive: Path) -> list[dict[str, Any]]:
    lines = (archive / INCIDENT / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _transitions(events: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
    return [
        (event["alert"], event["transition"], event["at_unix"])
        for event in events
        if event.get("event") == "note" and "transition" in event
    ]


def _note(events: list[dict[str, Any]], alert: str, change: str) -> dict[str, Any]:
    return next(
        event
        for event in events
        if event.get("alert") == alert and event.get("transition") == change
    )


def _check(events: list[dict[str, Any]], run: str, name: str) -> dict[str, Any]:
    return next(
        event
        for event in events
        if event["event"] == "check" and event["run"] == run and event["name"] == name
    )


def _run_ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["run"] for event in events if event["event"] == "run.started"]


def _has_image(notebook: Path) -> bool:
    cells = json.loads(notebook.read_text())["cells"]
    outputs = [output for cell in cells for output in cell.get("outputs", [])]
    return any("image/png" in output.get("data", {}) for output in outputs)


def test_cron_minutes_fire_and_resolve_once(
    target: RunningTarget, tmp_path: Path
) -> None:
    outcomes = []
    for minute, scenario in enumerate(MINUTES):
        target.set_scenario(scenario)
        _send_requests(target)
        outcomes.append(_run(target.base_url, tmp_path, minute))
    codes = [outcome.exit_code for outcome in outcomes]
    events = _events(tmp_path)
    transitions = _transitions(events)
    error_rate = [item for item in transitions if item[0] == "ErrorRateP0"]
    # Active from minute 2. Firing at minute 4, because 120 s held meets the 2 min
    # hold time (the boundary is inclusive). Resolved at minute 6, when the errors
    # stop.
    assert error_rate == [
        ("ErrorRateP0", "firing", T0 + 240),
        ("ErrorRateP0", "resolved", T0 + 360),
    ]
    firing = [item[0] for item in transitions if item[1] == "firing"]
    assert len(firing) == len(set(firing))
    # AvailabilityP0 (< 95 % for 1 min) fires at minute 3, so the runs of minutes
    # 3-5 end with findings. The pending alerts of minute 2 are warnings only.
    assert codes == [0, 0, 0, 1, 1, 1, 0]
    assert _has_image(outcomes[-1].notebook)
    _check_notes(events)
    _check_notifications(events)


def _check_notes(events: list[dict[str, Any]]) -> None:
    """Check the ErrorRateP0 notes: ISO times, percent values, duration, text."""
    runs = _run_ids(events)
    firing = _note(events, "ErrorRateP0", "firing")
    observed = _check(events, runs[4], "alert ErrorRateP0")["observed"]
    assert firing["since"] == "2026-12-04T14:02:00.000000Z"
    assert firing["at"] == "2026-12-04T14:04:00.000000Z"
    assert firing["unit"] == "%"
    assert firing["threshold"] == 5.0
    assert firing["value"] == observed
    assert firing["text"].startswith("[P0] ErrorRateP0 firing since 14:02:00 UTC (")
    assert firing["text"].endswith(
        f"Run: veerunbook run high-error-rate --target {_run_target(events)}"
    )
    resolved = _note(events, "ErrorRateP0", "resolved")
    # Active from 14:02:00, resolved at the check of 14:06:00: 240 s.
    assert resolved["duration_s"] == 240.0
    assert resolved["value"] == _check(events, runs[6], "alert ErrorRateP0")["observed"]
    assert resolved["text"].startswith(
        "[P0] ErrorRateP0 resolved after 4 min 00 s (now"
    )


def _run_target(events: list[dict[str, Any]]) -> str:
    return str(next(e for e in events if e["event"] == "run.started")["target"])


def _check_notifications(events: list[dict[str, Any]]) -> None:
    """With notify False, a run with transitions warns and the others skip."""
    statuses = [
        _check(events, run, "alert notification")["status"] for run in _run_ids(events)
    ]
    # AvailabilityP0 fires at minute 3, ErrorRateP0 at minute 4, both resolve at 6.
    assert statuses == ["skip", "skip", "skip", "warn", "warn", "skip", "warn"]


def test_pending_rule_check_is_warn(target: RunningTarget, tmp_path: Path) -> None:
    for minute, scenario in enumerate(["healthy", "error-spike"]):
        target.set_scenario(scenario)
        _send_requests(target)
        _run(target.base_url, tmp_path, minute)
    checks = {
        event["name"]: event["status"]
        for event in _events(tmp_path)
        if event.get("event") == "check" and event["name"].startswith("alert ")
    }
    assert checks["alert ErrorRateP0"] == "warn"
    assert checks["alert PoolUtilisationP2"] == "pass"


def test_dead_target_records_scrape_error(tmp_path: Path) -> None:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    outcome = _run(f"http://127.0.0.1:{port}", tmp_path, 0)
    checks = [
        event
        for event in _events(tmp_path)
        if event.get("event") == "check" and event["name"] == "metrics (first scrape)"
    ]
    # A dead target is a finding (exit 1), never a failed run (exit 3).
    assert outcome.exit_code == 1
    assert checks[0]["status"] == "error"


class _Lying(BaseHTTPRequestHandler):
    """A metrics endpoint that responds 200 text/plain without any rule metric."""

    def do_GET(self) -> None:
        body = b"up 1\nprocess_start_time_seconds 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


def test_lying_target_is_finding(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Lying)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        outcome = _run(f"http://127.0.0.1:{server.server_port}", tmp_path, 0)
    finally:
        server.shutdown()
        server.server_close()
    events = _events(tmp_path)
    scrape = _check(events, _run_ids(events)[0], "alert metrics scrape")
    assert outcome.exit_code == 1
    assert scrape["status"] == "error"
    assert "none of the rules' metric families found" in scrape["summary"]


def test_corrupt_store_fails_run(tmp_path: Path) -> None:
    url = _dead_url()
    path = store_path(tmp_path, load_config(None).resolve_target(url).name)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database" * 200)
    outcome = _run(url, tmp_path, 0)
    events = _events(tmp_path)
    store = _check(events, _run_ids(events)[0], "alert sample store")
    finished = next(e for e in events if e["event"] == "run.finished")
    assert outcome.exit_code == 3
    assert store["status"] == "error"
    assert "file is not a database" in store["summary"]
    assert finished["status"] == "failed"
    assert "file is not a database" in finished["reason"]


def _dead_url() -> str:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{bound.getsockname()[1]}"
