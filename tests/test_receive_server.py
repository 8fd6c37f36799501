"""The webhook receiver over HTTP: a real uvicorn on loopback and the CLI process.

Most tests serve the app in this process without runs. One test starts
``veerunbook receive`` as a subprocess against the embedded target, lets it run one
``triage`` for an alert, stops it with SIGTERM during the run and checks that the run
still finished and was journaled.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from veerunbook.cli import main
from veerunbook.incident import load_incident
from veerunbook.journal import Journal
from veerunbook.receive import Receiver
from veerunbook.receive_app import build_app
from veerunbook.receive_server import ReceiverServer

CASE = Path(__file__).parent / "fixtures" / "alertmanager-webhook-v4"
FILES = (
    "01-firing.json",
    "02-mixed-root-says-firing.json",
    "03-resolved.json",
    "04-truncated.json",
)
KNOWN = frozenset({"triage", "high-error-rate"})
ERROR_RATE_INCIDENT = "alert-5f2c1b9a0e7d3c48-20261204T142230"
LATENCY_INCIDENT = "alert-a17e40d3b2c95f61-20261204T142500"
TOKEN = "receiver-test-token-4d1c"
JSON = {"Content-Type": "application/json"}
# A deadline for waiting on the subprocess, not an assertion on its speed.
WAIT_SECONDS = 180.0


def body(name: str) -> bytes:
    return (CASE / name).read_bytes()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    server = ReceiverServer(
        build_app(receiver, max_body_bytes=64 * 1024), "127.0.0.1", 0
    )
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[str]:
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    server = ReceiverServer(build_app(receiver, token=TOKEN), "127.0.0.1", 0)
    server.start()
    yield server.url
    server.stop()


def test_healthz_ok(served: str) -> None:
    assert httpx.get(f"{served}/healthz").status_code == 200


def test_fixtures_in_order(served: str, tmp_path: Path) -> None:
    answers = [httpx.post(served, content=body(n), headers=JSON) for n in FILES]
    assert [a.status_code for a in answers] == [200, 200, 200, 200]
    summaries = [a.json() for a in answers]
    assert [s["accepted"] for s in summaries] == [2, 1, 1, 2]
    assert [s["duplicates"] for s in summaries] == [0, 1, 1, 0]
    assert summaries[3]["truncated"] == (
        "3 alerts of the group missing from the payload (5 in total, 2 present)"
    )


def test_fixtures_leave_incident_state(served: str, tmp_path: Path) -> None:
    for name in FILES[:3]:
        httpx.post(f"{served}/alerts", content=body(name), headers=JSON)
    assert load_incident(tmp_path / ERROR_RATE_INCIDENT).resolved_at is not None
    assert load_incident(tmp_path / LATENCY_INCIDENT).resolved_at is not None
    texts = [
        e["text"]
        for e in Journal(tmp_path / LATENCY_INCIDENT).events()
        if e["event"] == "note"
    ]
    assert len(texts) == 2
    assert "resolved after 33 min 00 s" in texts[1]


@pytest.mark.parametrize(
    ("content", "status", "expected"),
    [
        (b"{not json", 400, "invalid JSON body"),
        (b"[1, 2]", 400, "expected a JSON object"),
        (b'{"version": "4"}', 400, "missing field alerts"),
        (b"[" * 50_000, 400, "nested too deeply"),
        (body(FILES[0]).replace(b'"version": "4"', b'"version": "5"'), 422, "'5'"),
    ],
)
def test_malformed_payload_rejected(
    served: str, content: bytes, status: int, expected: str
) -> None:
    answer = httpx.post(served, content=content, headers=JSON)
    assert answer.status_code == status
    assert expected in answer.json()["error"]


def test_serving_after_malformed_payload(served: str) -> None:
    httpx.post(served, content=b"{not json", headers=JSON)
    answer = httpx.post(served, content=body(FILES[0]), headers=JSON)
    assert answer.status_code == 200


def test_wrong_content_type_is_415(served: str) -> None:
    answer = httpx.post(
        served, content=body(FILES[0]), headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 415


def test_large_body_is_413(served: str) -> None:
    answer = httpx.post(served, content=b" " * (64 * 1024 + 1), headers=JSON)
    assert answer.status_code == 413


def test_large_chunked_body_is_413(served: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    answer = httpx.post(served, content=chunks(), headers=JSON)
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413


# Deadlines and connection limits, with raw sockets that stall on purpose.


def connect(url: str, source: str = "127.0.0.1") -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), source_address=(source, 0))
    sock.settimeout(WAIT_SECONDS)  # a deadline for the test, not an assertion
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_stalled_chunked_body_is_408(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    app = build_app(receiver, body_timeout_seconds=0.5)
    server = ReceiverServer(app, "127.0.0.1", 0)
    server.start()
    try:
        with connect(server.url) as sock:
            sock.sendall(
                b"POST /alerts HTTP/1.1\r\nHost: receiver\r\n"
                b"Content-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
                b'5\r\n{"ver\r\n'
            )
            answer = read_all(sock)
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"request body not received within 0.5 s" in answer


def test_partial_head_closed(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    server = ReceiverServer(
        build_app(receiver), "127.0.0.1", 0, header_timeout_seconds=0.5
    )
    server.start()
    try:
        with connect(server.url) as sock:
            sock.sendall(b"POST /alerts HTTP/1.1\r\nHost: rec")
            answer = read_all(sock)
    finally:
        server.stop()
    assert answer == b""


def test_idle_connection_closed(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    server = ReceiverServer(
        build_app(receiver), "127.0.0.1", 0, header_timeout_seconds=0.5
    )
    server.start()
    try:
        with connect(server.url) as sock:
            answer = read_all(sock)
    finally:
        server.stop()
    assert answer == b""


def start_request(url: str, source: str = "127.0.0.1") -> socket.socket:
    """Open a connection that is inside a webhook request: head sent, body not.

    The server sends ``100 Continue`` once the app reads the body, so the request is
    in progress when this returns.
    """
    sock = connect(url, source)
    sock.sendall(
        b"POST /alerts HTTP/1.1\r\nHost: receiver\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head and (chunk := sock.recv(1024)):
        head += chunk
    assert head.startswith(b"HTTP/1.1 100 ")
    return sock


def healthz_over(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
    return read_all(sock)


def test_concurrency_limit_is_503(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    app = build_app(receiver, max_concurrent_requests=2)
    server = ReceiverServer(app, "127.0.0.1", 0)
    server.start()
    busy = [start_request(server.url) for _ in range(2)]
    try:
        answer = httpx.post(server.url, content=body(FILES[0]), headers=JSON)
    finally:
        for sock in busy:
            sock.close()
        server.stop()
    assert answer.status_code == 503
    assert "the limit is 2" in answer.json()["error"]


def test_idle_connections_not_requests(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    app = build_app(receiver, max_concurrent_requests=2)
    server = ReceiverServer(app, "127.0.0.1", 0)
    server.start()
    idle = [connect(server.url) for _ in range(3)]
    try:
        answer = httpx.post(server.url, content=body(FILES[0]), headers=JSON)
    finally:
        for sock in idle:
            sock.close()
        server.stop()
    assert answer.status_code == 200


def test_oldest_idle_closed_for_post(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The head deadline is longer than the socket timeout, so only the connection
    # cap can close an idle connection before recv() times out.
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    server = ReceiverServer(
        build_app(receiver, token=TOKEN),
        "127.0.0.1",
        0,
        max_connections=3,
        header_timeout_seconds=2 * WAIT_SECONDS,
    )
    server.start()
    oldest, *others = [connect(server.url) for _ in range(3)]
    oldest_port = oldest.getsockname()[1]
    try:
        headers = JSON | {"Authorization": f"Bearer {TOKEN}"}
        answer = httpx.post(server.url, content=body(FILES[0]), headers=headers)
        closed = read_all(oldest)
        still_served = healthz_over(others[0])
    finally:
        for sock in [oldest, *others]:
            sock.close()
        server.stop()
    assert answer.status_code == 200
    assert closed == b""
    assert still_served.startswith(b"HTTP/1.1 200 ")
    assert (
        f"connection from 127.0.0.1:{oldest_port} closed: 4 connections are open, "
        "the limit is 3, and it waited longest for a request head"
    ) in caplog.text


def test_new_connection_closed_when_all_busy(tmp_path: Path) -> None:
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    app = build_app(receiver, body_timeout_seconds=2 * WAIT_SECONDS)
    server = ReceiverServer(app, "127.0.0.1", 0, max_connections=2)
    server.start()
    busy = [start_request(server.url) for _ in range(2)]
    try:
        with connect(server.url) as extra:
            answer = read_all(extra)
    finally:
        for sock in busy:
            sock.close()
        server.stop()
    assert answer == b""


def test_waiting_per_address_limited(tmp_path: Path) -> None:
    # 127.0.0.2 is a loopback address too, so a second client address on this host.
    receiver = Receiver(tmp_path, None, known_procedures=KNOWN)
    server = ReceiverServer(
        build_app(receiver),
        "127.0.0.1",
        0,
        max_waiting_per_client=2,
        header_timeout_seconds=2 * WAIT_SECONDS,
    )
    server.start()
    other_client = connect(server.url, source="127.0.0.2")
    oldest, *others = [connect(server.url) for _ in range(3)]
    try:
        closed = read_all(oldest)
        other_client_served = healthz_over(other_client)
        newest_served = healthz_over(others[-1])
    finally:
        for sock in [other_client, oldest, *others]:
            sock.close()
        server.stop()
    assert closed == b""
    assert other_client_served.startswith(b"HTTP/1.1 200 ")
    assert newest_served.startswith(b"HTTP/1.1 200 ")


def test_long_fingerprint_is_400(served: str) -> None:
    data = json.loads(body(FILES[0]))
    # Longer than the 16,384-character limit of other strings too.
    data["alerts"][0]["fingerprint"] = "f" * 20_000
    answer = httpx.post(served, json=data)
    assert answer.status_code == 400
    assert answer.json()["error"].endswith("20000 characters, the limit is 128.")


def test_get_on_webhook_is_405(served: str) -> None:
    assert httpx.get(served).status_code == 405


def test_missing_token_is_401(guarded: str) -> None:
    answer = httpx.post(guarded, content=body(FILES[0]), headers=JSON)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_wrong_token_is_401(guarded: str) -> None:
    headers = JSON | {"Authorization": "Bearer wrong"}
    assert (
        httpx.post(guarded, content=body(FILES[0]), headers=headers).status_code == 401
    )


def test_right_token_accepted(guarded: str) -> None:
    headers = JSON | {"Authorization": f"Bearer {TOKEN}"}
    assert (
        httpx.post(guarded, content=body(FILES[0]), headers=headers).status_code == 200
    )


# The command line.


def test_invalid_listen_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["receive", "--listen", "127.0.0.1"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "invalid --listen value '127.0.0.1'" in error


def test_missing_token_env_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECEIVER_TEST_TOKEN", raising=False)
    args = ["receive", "--listen", "127.0.0.1:0", "--token-env", "RECEIVER_TEST_TOKEN"]
    assert main(args) == 2
    assert "RECEIVER_TEST_TOKEN" in capsys.readouterr().err


def test_unknown_parameter_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["receive", "--listen", "127.0.0.1:0", "-p", "no_such_parameter", "1"]
    assert main(args) == 2
    assert "no_such_parameter" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name", ["confirm", "force", "force_block", "block", "rotate_keys", "version"]
)
def test_changing_parameter_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    archive = tmp_path / "archive"
    args = ["receive", "--listen", "127.0.0.1:0", "--archive", str(archive)]
    assert main([*args, "-p", name, "alert-aaaa-20261204T140000"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"parameter {name} is not allowed" in error
    assert not archive.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_invalid_dedupe_seconds_exits_2(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    args = ["receive", "--listen", "127.0.0.1:0", "--dedupe-seconds", value]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "--dedupe-seconds must be a finite number of 0 or more" in error


def test_unusable_archive_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["receive", "--listen", "127.0.0.1:0", "--archive", "/dev/null"]
    assert main(args) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "archive '/dev/null' cannot be used" in error


def test_port_in_use_creates_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["receive", "--listen", f"127.0.0.1:{port}", "--archive", str(archive)]
        assert main(args) == 2
    assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err
    assert not archive.exists()


def test_public_address_without_token_warns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # 192.0.2.1 is a documentation address that this host does not have, so the
    # bind fails after the warning and nothing listens.
    args = ["receive", "--listen", "192.0.2.1:0", "--archive", str(tmp_path)]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "warning: listening on 192.0.2.1 without --token-env" in error
    assert "cannot listen on 192.0.2.1:0" in error


def wait_for_event(
    folder: Path, event: str, process: subprocess.Popen[str]
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        for record in Journal(folder).events():
            if record["event"] == event:
                return record
        time.sleep(0.2)
    raise AssertionError(
        f"no {event} event in {folder} (receiver exit {process.poll()})"
    )


def test_alert_runs_triage_end_to_end(tmp_path: Path) -> None:
    data = json.loads(body(FILES[0]))
    data["alerts"] = data["alerts"][1:]  # the latency alert maps to triage
    env = {**os.environ, "VEERUNBOOK_ARCHIVE": str(tmp_path)}
    for name in ("VEEFORE_ADMIN_TOKEN", "DATABASE_URL", "VEERUNBOOK_CONFIG"):
        env.pop(name, None)
    command = [
        sys.executable, "-m", "veerunbook.cli", "receive", "--listen", "127.0.0.1:0",
        "--target", "demo", "--archive", str(tmp_path),
        "-p", "window_seconds", "1", "-p", "log_window_minutes", "1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split(" at ")[1].strip()
        answer = httpx.post(url, json=data)
        assert answer.status_code == 200
        assert answer.json()["runs_queued"] == 1

        # Stop the receiver while the run is in progress: it must finish first.
        folder = tmp_path / LATENCY_INCIDENT
        wait_for_event(folder, "run.started", process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=WAIT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    finished = [e for e in Journal(folder).events() if e["event"] == "run.finished"]
    assert len(finished) == 1
    assert finished[0]["procedure"] == "triage"
    assert finished[0]["status"] in ("ok", "findings")
    # Triage classifies the incident but keeps the title the alert gave it.
    assert load_incident(folder).title.startswith("VeeforeHighLatencyP95")
    assert "run of triage for incident" in stderr
    assert "receiver stopped" in stderr
