"""Notebook execution with papermill, in a private kernel environment.

The kernel runs this interpreter's ipykernel through ``veerunbook.kernel_launch``,
whatever kernelspec named ``python3`` is installed elsewhere. Its connection file,
which contains the HMAC key of the kernel protocol, lives in a private runtime folder
that the caller removes afterwards. papermill's log (masked as it is written) and the
kernel's stderr go to files in the same folder instead of the console, and the caller
masks both again when it archives them.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import IO, Any

import papermill
import zmq
from ipykernel.kernelspec import get_kernel_dict
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from veerunbook import __version__
from veerunbook.redact import RedactingFilter, Redactor

__all__ = [
    "STOP_SIGNALS",
    "ExecutionResult",
    "InterruptGuard",
    "engine_versions",
    "execute_notebook",
]

_log = logging.getLogger("veerunbook.execution")

KERNEL_NAME = "python3"
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_KILL_WAIT_S = 5.0
# sun_path of a Unix socket address is 108 bytes on Linux, including the final NUL.
_MAX_SOCKET_PATH = 107
# jupyter_client sends SIGTERM to a kernel that has not exited half this time after
# its shutdown request, and SIGKILL at the end (default 5 s). ipykernel 7.4 sometimes
# hangs on exit because its control thread flushes output through the IOPub thread
# that the main thread has just stopped, so a run would wait 2.5 s for the SIGTERM. A
# kernel that exits normally does so within about 0.2 s, and the notebook's last cell
# has closed the session already.
_SHUTDOWN_WAIT_S = 1.0
# This interpreter's ipykernel, without debugger and command history.
_KERNEL_ARGV = (sys.executable, "-m", "veerunbook.kernel_launch")


# The signals that end a run as aborted: Ctrl-C, a service manager's stop, and a
# closed terminal or dropped SSH session.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class InterruptGuard:
    """Turn SIGINT, SIGTERM, SIGHUP and the run timeout into KeyboardInterrupt while
    armed.

    Outside ``armed()`` a signal is only recorded, so archiving a run is never cut
    short. Only the first signal interrupts. Handlers are installed only in the main
    thread, because Python delivers signals there alone.
    """

    def __init__(self, run_timeout: float | None = None) -> None:
        self._main_thread = threading.current_thread() is threading.main_thread()
        if run_timeout is not None and not self._main_thread:
            raise ValueError("a run timeout needs the main thread, which gets SIGALRM")
        self.run_timeout = run_timeout
        self.cause: str | None = None
        self.timed_out = False
        self._armed = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> InterruptGuard:
        if not self._main_thread:
            return self
        for signum in (*STOP_SIGNALS, signal.SIGALRM):
            self._previous[signum] = signal.signal(signum, self._handle)
        if self.run_timeout is not None:
            signal.setitimer(signal.ITIMER_REAL, self.run_timeout)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._previous:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextmanager
    def armed(self) -> Iterator[None]:
        """Let the first signal raise KeyboardInterrupt inside this block."""
        if self.cause is not None:
            raise KeyboardInterrupt
        self._armed = True
        try:
            yield
        finally:
            self._armed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.cause is not None:
            _log.warning("%s ignored: the run is already stopping", _name(signum))
            return
        if signum == signal.SIGALRM:
            self.timed_out = True
            self.cause = f"run timed out after {self.run_timeout:g} s"
        else:
            self.cause = f"interrupted by {_name(signum)}"
        if self._armed:
            self._armed = False
            raise KeyboardInterrupt


@dataclass(frozen=True)
class ExecutionResult:
    """Exception and files that papermill left behind in the private folder.

    ``notebook`` may be missing when papermill failed before its first save.
    """

    error: BaseException | None
    notebook: Path
    log: Path
    stderr: Path

    def log_text(self) -> str:
        """Join papermill's log and the kernel's stderr into one text."""
        parts = []
        for title, path in (("papermill", self.log), ("kernel stderr", self.stderr)):
            text = path.read_text("utf-8", errors="replace") if path.is_file() else ""
            parts.append(f"--- {title} ---\n{text}")
        return "\n".join(parts)


def execute_notebook(
    notebook: Path,
    private_dir: Path,
    parameters: Mapping[str, Any],
    *,
    kernel_env: Mapping[str, str],
    redactor: Redactor,
    guard: InterruptGuard,
    cell_timeout: float | None = None,
) -> ExecutionResult:
    """Execute ``notebook`` with papermill, writing every file into ``private_dir``.

    Returns instead of raising when the execution fails or is interrupted. A kernel
    still running afterwards is killed.
    """
    runtime_dir = private_dir / "runtime"
    runtime_dir.mkdir(mode=0o700)
    paths = ExecutionResult(
        error=None,
        notebook=private_dir / "output.ipynb",
        log=private_dir / "papermill.log",
        stderr=private_dir / "kernel-stderr.log",
    )
    env = {**os.environ, **kernel_env, "JUPYTER_RUNTIME_DIR": str(runtime_dir)}
    launched: list[subprocess.Popen[bytes]] = []
    error: BaseException | None = None
    with (
        open(paths.stderr, "wb") as stderr,
        _capture_papermill_log(paths.log, redactor),
    ):
        manager = _kernel_manager_class(env, stderr, runtime_dir, launched)
        try:
            with guard.armed():
                papermill.execute_notebook(
                    str(notebook),
                    str(paths.notebook),
                    parameters=dict(parameters),
                    kernel_name=KERNEL_NAME,
                    kernel_manager_class=manager,
                    # A cell-by-cell bar on an interactive terminal; cron gets none.
                    progress_bar=sys.stderr.isatty(),
                    log_output=True,
                    execution_timeout=cell_timeout,
                )
        except (Exception, KeyboardInterrupt) as exc:
            error = exc
        finally:
            _kill_leftovers(launched)
    return replace(paths, error=error)


def engine_versions() -> dict[str, str]:
    """Return the versions of the software that executes notebooks."""
    names = ("papermill", "nbclient", "ipykernel", "jupyter_client")
    found = {name: importlib.metadata.version(name) for name in names}
    return {"veerunbook": __version__, **found, "python": platform.python_version()}


def _kernel_manager_class(
    env: Mapping[str, str],
    stderr: IO[bytes],
    runtime_dir: Path,
    launched: list[subprocess.Popen[bytes]],
) -> type[AsyncKernelManager]:
    """Create a kernel manager class bound to one run.

    nbclient creates the manager itself from a class, so the run's settings travel in
    the class instead of the constructor.
    """

    class PrivateKernelManager(AsyncKernelManager):
        """Starts this interpreter's ipykernel with the run's environment."""

        @property
        def kernel_spec(self) -> KernelSpec:
            spec = get_kernel_dict()
            spec["argv"] = [*_KERNEL_ARGV, "-f", "{connection_file}"]
            return KernelSpec(**spec)

        @default("shutdown_wait_time")
        def _short_shutdown_wait(self) -> float:
            return _SHUTDOWN_WAIT_S

        @default("transport_encryption")
        def _encrypt_when_possible(self) -> str:
            return "auto" if zmq.has("curve") else "disabled"

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            name = f"kernel-{uuid.uuid4().hex[:12]}"
            self.connection_file = str(runtime_dir / f"{name}.json")
            _use_unix_sockets(self, runtime_dir / "sock")
            await super().start_kernel(**kw, env=dict(env), stderr=stderr)
            process = getattr(self.provisioner, "process", None)
            if isinstance(process, subprocess.Popen):
                launched.append(process)

    return PrivateKernelManager


def _use_unix_sockets(manager: AsyncKernelManager, prefix: Path) -> None:
    """Connect the kernel through Unix sockets named ``<prefix>-<n>``, if they fit.

    A free TCP port on loopback is found by binding and releasing it, so kernels
    started at the same moment (a group run), or another process's outgoing
    connection, can take it before the kernel binds it ("Address already in use").
    Sockets in the run's own runtime folder cannot collide, and the folder's mode (0700)
    keeps other local users off them. A path too long for a socket address keeps TCP.
    """
    if len(os.fsencode(prefix)) + len("-65535") > _MAX_SOCKET_PATH:
        _log.warning(
            "runtime folder %s is too long for Unix socket names; the kernel listens "
            "on TCP ports on loopback instead (set TMPDIR to a shorter folder)",
            prefix.parent,
        )
        return
    manager.transport = "ipc"
    manager.ip = str(prefix)


def _kill_leftovers(launched: list[subprocess.Popen[bytes]]) -> None:
    """Kill a kernel that papermill did not shut down (interrupted during start-up)."""
    for process in launched:
        if process.poll() is not None:
            continue
        _log.warning("killing kernel process %d left running", process.pid)
        process.kill()
        try:
            process.wait(_KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            _log.error("kernel process %d did not exit after SIGKILL", process.pid)


@contextmanager
def _capture_papermill_log(path: Path, redactor: Redactor) -> Iterator[None]:
    """Send papermill's log, masked, to ``path`` instead of the console.

    Errors (a dead kernel, a timeout) are also logged through veerunbook's logger,
    still masked. papermill logs the cells' stderr as warnings, so those stay in the
    file.
    """
    logger = logging.getLogger("papermill")
    saved = (logger.level, logger.propagate)
    masking = RedactingFilter(redactor)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    forward = _ForwardHandler(logging.ERROR)
    logger.addFilter(masking)
    logger.addHandler(to_file)
    logger.addHandler(forward)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
        for handler in (to_file, forward):
            logger.removeHandler(handler)
        logger.removeFilter(masking)
        to_file.close()


class _ForwardHandler(logging.Handler):
    """Re-log papermill records through veerunbook's logger."""

    def emit(self, record: logging.LogRecord) -> None:
        _log.log(record.levelno, "papermill: %s", record.getMessage())


def _name(signum: int) -> str:
    return signal.Signals(signum).name
