"""Database passwords in DATABASE_URL forms that urllib cannot split, end to end.

Each test runs ``veerunbook run database-connection`` in a subprocess with a planted
password in DATABASE_URL, then searches every archived file and the terminal output
for it. The target is either a small loopback server whose database health endpoint
echoes the password (a driver error passed on by the application), or the simulator
together with a PostgreSQL cluster whose blocking session's query text holds it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.pgcluster import APP_USER, DATABASE, PgCluster
from veerunbook.simulator import start_target

UNPARSEABLE = "postgresql://(unparseable; not shown)"

# DATABASE_URL (with {port}, where nothing listens), the planted password, a part of
# it that must not show on its own either, and the URL's expected shown form.
URL_CASES = {
    "keyword dsn": (
        "host=127.0.0.1 port={port} dbname=appdb user=app password=monpass-7777",
        "monpass-7777",
        "monpass",
        "dbname=appdb host=127.0.0.1 password=*** port={port} user=app",
    ),
    "hash in password": (
        "postgresql://app:Pl4nt#ed-pw-7c1e@127.0.0.1:{port}/appdb",
        "Pl4nt#ed-pw-7c1e",
        "ed-pw-7c1e",
        "postgresql://app:***@127.0.0.1:{port}/appdb",
    ),
    "question mark in password": (
        "postgresql://app:Pl4nt?ed-pw-7c1e@127.0.0.1:{port}/appdb",
        "Pl4nt?ed-pw-7c1e",
        "ed-pw-7c1e",
        "postgresql://app:***@127.0.0.1:{port}/appdb",
    ),
    # libpq reads "pa" as the port and "ss-Word4@127.0.0.1:{port}/appdb" as the
    # database name.
    "slash in password": (
        "postgresql://app:pa/ss-Word4@127.0.0.1:{port}/appdb",
        "pa/ss-Word4",
        "ss-Word4",
        UNPARSEABLE,
    ),
    # libpq reads "p4ss" as the password and "w0rd-9c@127.0.0.1" as the host.
    "at sign in password": (
        "postgresql://app:p4ss@w0rd-9c@127.0.0.1:{port}/appdb",
        "p4ss@w0rd-9c",
        "w0rd-9c",
        UNPARSEABLE,
    ),
}


def run_database_connection(
    target: str, database_url: str, archive: Path
) -> subprocess.CompletedProcess[str]:
    """Run the database-connection procedure in a subprocess with its own archive."""
    environment = {**os.environ, "VEERUNBOOK_ARCHIVE": str(archive)}
    for name in ("VEEFORE_ADMIN_TOKEN", "VEERUNBOOK_CONFIG", "VEERUNBOOK_DEMO_URL"):
        environment.pop(name, None)
    environment["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "veerunbook.cli", "run", "database-connection",
         "--target", target, "-p", "window_seconds", "1"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=240,
    )  # fmt: skip


def archived_texts(archive: Path) -> dict[Path, str]:
    return {
        path: path.read_bytes().decode("utf-8", errors="replace")
        for path in archive.rglob("*")
        if path.is_file()
    }


def database_url_check(archive: Path) -> dict[str, Any]:
    journal = next(archive.rglob("journal.jsonl")).read_text(encoding="utf-8")
    events = [json.loads(line) for line in journal.splitlines()]
    return next(
        event
        for event in events
        if event.get("event") == "check" and event.get("name") == "database URL"
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _echo_handler(password: str) -> type[BaseHTTPRequestHandler]:
    class EchoHandler(BaseHTTPRequestHandler):
        """A target whose database health endpoint echoes a database password."""

        def do_GET(self) -> None:
            if self.path == "/health/database":
                error = f"auth failed for password {password}"
                self._send(503, {"status": "unhealthy", "error": error})
            elif self.path.startswith("/health/logs"):
                self._send(200, {"logs": []})
            else:
                self._send(404, {"error": "not found"})

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    return EchoHandler


@contextlib.contextmanager
def echo_target(password: str) -> Iterator[str]:
    """Serve the echoing target on a free loopback port; yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _echo_handler(password))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass(frozen=True)
class EchoRun:
    """One run against the echoing target, with the case it ran."""

    case: str
    port: int
    done: subprocess.CompletedProcess[str]
    archive: Path

    @property
    def password(self) -> str:
        return URL_CASES[self.case][1]

    @property
    def part(self) -> str:
        return URL_CASES[self.case][2]

    @property
    def terminal(self) -> str:
        return self.done.stdout + self.done.stderr


@pytest.fixture(scope="module", params=sorted(URL_CASES))
def echo_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> EchoRun:
    case = str(request.param)
    template, password, _, _ = URL_CASES[case]
    archive = tmp_path_factory.mktemp("archive")
    port = closed_port()
    with echo_target(password) as target:
        done = run_database_connection(target, template.format(port=port), archive)
    return EchoRun(case, port, done, archive)


def test_echo_run_fails(echo_run: EchoRun) -> None:
    assert echo_run.done.returncode == 1, echo_run.done.stderr[-2000:]


def test_echo_password_not_archived(echo_run: EchoRun) -> None:
    for path, text in archived_texts(echo_run.archive).items():
        assert echo_run.password not in text, path
        assert echo_run.part not in text, path


def test_echo_password_not_printed(echo_run: EchoRun) -> None:
    assert echo_run.password not in echo_run.terminal
    assert echo_run.part not in echo_run.terminal


def test_echo_is_journaled_masked(echo_run: EchoRun) -> None:
    journal = next(echo_run.archive.rglob("journal.jsonl")).read_text()
    assert "auth failed for password ***" in journal


def test_echo_run_shows_url_masked(echo_run: EchoRun) -> None:
    evidence = database_url_check(echo_run.archive)["evidence"]
    shown = URL_CASES[echo_run.case][3]
    assert evidence["shown"] == shown.format(port=echo_run.port)


def test_echo_run_evidence_parts(echo_run: EchoRun) -> None:
    evidence = database_url_check(echo_run.archive)["evidence"]
    parseable = URL_CASES[echo_run.case][3] != UNPARSEABLE
    assert evidence["host"] == ("127.0.0.1" if parseable else None)
    assert evidence["port"] == (str(echo_run.port) if parseable else None)
    assert evidence["database"] == ("appdb" if parseable else None)
    assert evidence["user"] == ("app" if parseable else None)


def test_echo_run_names_no_port(echo_run: EchoRun) -> None:
    assert "invalid port" not in echo_run.terminal


@contextlib.contextmanager
def blocking_session(cluster: PgCluster, literal: str) -> Iterator[None]:
    """Hold a row lock with a statement whose text starts with ``literal``.

    A second session waits for the row, so the holder is a root blocker and the
    procedure's lock table shows its last query (cut to 50 characters).
    """
    holder = cluster.open_app("report-job")
    statement = sql.SQL(
        "SELECT {} AS note FROM workspaces WHERE id = 'ws_1' FOR UPDATE"
    ).format(sql.Literal(literal))
    holder.execute(statement)
    waiter = threading.Thread(target=_wait_for_row, args=(cluster,))
    try:
        waiter.start()
        assert cluster.wait_for(
            "SELECT count(*) = 1 FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND application_name = 'report-waiter'"
        )
        yield
    finally:
        holder.rollback()
        waiter.join(30)
        holder.close()


def _wait_for_row(cluster: PgCluster) -> None:
    with cluster.open_app("report-waiter") as conn:
        conn.execute("SET lock_timeout = '60s'")
        conn.execute("UPDATE workspaces SET plan = plan WHERE id = 'ws_1'")
        conn.rollback()


def test_keyword_dsn_password_in_query_text(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    password = pg_cluster.app_password
    dsn = (
        f"host=127.0.0.1 port={pg_cluster.port} dbname={DATABASE} "
        f"user={APP_USER} password={password}"
    )
    with (
        start_target("healthy") as running,
        blocking_session(pg_cluster, password),
    ):
        done = run_database_connection(running.base_url, dsn, tmp_path)
    texts = archived_texts(tmp_path)
    notebook = next(text for path, text in texts.items() if path.suffix == ".ipynb")
    # The blocker's statement reached the notebook, with the literal masked.
    assert "SELECT '***' AS note" in notebook
    for path, text in texts.items():
        assert password not in text, path
    assert password not in done.stdout + done.stderr
