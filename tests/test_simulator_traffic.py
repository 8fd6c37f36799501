"""The simulated service's traffic mode, set over HTTP and by the ops command."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_simulator import (
    TOKEN,
    TOKEN_ENV,
    StartTarget,
    client_for,
    login,
    scrape,
    start,
)

from veerunbook.simulator import RunningTarget
from veerunbook.simulator.maintenance import TRAFFIC_FILENAME, TrafficControl

__all__ = ["start"]  # the fixture, imported for pytest

ADMIN = {"Authorization": f"Bearer {TOKEN}"}
SCHEDULE = {"caption": "traffic test", "scheduledAt": "2099-01-01T09:00:00Z"}


@pytest.fixture
def target(start: StartTarget, monkeypatch: pytest.MonkeyPatch) -> RunningTarget:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return start(traffic_rate=0)


def set_mode(client: httpx.Client, mode: str) -> httpx.Response:
    return client.post("/admin/traffic", json={"mode": mode}, headers=ADMIN)


def maintenance(client: httpx.Client) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/health").json()["maintenance"]
    return body


def user_requests(client: httpx.Client) -> float:
    """Count the requests of user routes that the service has recorded."""
    return sum(
        sample.value
        for sample in scrape(client)["http_requests"].samples
        if sample.name == "http_requests_total"
        and sample.labels["endpoint"].startswith("/api/")
    )


def test_default_mode_is_full(target: RunningTarget) -> None:
    with client_for(target) as client:
        assert maintenance(client) == {"mode": "full", "since": None}


def test_admin_sets_stopped(target: RunningTarget) -> None:
    with client_for(target) as client:
        response = set_mode(client, "stopped")
        assert response.status_code == 200
        assert response.json()["mode"] == "stopped"
        assert response.json()["previous"] == "full"
        assert maintenance(client)["mode"] == "stopped"
        assert maintenance(client)["since"] == response.json()["since"]


def test_stopped_refuses_user_routes(target: RunningTarget) -> None:
    with client_for(target) as client:
        headers = login(client)
        set_mode(client, "stopped")
        response = client.get("/api/user", headers=headers)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "120"
        assert response.json()["maintenance"]["mode"] == "stopped"
        assert response.json()["error"] == (
            "Service Unavailable: maintenance, traffic mode stopped"
        )


def test_stopped_keeps_operator_endpoints(target: RunningTarget) -> None:
    with client_for(target) as client:
        set_mode(client, "stopped")
        assert client.get("/health").status_code == 200
        assert client.get("/health/database").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert client.get("/api/deployments").status_code == 200


def test_stopped_is_not_ready(target: RunningTarget) -> None:
    with client_for(target) as client:
        set_mode(client, "stopped")
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "not_ready"
        assert response.json()["maintenance"]["mode"] == "stopped"


def test_health_only_is_ready(target: RunningTarget) -> None:
    with client_for(target) as client:
        headers = login(client)
        set_mode(client, "health-only")
        assert client.get("/readyz").status_code == 200
        assert client.get("/api/user", headers=headers).status_code == 503


def test_read_only_serves_reads(target: RunningTarget) -> None:
    with client_for(target) as client:
        set_mode(client, "read-only")
        headers = login(client)  # the login stays open for reading
        assert client.get("/api/user", headers=headers).status_code == 200
        assert client.get("/api/posts", headers=headers).status_code == 200
        response = client.post("/api/posts/schedule", json=SCHEDULE, headers=headers)
        assert response.status_code == 503


def test_full_serves_writes(target: RunningTarget) -> None:
    with client_for(target) as client:
        headers = login(client)
        set_mode(client, "stopped")
        set_mode(client, "full")
        response = client.post("/api/posts/schedule", json=SCHEDULE, headers=headers)
        assert response.status_code == 201


@pytest.mark.parametrize("body", [{"mode": "paused"}, {"mode": 1}, {}])
def test_invalid_mode_rejected(target: RunningTarget, body: dict[str, Any]) -> None:
    with client_for(target) as client:
        response = client.post("/admin/traffic", json=body, headers=ADMIN)
        assert response.status_code == 400
        assert "stopped, health-only, read-only" in response.json()["error"]
        assert maintenance(client)["mode"] == "full"


def test_mode_needs_token(target: RunningTarget) -> None:
    with client_for(target) as client:
        response = client.post("/admin/traffic", json={"mode": "stopped"})
        assert response.status_code == 401
        assert maintenance(client)["mode"] == "full"


def test_ops_command_sets_mode(target: RunningTarget) -> None:
    command = [*target.ops_command("traffic"), "read-only"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Traffic mode read-only since ")
    with client_for(target) as client:
        assert maintenance(client)["mode"] == "read-only"


def test_ops_rejects_invalid_mode(target: RunningTarget) -> None:
    command = [*target.ops_command("traffic"), "paused"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "invalid traffic mode 'paused'" in done.stderr
    assert not (target.data_dir / TRAFFIC_FILENAME).exists()


def test_background_traffic_pauses(start: StartTarget) -> None:
    target = start(traffic_rate=200)
    with client_for(target) as client:
        TrafficControl(target.data_dir).set_mode("stopped")
        # The generator may finish the tick it was in when the mode changed.
        time.sleep(0.3)
        before = user_requests(client)
        time.sleep(0.5)
        assert user_requests(client) == before
        TrafficControl(target.data_dir).set_mode("full")
        time.sleep(0.5)
        assert user_requests(client) > before


def test_unreadable_file_counts_as_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / TRAFFIC_FILENAME).write_text("{not json", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="veerunbook.simulator"):
        assert TrafficControl(tmp_path).mode() == "full"
    assert "unreadable traffic mode file" in caplog.text
