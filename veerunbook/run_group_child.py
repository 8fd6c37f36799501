"""The child side of a group run: one forked process runs one procedure.

The parent forks after its imports, so a child starts its run at once. The child
runs ``run_procedure`` in its main thread, whose InterruptGuard turns SIGINT,
SIGTERM and the run timeout into an aborted run, and sends one RunReport back
through its end of a pipe.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import TextIO

from veerunbook.errors import RunError, VeerunbookError
from veerunbook.execution import STOP_SIGNALS
from veerunbook.redact import Redactor
from veerunbook.run_group_plan import PlannedRun

__all__ = ["GroupSettings", "RunReport", "run_child"]

_log = logging.getLogger("veerunbook.run_group")

# How often a child that got a signal before its run armed the InterruptGuard checks
# whether the guard is in place, to deliver the signal again.
_GUARD_POLL_S = 0.01


@dataclass(frozen=True)
class GroupSettings:
    """Options shared by every run of the group."""

    incident: str
    existed: bool
    target: str
    archive: Path
    redactor: Redactor
    timeout: float | None
    cell_timeout: float | None
    html: bool


@dataclass(frozen=True)
class RunReport:
    """Report that a child sends back: the RunOutcome fields and its summary text.

    ``run_id`` is empty and ``notebook`` None when the run did not start.
    """

    procedure: str
    status: str
    exit_code: int
    duration_s: float
    counts: dict[str, int]
    run_id: str
    notebook: str | None
    text: str


def run_child(planned: PlannedRun, settings: GroupSettings, pipe: Connection) -> None:
    """Run one procedure in a forked child and send its RunReport through ``pipe``."""
    early = _EarlySignals()
    early.install()
    # The parent blocked SIGINT and SIGTERM for the fork; one that arrived since is
    # delivered to the handler just installed.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    # Several papermill progress bars on one terminal would overwrite each other and
    # the parent's progress line, so the child's stderr does not count as a terminal.
    sys.stderr = _NotATerminal(sys.stderr)
    if early.received is not None:
        pipe.send(_not_started(planned, f"interrupted by {early.received}"))
        return
    try:
        report = _run(planned, settings)
    except VeerunbookError as error:
        code = 3 if isinstance(error, RunError) else 2
        report = _failed(planned, settings.redactor.mask(str(error)), code)
    except OSError as error:
        reason = f"{error.strerror or error.__class__.__name__}: {error.filename}"
        report = _failed(planned, settings.redactor.mask(reason), 3)
    pipe.send(report)


def _run(planned: PlannedRun, settings: GroupSettings) -> RunReport:
    from veerunbook.commands import outcome_text
    from veerunbook.runner import run_procedure

    outcome = run_procedure(
        planned.procedure.name,
        incident=settings.incident,
        target=settings.target,
        params=planned.params,
        archive=settings.archive,
        redactor=settings.redactor,
        timeout=settings.timeout,
        cell_timeout=settings.cell_timeout,
        html=settings.html,
    )
    return RunReport(
        procedure=outcome.procedure,
        status=outcome.status,
        exit_code=outcome.exit_code,
        duration_s=outcome.duration_s,
        counts=outcome.counts,
        run_id=outcome.run_id,
        notebook=str(outcome.notebook),
        text=outcome_text(outcome, settings.existed, settings.redactor),
    )


def _not_started(planned: PlannedRun, reason: str) -> RunReport:
    name = planned.procedure.name
    text = f"run:       {name} aborted before it started ({reason})"
    return RunReport(name, "aborted", 3, 0.0, {}, "", None, text)


def _failed(planned: PlannedRun, reason: str, code: int) -> RunReport:
    name = planned.procedure.name
    text = f"run:       {name} failed\nreason:    {reason}"
    return RunReport(name, "failed", code, 0.0, {}, "", None, text)


class _EarlySignals:
    """Hold SIGINT and SIGTERM that arrive before the run's InterruptGuard.

    Until ``run_procedure`` installs its guard, the child has the handlers it
    inherited from the parent. This handler records the signal instead, and a
    thread sends it again once another handler (the guard's) replaced this one,
    so the run still ends as aborted.
    """

    def __init__(self) -> None:
        self.received: str | None = None

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return
        self.received = signal.Signals(signum).name
        _log.debug("%s received before the run started", self.received)
        threading.Thread(target=self._resend, args=(signum,), daemon=True).start()

    def _resend(self, signum: int) -> None:
        stop = threading.Event()
        while signal.getsignal(signum) == self._handle:
            stop.wait(_GUARD_POLL_S)
        os.kill(os.getpid(), signum)


class _NotATerminal(io.TextIOBase):
    """A text stream that writes through to another one but is never a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(text)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return False
