"""Run the simulated service with uvicorn in a background thread, on loopback only."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType

import uvicorn

from veerunbook.errors import VeerunbookError
from veerunbook.simulator.app import build_app
from veerunbook.simulator.backups import ensure_baseline_backup
from veerunbook.simulator.maintenance import stale_mode_warning
from veerunbook.simulator.scenarios import get_scenario
from veerunbook.simulator.service import SimulatedService
from veerunbook.simulator.state import DATABASE_FILENAME, Store
from veerunbook.simulator.traffic import TrafficGenerator

logger = logging.getLogger("veerunbook.simulator")

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
GRACEFUL_SHUTDOWN_SECONDS = 3


class RunningTarget:
    """A started simulated service; ``stop()`` it, or use it as a context manager."""

    def __init__(
        self,
        service: SimulatedService,
        server: uvicorn.Server,
        thread: threading.Thread,
        traffic: TrafficGenerator,
        listener: socket.socket,
        temporary_dir: Path | None,
    ) -> None:
        self._service = service
        self._server = server
        self._thread = thread
        self._traffic = traffic
        self._listener = listener
        self._temporary_dir = temporary_dir
        self._stop_lock = threading.Lock()
        self._stopped = False
        host, port = listener.getsockname()[:2]
        self.host: str = host
        self.port: int = port
        url_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{url_host}:{port}"

    @property
    def scenario(self) -> str:
        """Name of the active scenario."""
        return self._service.scenario.name

    @property
    def database_path(self) -> Path:
        """The SQLite file holding accounts, posts, payments, migrations, deploys."""
        return self._service.store.path

    @property
    def data_dir(self) -> Path:
        """The folder holding the database file and ``backups/``."""
        return self._service.store.path.parent

    def set_scenario(self, name: str) -> None:
        """Switch to scenario ``name``; raise ValueError if it is unknown.

        The effects of the scenario left behind, a deployed release or changed
        rows, stay until a rollback or a restore removes them.
        """
        self._service.set_scenario(get_scenario(name))

    def ops_command(self, name: str) -> list[str]:
        """Return the argv of operation ``name`` on this target's data directory.

        Append the operation's argument (a version or backup name) where it takes
        one. Raises ValueError for an unknown operation.
        """
        # Imported here, because importing the module that ``python -m`` runs from
        # the package would make runpy warn about it.
        from veerunbook.simulator.ops import OPERATIONS

        if name not in OPERATIONS:
            known = ", ".join(OPERATIONS)
            raise ValueError(f"unknown operation {name!r}; choose one of: {known}")
        module = "veerunbook.simulator.ops"
        return [sys.executable, "-m", module, "--data-dir", str(self.data_dir), name]

    def stop(self) -> None:
        """Stop traffic and server, join their threads, remove a temporary data dir.

        Waits up to 3 s for requests in flight and at most about 30 s in all. A
        thread still running after that is logged as a warning. Calling it again
        does nothing.
        """
        with self._stop_lock:
            if self._stopped:
                return
            self._stopped = True

        self._service.stopping.set()
        traffic_stopped = self._traffic.stop(STOP_TIMEOUT_SECONDS)
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(STOP_TIMEOUT_SECONDS)
        self._listener.close()
        self._service.store.close()
        if self._temporary_dir is not None:
            shutil.rmtree(self._temporary_dir, ignore_errors=True)

        if not traffic_stopped or self._thread.is_alive():
            logger.warning(
                "simulated target at %s left a thread running", self.base_url
            )
        logger.info("simulated target at %s stopped", self.base_url)

    def __enter__(self) -> RunningTarget:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def loopback_address(host: str) -> str:
    """Return ``host`` as a loopback IP address; raise ValueError for any other host."""
    candidate = "127.0.0.1" if host.lower() == "localhost" else host.strip("[]")
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"invalid host {host!r}: the simulator listens only on loopback "
            "addresses such as 127.0.0.1 or ::1"
        )
    return str(address)


def _bind(address: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid port {port}: use 0 (any free port) to 65535")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, port))
    except OSError:
        listener.close()
        raise
    return listener


def start_target(
    scenario: str = "healthy",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: Path | None = None,
    traffic_rate: float = 20.0,
    admin_token_env: str = "VEEFORE_ADMIN_TOKEN",
    seed: int | None = None,
) -> RunningTarget:
    """Start the simulated VeeFore service and return once it accepts connections.

    ``port=0`` binds a free port, read back from the socket into ``base_url``.
    Without ``data_dir`` the database lives in a temporary directory that ``stop()``
    removes; a given ``data_dir`` is created if missing and kept. A data directory
    without backups gets a baseline backup before the scenario acts. ``traffic_rate``
    is the background load in requests per second (0 for none), and ``seed`` makes
    the sample data and the random draws repeatable.
    Raises ValueError for an unknown scenario, a host that is not loopback, or an
    invalid port or rate, and OSError when the port cannot be bound.
    """
    chosen = get_scenario(scenario)
    address = loopback_address(host)

    # Until the server thread runs, undo every step if a later one fails.
    with contextlib.ExitStack() as undo:
        temporary_dir = None
        if data_dir is None:
            temporary_dir = Path(tempfile.mkdtemp(prefix="veefore-sim-"))
            undo.callback(shutil.rmtree, temporary_dir, ignore_errors=True)
            data_dir = temporary_dir
        data_dir.mkdir(parents=True, exist_ok=True)

        store = Store(data_dir / DATABASE_FILENAME, random.Random(seed))
        undo.callback(store.close)
        ensure_baseline_backup(store.path)
        service = SimulatedService(chosen, store, admin_token_env, seed)
        stale_mode_warning(service.traffic)
        traffic = TrafficGenerator(service, traffic_rate, seed)
        listener = _bind(address, port)
        undo.callback(listener.close)
        server, thread = _start_server(service, listener)
        undo.pop_all()

    target = RunningTarget(service, server, thread, traffic, listener, temporary_dir)
    if not server.started:
        target.stop()
        raise VeerunbookError(
            f"The simulated target did not start within {START_TIMEOUT_SECONDS:g} s; "
            "see the log of the uvicorn.error logger for the cause."
        )
    traffic.start()
    logger.info(
        "simulated target started at %s with scenario %s", target.base_url, chosen.name
    )
    return target


def _start_server(
    service: SimulatedService, listener: socket.socket
) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(
        build_app(service),
        log_config=None,  # leave logging to the application that embeds us
        access_log=False,  # RequestAccounting writes one record per request
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [listener]},
        name="veefore-sim-server",
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    return server, thread


def serve_forever(
    scenario: str = "healthy",
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    data_dir: Path | None = None,
    traffic_rate: float = 20.0,
    seed: int | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, printing the base URL as the first stdout line.

    Signal handlers are installed only when called from the main thread, where
    Python delivers signals; the previous handlers are restored on return.
    """
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, request_stop)
    try:
        with start_target(
            scenario,
            host=host,
            port=port,
            data_dir=data_dir,
            traffic_rate=traffic_rate,
            seed=seed,
        ) as target:
            print(target.base_url, flush=True)
            print(
                f"Simulating VeeFore in scenario {target.scenario}; Ctrl-C stops it.",
                file=sys.stderr,
                flush=True,
            )
            while not stop_requested.wait(0.5):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
