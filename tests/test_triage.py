"""Triage's metrics window and its recommendations, against the simulated target.

The target runs on loopback without background traffic, so every request in a
window is one that the test sent.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from veerunbook import session as vr_session
from veerunbook.simulator.server import RunningTarget, start_target
from veerunbook.triage import Triage
from veerunbook.triage_plan import recommend
from veerunbook.triage_tables import Nothing


@pytest.fixture(scope="module")
def healthy() -> Iterator[RunningTarget]:
    with start_target("healthy", traffic_rate=0.0, seed=3) as running:
        yield running


@pytest.fixture(scope="module")
def db_outage() -> Iterator[RunningTarget]:
    with start_target("db-outage", traffic_rate=0.0, seed=3) as running:
        yield running


def begin(url: str, archive: Path) -> Triage:
    session = vr_session.begin("triage-test", target=url, archive=str(archive))
    return Triage(session)


def dead_url() -> str:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{bound.getsockname()[1]}"


def check_names(triage: Triage) -> list[str]:
    return [check.name for check in triage.session.run.checks]


def test_window_spans_window_seconds(healthy: RunningTarget, tmp_path: Path) -> None:
    triage = begin(healthy.base_url, tmp_path)
    triage.start_window(progress=None)
    triage.finish_window(0.3, progress=None)
    triage.session.close()
    before, after = triage.window.before, triage.window.after
    assert before is not None and before.scraped_at is not None
    assert after is not None and after.scraped_at is not None
    assert after.scraped_at - before.scraped_at >= 0.3


def test_window_elapsed_no_wait(healthy: RunningTarget, tmp_path: Path) -> None:
    # The window has passed before finish_window(): no wait and no preparation.
    triage = begin(healthy.base_url, tmp_path)
    triage.start_window(progress=None)
    time.sleep(0.3)
    messages: list[str] = []
    calls: list[str] = []
    triage.finish_window(
        0.2, progress=messages.append, while_waiting=lambda: calls.append("ran")
    )
    triage.session.close()
    assert messages == []
    assert calls == []
    assert triage.window.after is not None


def test_window_while_waiting_once(healthy: RunningTarget, tmp_path: Path) -> None:
    triage = begin(healthy.base_url, tmp_path)
    triage.start_window(progress=None)
    calls: list[str] = []
    triage.finish_window(0.5, progress=None, while_waiting=lambda: calls.append("ran"))
    triage.session.close()
    assert calls == ["ran"]


def test_window_announces_opening(healthy: RunningTarget, tmp_path: Path) -> None:
    triage = begin(healthy.base_url, tmp_path)
    messages: list[str] = []
    triage.start_window(progress=messages.append)
    triage.session.close()
    assert len(messages) == 1
    assert messages[0].startswith("window opened by the first scrape at ")
    assert messages[0].endswith(" UTC")


def test_finish_before_start_raises(healthy: RunningTarget, tmp_path: Path) -> None:
    triage = begin(healthy.base_url, tmp_path)
    with pytest.raises(ValueError, match="start_window"):
        triage.finish_window(0.1, progress=None)
    triage.session.close()


def test_logs_in_window_not_user(healthy: RunningTarget, tmp_path: Path) -> None:
    # The logs endpoint is a health route: reading it inside the window adds no
    # user request, and its route is listed as probe traffic.
    triage = begin(healthy.base_url, tmp_path)
    triage.start_window(progress=None)
    triage.read_error_logs("60m")
    routes = triage.finish_window(0.2, progress=None)
    triage.session.close()
    errors = triage.window.errors
    assert errors is not None
    logs = errors.route("/health/logs")
    assert logs is not None
    assert logs.requests == 1
    assert logs.probe
    assert errors.requests == 0
    assert isinstance(routes, Nothing)


def test_window_journal_order(healthy: RunningTarget, tmp_path: Path) -> None:
    triage = begin(healthy.base_url, tmp_path)
    triage.start_window(progress=None)
    triage.read_error_logs("60m")
    triage.finish_window(0.2, progress=None)
    triage.session.close()
    assert check_names(triage)[:4] == [
        "metrics (first scrape)",
        "error logs",
        "error log entries",
        "metrics (second scrape)",
    ]


def test_first_scrape_failed_no_wait(tmp_path: Path) -> None:
    triage = begin(dead_url(), tmp_path)
    opened: list[str] = []
    waits: list[str] = []
    triage.start_window(progress=opened.append)
    routes = triage.finish_window(30.0, progress=waits.append)
    triage.session.close()
    assert opened == ["the first scrape failed: no error rate or latency in this run"]
    assert waits == []
    assert isinstance(routes, Nothing)
    assert triage.window.problem == "the metrics endpoint gave no usable exposition"
    assert "5xx error rate" not in check_names(triage)


def test_recommend_available(db_outage: RunningTarget, tmp_path: Path) -> None:
    triage = begin(db_outage.base_url, tmp_path)
    triage.probe_health()
    table = recommend(triage)
    triage.session.close()
    assert table["procedure"].tolist() == ["database-connection"]
    assert table["evidence"].tolist() == ["database health check failing"]
    assert table["status"].tolist() == ["available"]


def test_recommend_missing_notebook(
    db_outage: RunningTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "notebooks"
    folder.mkdir()
    monkeypatch.setenv("VEERUNBOOK_NOTEBOOKS", str(folder))
    triage = begin(db_outage.base_url, tmp_path / "archive")
    triage.probe_health()
    table = recommend(triage)
    triage.session.close()
    assert table["status"].tolist() == ["not built yet"]


class _Gate:
    """A loopback server whose health routes respond only once all four are waiting."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.arrived = threading.Barrier(4, timeout=5)
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    gate.arrived.wait()
                    status = 200
                except threading.BrokenBarrierError:
                    status = 503
                body = b'{"status": "ok"}' if status == 200 else b'{"status": "down"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_health_probes_sent_together(tmp_path: Path) -> None:
    # Sent one after another, the first request would wait at the barrier alone
    # until its 5 s timeout and every response would be 503.
    gate = _Gate()
    try:
        triage = begin(gate.url, tmp_path)
        triage.probe_health()
        triage.session.close()
    finally:
        gate.close()
    assert [result.http_status for result in triage.health.values()] == [200] * 4
    names = check_names(triage)
    assert names[:4] == ["health", "healthz", "readyz", "database"]


class _Logs:
    """A loopback server whose log endpoint applies a limit, as the demo's does."""

    def __init__(self, stored: int) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        self.queries: list[dict[str, list[str]]] = []
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                server_self.queries.append(query)
                limit = int(query.get("limit", ["200"])[0])
                entries = [
                    {"level": "error", "time": 1_700_000_000_000 + i, "msg": "boom"}
                    for i in range(min(stored, limit))
                ]
                body = json.dumps({"logs": entries, "limit": limit}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(("stored", "cut"), [(437, False), (1500, True)])
def test_error_logs_limit_reported(tmp_path: Path, stored: int, cut: bool) -> None:
    logs = _Logs(stored)
    try:
        triage = begin(logs.url, tmp_path)
        triage.read_error_logs("60m")
        triage.session.close()
    finally:
        logs.close()
    checks = triage.session.run.checks
    check = next(check for check in checks if check.name == "error log entries")
    assert logs.queries[0]["limit"] == ["1000"]
    assert check.observed == min(stored, 1000)
    assert ("limit was reached" in check.summary) is cut
