"""Recent-change tests with a real git repository and a deployment history server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from veerunbook.changes import (
    Change,
    ChangeHistory,
    parse_time,
    read_changes,
    recent_changes,
)
from veerunbook.config import Target
from veerunbook.probe import Expect, ProbeResult, probe

if TYPE_CHECKING:
    from veerunbook.session import Session

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# parse_time: (value, parsed UTC time or None).
TIMES = [
    ("2026-12-04T15:12:18Z", datetime(2026, 12, 4, 15, 12, 18, tzinfo=UTC)),
    (
        "2026-12-04T15:12:18.123Z",
        datetime(2026, 12, 4, 15, 12, 18, 123000, tzinfo=UTC),
    ),
    ("2026-12-04T16:12:18+01:00", datetime(2026, 12, 4, 15, 12, 18, tzinfo=UTC)),
    ("2026-12-04T10:12:18-05:00", datetime(2026, 12, 4, 15, 12, 18, tzinfo=UTC)),
    ("2026-12-04T15:12:18", datetime(2026, 12, 4, 15, 12, 18, tzinfo=UTC)),
    ("2026-12-04 15:12:18Z", datetime(2026, 12, 4, 15, 12, 18, tzinfo=UTC)),
    ("2026-12-04", datetime(2026, 12, 4, tzinfo=UTC)),
    (None, None),
    ("", None),
    ("yesterday", None),
    ("2026-13-01T00:00:00Z", None),
    ("2026-12-04T25:00:00Z", None),
    ("9999-12-31T23:59:59-01:00", None),
    ("0001-01-01T00:00:00+01:00", None),
    (1796396400, None),
    (["2026-12-04T15:12:18Z"], None),
    (b"2026-12-04T15:12:18Z", None),
]


@pytest.mark.parametrize(("value", "expected"), TIMES)
def test_parse_time(value: Any, expected: datetime | None) -> None:
    assert parse_time(value) == expected


def test_parse_time_is_utc() -> None:
    parsed = parse_time("2026-12-04T16:12:18+01:00")
    assert parsed is not None
    assert parsed.tzinfo is UTC


def test_change_to_row() -> None:
    change = Change(NOW, "deployment", "v2.4.1", "succeeded", "deployment history")
    assert change.to_row() == {
        "time": NOW.isoformat(),
        "kind": "deployment",
        "version": "v2.4.1",
        "description": "succeeded",
        "source": "deployment history",
    }


# A git repository with one commit from three days ago and one from 30 minutes ago.


def git(repo: Path, *args: str, when: datetime | None = None) -> str:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(repo.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Release Bot",
        "GIT_AUTHOR_EMAIL": "release@example.com",
        "GIT_COMMITTER_NAME": "Release Bot",
        "GIT_COMMITTER_EMAIL": "release@example.com",
    }
    if when is not None:
        stamp = f"@{int(when.timestamp())} +0000"
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        env=env,
        capture_output=True,
        check=True,
    )
    return done.stdout.decode("utf-8").strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(
        path,
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "Old schema",
        when=NOW - timedelta(days=3),
    )
    git(
        path,
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "Raise the pool size",
        when=NOW - timedelta(minutes=30),
    )
    return path


# A deployment history endpoint on loopback.


class DeploymentsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: HistoryServer = self.server  # type: ignore[assignment]
        if self.path != "/api/deployments":
            self.send_error(404)
            return
        body = json.dumps(server.body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


class HistoryServer(ThreadingHTTPServer):
    body: Any = None


DEPLOYMENTS = {
    "deployments": [
        {
            "version": "v2.4.1",
            "deployedAt": iso(NOW - timedelta(minutes=10)),
            "status": "succeeded",
            "commitSha": "9f8e7d6",
        },
        {
            "version": "v2.4.0",
            "deployedAt": iso(NOW - timedelta(days=2)),
            "status": "succeeded",
        },
        {"version": "v2.3.9-hotfix", "status": "rolled_back"},
        "not a deployment",
    ]
}


@pytest.fixture
def history() -> Iterator[HistoryServer]:
    server = HistoryServer(("127.0.0.1", 0), DeploymentsHandler)
    server.body = DEPLOYMENTS
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def base_url(server: HistoryServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host!s}:{port}"


# The parts of a Session that recent_changes uses.


@dataclass
class RecordedRun:
    checks: list[dict[str, Any]] = field(default_factory=list)

    def check(self, name: str, status: str, **fields: Any) -> None:
        self.checks.append({"name": name, "status": status, **fields})

    def record_probe(self, result: ProbeResult) -> None:
        self.check(result.name, result.status, summary=result.summary())


@dataclass
class ProbingSession:
    target: Target
    run: RecordedRun = field(default_factory=RecordedRun)
    probes: list[ProbeResult] = field(default_factory=list)

    def probe(
        self, endpoint: str, *, name: str, expect: Expect, record: bool = True
    ) -> ProbeResult:
        result = probe(self.target.url(endpoint), name=name, expect=expect)
        self.probes.append(result)
        if record:
            self.run.record_probe(result)
        return result

    def check(self, name: str) -> dict[str, Any]:
        return next(check for check in self.run.checks if check["name"] == name)


def session_for(
    server: HistoryServer, app_repo: Path | str | None = None, **endpoints: str
) -> ProbingSession:
    target = Target(
        "app",
        base_url(server),
        endpoints={"deployments": "/api/deployments", **endpoints},
        app_repo=str(app_repo) if app_repo else None,
    )
    return ProbingSession(target)


def changes_of(session: ProbingSession, hours: float) -> list[Change]:
    # recent_changes uses only .target, .probe(), .run.check() and
    # .run.record_probe() of a Session.
    return recent_changes(cast("Session", session), hours)


def history_of(session: ProbingSession, hours: float) -> ChangeHistory:
    return read_changes(cast("Session", session), hours)


def test_both_sources(history: HistoryServer, repo: Path) -> None:
    session = session_for(history, repo)
    changes = changes_of(session, hours=6)
    assert [(change.kind, change.version) for change in changes] == [
        ("deployment", "v2.4.1"),
        ("commit", git(repo, "rev-parse", "HEAD")[:12]),
        ("deployment", "v2.3.9-hotfix"),
    ]


def test_commit_fields(history: HistoryServer, repo: Path) -> None:
    commit = changes_of(session_for(history, repo), hours=6)[1]
    assert commit.description == "Raise the pool size"
    assert commit.source == str(repo)
    assert commit.time == NOW - timedelta(minutes=30)


def test_deployment_fields(history: HistoryServer, repo: Path) -> None:
    latest = changes_of(session_for(history, repo), hours=6)[0]
    assert latest.time == NOW - timedelta(minutes=10)
    assert latest.description == "succeeded 9f8e7d6"
    assert latest.source == "deployment history"


def test_undated_deployment_kept(history: HistoryServer) -> None:
    undated = changes_of(session_for(history), hours=6)[-1]
    assert undated.time is None
    assert undated.description == "rolled_back"


def test_check_recorded(history: HistoryServer, repo: Path) -> None:
    session = session_for(history, repo)
    changes_of(session, hours=6)
    check = session.check("recent changes")
    latest = (NOW - timedelta(minutes=10)).strftime("%H:%M:%S")
    assert check["status"] == "warn"
    assert check["observed"] == 3
    assert check["unit"] == "changes"
    assert check["expected"] == "none in the last 6 h"
    assert check["summary"] == f"3 changes; latest deployment v2.4.1 at {latest} UTC"
    assert len(check["evidence"]["changes"]) == 3
    assert check["evidence"]["changes"][0]["version"] == "v2.4.1"
    assert check["evidence"]["unread"] == {}


def test_probe_reaches_history(history: HistoryServer) -> None:
    session = session_for(history)
    changes_of(session, hours=6)
    assert len(session.probes) == 1
    assert session.probes[0].status == "pass"
    assert session.probes[0].name == "deployment history"


def test_history_check_passes(history: HistoryServer) -> None:
    # Three of the four list items are deployments. v2.4.1 (10 min ago) and the
    # undated hotfix are in the last 6 h, but v2.4.0 (2 days ago) is not.
    session = session_for(history)
    changes_of(session, hours=6)
    check = session.check("deployment history")
    assert check["status"] == "pass"
    assert check["summary"] == "3 deployments listed, 2 in the last 6 h"


def test_one_change_singular(history: HistoryServer) -> None:
    history.body = {"deployments": DEPLOYMENTS["deployments"][:1]}
    session = session_for(history)
    changes_of(session, hours=6)
    latest = (NOW - timedelta(minutes=10)).strftime("%H:%M:%S")
    summary = session.check("recent changes")["summary"]
    assert summary == f"1 change; latest deployment v2.4.1 at {latest} UTC"


def test_window_reaches_old_commit(history: HistoryServer, repo: Path) -> None:
    changes = changes_of(session_for(history, repo), hours=24 * 4)
    subjects = [change.description for change in changes if change.kind == "commit"]
    assert subjects == ["Raise the pool size", "Old schema"]


def test_git_skipped_without_repo(history: HistoryServer) -> None:
    session = session_for(history)
    changes_of(session, hours=6)
    skipped = session.check("git history")
    assert skipped["status"] == "skip"
    assert skipped["summary"] == "target 'app' has no app_repo configured"


def test_history_as_bare_list(history: HistoryServer) -> None:
    history.body = DEPLOYMENTS["deployments"]
    changes = changes_of(session_for(history), hours=6)
    assert [change.version for change in changes] == ["v2.4.1", "v2.3.9-hotfix"]


def test_history_missing(history: HistoryServer, repo: Path) -> None:
    session = session_for(history, repo, deployments="/api/releases")
    changes = changes_of(session, hours=6)
    assert [change.kind for change in changes] == ["commit"]
    assert session.probes[0].http_status == 404
    assert session.check("deployment history")["status"] == "fail"


def test_history_missing_commits_warn(history: HistoryServer, repo: Path) -> None:
    session = session_for(history, repo, deployments="/api/releases")
    changes_of(session, hours=6)
    check = session.check("recent changes")
    assert check["status"] == "warn"
    assert "; the deployment history could not be read: HTTP 404" in check["summary"]


def test_history_missing_not_a_pass(history: HistoryServer) -> None:
    session = session_for(history, deployments="/api/releases")
    history_read = history_of(session, hours=6)
    check = session.check("recent changes")
    assert not history_read.deployments_read
    assert check["status"] == "skip"
    assert check["observed"] is None
    assert check["summary"].startswith(
        "the deployment history could not be read: HTTP 404"
    )


def test_history_refused_not_a_pass(tmp_path: Path) -> None:
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    target = Target(
        "app",
        f"http://127.0.0.1:{port}",
        endpoints={"deployments": "/api/deployments"},
    )
    session = ProbingSession(target)
    history_of(session, hours=6)
    assert session.check("deployment history")["status"] == "error"
    check = session.check("recent changes")
    assert check["status"] == "skip"
    assert check["summary"] == (
        "the deployment history could not be read: 127.0.0.1 refused the connection."
    )


def test_history_not_a_list(history: HistoryServer) -> None:
    history.body = {"deployments": "v2.4.1"}
    session = session_for(history)
    assert changes_of(session, hours=6) == []
    check = session.check("deployment history")
    assert check["status"] == "error"
    assert check["summary"].startswith("the response has no deployment list")
    assert session.check("recent changes")["status"] == "skip"


def test_no_changes_passes(history: HistoryServer) -> None:
    history.body = {"deployments": []}
    session = session_for(history)
    assert changes_of(session, hours=6) == []
    check = session.check("recent changes")
    assert check["status"] == "pass"
    assert check["observed"] == 0
    assert check["summary"] == "no deployment in the last 6 h"


def test_no_changes_both_sources(history: HistoryServer, repo: Path) -> None:
    # The newest commit is 30 min old, outside a lookback of 0.1 h (6 min).
    history.body = {"deployments": []}
    session = session_for(history, repo)
    assert changes_of(session, hours=0.1) == []
    check = session.check("recent changes")
    assert check["status"] == "pass"
    assert check["summary"] == "no deployment or commit in the last 0.1 h"


def test_not_a_repository(history: HistoryServer, tmp_path: Path) -> None:
    history.body = {"deployments": []}
    session = session_for(history, tmp_path / "nowhere")
    assert changes_of(session, hours=1.5) == []
    failure = session.check("git history")
    assert failure["status"] == "error"
    assert failure["summary"].startswith("git log: fatal: cannot change to")
    assert session.check("recent changes")["expected"] == "none in the last 1.5 h"


def test_git_unread_not_a_pass(history: HistoryServer, tmp_path: Path) -> None:
    history.body = {"deployments": []}
    session = session_for(history, tmp_path / "nowhere")
    changes_of(session, hours=6)
    check = session.check("recent changes")
    assert check["status"] == "skip"
    assert check["summary"].startswith(
        "no deployment in the last 6 h; the git history could not be read: git log:"
    )


def test_repository_without_commits(history: HistoryServer, tmp_path: Path) -> None:
    history.body = {"deployments": []}
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    session = session_for(history, empty)
    assert changes_of(session, hours=6) == []
    assert session.check("git history")["status"] == "error"


def test_subject_not_utf8(history: HistoryServer, repo: Path) -> None:
    history.body = {"deployments": []}
    message = repo.parent / "message.txt"
    message.write_bytes(b"Caf\xe9 menu fix\n")
    git(
        repo,
        "-c",
        "i18n.commitEncoding=",
        "commit",
        "-q",
        "--allow-empty",
        "-F",
        str(message),
    )
    changes = changes_of(session_for(history, repo), hours=6)
    assert changes[0].description == "Caf\ufffd menu fix"
