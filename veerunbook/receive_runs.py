"""The receiver's run queue: one worker thread runs queued procedures one at a time.

Each run is a ``veerunbook run`` subprocess, so a notebook that hangs or kills its
kernel never takes the receiver down with it. The subprocess gets a session of its
own, so a Ctrl-C meant for the receiver does not abort the run in progress.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path

from veerunbook.params import CONFIRM_PARAM

DEFAULT_QUEUE_SIZE = 32

# Parameters that only size what a run reads: sampling windows, sample counts,
# look-backs and timeouts of read-only checks. A run that an alert starts must never
# change the target. So ``confirm`` and every parameter that selects or widens a
# change (version, backup, force, block, force_block, rotate_keys) are left out.
# A parameter that a procedure adds later stays out until it is listed here.
READ_ONLY_PARAMETERS = frozenset(
    {
        "window_seconds", "samples", "sample_seconds", "log_window_minutes",
        "change_lookback_hours", "deploy_window_minutes", "slow_query_limit",
        "connect_timeout_seconds", "status_timeout_seconds",
    }
)  # fmt: skip

_RUN_ID = re.compile(rb"^run:\s+(RUN-[0-9A-Za-z-]+)", re.MULTILINE)

_log = logging.getLogger("veerunbook.receive")


@dataclass(frozen=True)
class RunRequest:
    """One procedure run that an alert asked for."""

    procedure: str
    incident: str
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RunSettings:
    """Settings shared by every run of the receiver: target, archive, configuration."""

    archive: Path
    target: str | None = None
    config: str | None = None
    timeout_seconds: float | None = None
    # Environment variables removed from the run's environment, such as the one that
    # contains the receiver's bearer token.
    hidden_env: frozenset[str] = field(default_factory=frozenset)


def run_command(request: RunRequest, settings: RunSettings) -> list[str]:
    """Build the ``veerunbook run`` command line of one request.

    Raises ValueError for ``confirm`` or any other parameter outside
    READ_ONLY_PARAMETERS, so no code path can start a run that changes the target.
    """
    for name, _ in request.parameters:
        if name == CONFIRM_PARAM or name not in READ_ONLY_PARAMETERS:
            raise ValueError(
                f"parameter {name!r} is not allowed in a run that an alert starts"
            )
    command = [sys.executable, "-m", "veerunbook.cli"]
    if settings.config:
        command += ["--config", settings.config]
    command += ["run", request.procedure, "--incident", request.incident]
    if settings.target:
        command += ["--target", settings.target]
    command += ["--archive", str(settings.archive)]
    if settings.timeout_seconds is not None:
        command += ["--timeout", str(settings.timeout_seconds)]
    for name, value in request.parameters:
        command += ["-p", name, value]
    return command


class RunQueue:
    """A bounded queue of run requests and the worker thread that executes them."""

    def __init__(
        self, settings: RunSettings, maxsize: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"queue size must be at least 1, not {maxsize}")
        self.settings = settings
        self.maxsize = maxsize
        self._waiting: deque[RunRequest] = deque()
        self._running = False
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self._work, name="veerunbook-runs", daemon=True
        )
        self.completed = 0

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def submit(self, request: RunRequest) -> bool:
        """Queue a run without waiting; return False when the queue is full or
        stopping."""
        with self._changed:
            if self._stopping or len(self._waiting) >= self.maxsize:
                return False
            self._waiting.append(request)
            self._changed.notify_all()
        return True

    def pending(self) -> int:
        """Return the number of runs waiting for the worker."""
        with self._changed:
            return len(self._waiting)

    def drop_incident(self, incident: str) -> list[RunRequest]:
        """Remove the waiting runs of ``incident`` and return them.

        A run already in progress is not affected.
        """
        with self._changed:
            dropped = [r for r in self._waiting if r.incident == incident]
            remaining = [r for r in self._waiting if r.incident != incident]
            self._waiting = deque(remaining)
            self._changed.notify_all()
        return dropped

    def stop(self) -> list[RunRequest]:
        """Let the current run finish, stop the worker and return the runs dropped."""
        with self._changed:
            self._stopping = True
            dropped = list(self._waiting)
            self._waiting.clear()
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        for request in dropped:
            _log.warning(
                "run of %s for incident %s dropped because the receiver stopped",
                request.procedure,
                request.incident,
            )
        return dropped

    def wait_idle(self) -> None:
        """Block until every queued run has finished."""
        with self._changed:
            self._changed.wait_for(lambda: not self._waiting and not self._running)

    def _work(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._waiting) or self._stopping)
                if self._stopping:
                    return
                request = self._waiting.popleft()
                self._running = True
            try:
                self._execute(request)
                self.completed += 1
            finally:
                with self._changed:
                    self._running = False
                    self._changed.notify_all()

    def _execute(self, request: RunRequest) -> int:
        """Run one request to its end and log its start and end; return the exit
        code, or -1 when the subprocess could not be started."""
        try:
            command = run_command(request, self.settings)
        except ValueError as exc:
            _log.error(
                "run of %s for incident %s not started: %s",
                request.procedure,
                request.incident,
                exc,
            )
            return -1
        env = _child_env(os.environ, self.settings.hidden_env)
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            _log.error(
                "run of %s for incident %s could not start: %s",
                request.procedure,
                request.incident,
                exc,
            )
            return -1
        _log.info(
            "run of %s for incident %s started (pid %d)",
            request.procedure,
            request.incident,
            process.pid,
        )
        output, _ = process.communicate()
        match = _RUN_ID.search(output)
        run_id = match.group(1).decode() if match else "without a run id"
        level = logging.INFO if process.returncode in (0, 1) else logging.ERROR
        _log.log(
            level,
            "run %s of %s for incident %s ended with exit code %d in %.1f s",
            run_id,
            request.procedure,
            request.incident,
            process.returncode,
            time.monotonic() - started,
        )
        if level == logging.ERROR:
            _log.error("last output of the failed run: %s", _last_line(output))
        return process.returncode


def _child_env(environ: Mapping[str, str], hidden: Set[str]) -> dict[str, str]:
    return {name: value for name, value in environ.items() if name not in hidden}


def _last_line(output: bytes) -> str:
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:300] if lines else "(no output)"
