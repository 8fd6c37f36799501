"""A real Prometheus server on loopback that scrapes an embedded target every second.

``running_prometheus`` starts ``prometheus`` (Debian's package ships version 2.42 as
/usr/bin/prometheus) with a temporary configuration and storage, waits until it is
ready and has scraped the target once, and terminates it on exit. The
``prometheus`` fixture shares one server and target per test module.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from veerunbook.simulator.server import RunningTarget, start_target

PROMETHEUS_HINT = (
    "prometheus was not found on PATH; install the Debian package prometheus "
    "(apt-get install --no-install-recommends prometheus)."
)
JOB = "veefore"
SCRAPE_INTERVAL = "1s"
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0

_CONFIG = """\
global:
  scrape_interval: {interval}
  scrape_timeout: {interval}
  evaluation_interval: {interval}
scrape_configs:
  - job_name: {job}
    static_configs:
      - targets: ["{address}"]
"""


@dataclass(frozen=True)
class PrometheusServer:
    """A started server, the target it scrapes and its log file.

    ``scraped`` is a Unix time by which the server had scraped the target once.
    """

    url: str
    target: RunningTarget
    log_path: Path
    scraped: float


def find_prometheus() -> str:
    """Return the server's path, failing under CI and skipping elsewhere if missing."""
    path = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None
    )
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(PROMETHEUS_HINT)
        pytest.skip(PROMETHEUS_HINT)
    return path


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port: int = listener.getsockname()[1]
        return port


@contextmanager
def running_prometheus(target: RunningTarget) -> Iterator[PrometheusServer]:
    """Run a Prometheus server that scrapes ``target`` once a second."""
    binary = find_prometheus()
    with tempfile.TemporaryDirectory(prefix="veerunbook-prometheus-") as folder:
        work = Path(folder)
        config = work / "prometheus.yml"
        address = f"{target.host}:{target.port}"
        config.write_text(
            _CONFIG.format(interval=SCRAPE_INTERVAL, job=JOB, address=address)
        )
        port = free_port()
        log_path = work / "prometheus.log"
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_scraped(url, log_path, process)
            yield PrometheusServer(url, target, log_path, time.time())
        finally:
            _stop(process)


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    """A healthy embedded target at 50 requests/s and a server that scrapes it."""
    with (
        start_target("healthy", traffic_rate=50.0, seed=7) as target,
        running_prometheus(target) as server,
    ):
        yield server


def _wait_until_scraped(
    url: str, log_path: Path, process: subprocess.Popen[bytes]
) -> None:
    """Wait for /-/ready, then for ``up == 1``: the target's first scrape."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(base_url=url, trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"prometheus exited with code {process.returncode}: {log}")
            if _scraped(client):
                return
            time.sleep(0.2)
    log = log_path.read_text(errors="replace")[-2000:]
    limit = READY_TIMEOUT_SECONDS
    pytest.fail(f"prometheus did not scrape the target within {limit:g} s: {log}")


def _scraped(client: httpx.Client) -> bool:
    try:
        if client.get("/-/ready").status_code != 200:
            return False
        response = client.get("/api/v1/query", params={"query": f'up{{job="{JOB}"}}'})
    except httpx.TransportError:
        return False
    result = response.json()["data"]["result"]
    return bool(result) and result[0]["value"][1] == "1"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server, which then flushes its storage, or kill it if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
