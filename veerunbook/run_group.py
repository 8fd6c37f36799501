"""Group runs: several procedures at the same time for one incident.

``veerunbook run triage high-error-rate ...`` validates every name and parameter
first (``run_group_plan``), opens the incident once, then forks one child per run,
at most ``--jobs`` at a time (``run_group_child``). Forking after the imports spares
each child the import of papermill and the Jupyter stack. The parent prints each
run's summary as one block when the run finishes, then a table of all runs, and
exits with the worst exit code. SIGINT and SIGTERM are forwarded to the running
children, which archive their partial notebooks as ``aborted``, and no further run
starts.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from veerunbook.config import Config
from veerunbook.execution import STOP_SIGNALS
from veerunbook.redact import Redactor
from veerunbook.run_group_child import GroupSettings, RunReport, run_child
from veerunbook.run_group_plan import PlannedRun, plan_runs

__all__ = ["run_group", "run_group_command"]

_log = logging.getLogger("veerunbook.run_group")

# Modules that every run needs, imported once in the parent before it forks. The
# list names the heavy ones, in case the modules that use them import them lazily.
_PRELOAD = (
    "veerunbook.runner",
    "veerunbook.run_summary",
    "veerunbook.run_actions",
    "papermill",
    "nbclient",
    "nbformat",
    "jupyter_client.manager",
    "ipykernel.kernelspec",
)

# The signals a group run forwards to its children.
_FORWARDED = STOP_SIGNALS
_NOT_STARTED = "not started"


def run_group_command(
    args: argparse.Namespace, config: Config, redactor: Redactor
) -> int:
    """Validate a ``veerunbook run`` with several procedures, then run them all."""
    from veerunbook.commands import check_seconds, checked_archive
    from veerunbook.journal import validate_incident_id

    # Validate everything before anything is written.
    pairs = [(name, value) for name, value in args.parameter]
    planned = plan_runs(args.procedure, pairs, list(args.parameters_file))
    target = args.target or config.default_target
    config.resolve_target(target)
    check_seconds("--timeout", args.timeout)
    check_seconds("--cell-timeout", args.cell_timeout)
    if args.incident:
        validate_incident_id(args.incident)
    archive = checked_archive(args.archive)

    # The kernels load the configuration again, so they must find the same file.
    if config.path:
        os.environ["VEERUNBOOK_CONFIG"] = str(Path(config.path).absolute())
    reports = run_group(
        planned,
        incident=args.incident,
        target=target,
        archive=archive,
        redactor=redactor,
        timeout=args.timeout,
        cell_timeout=args.cell_timeout,
        html=args.html,
        jobs=args.jobs or len(planned),
    )
    return max(report.exit_code for report in reports)


def run_group(
    planned: Sequence[PlannedRun],
    *,
    incident: str | None,
    target: str,
    archive: Path,
    redactor: Redactor,
    timeout: float | None = None,
    cell_timeout: float | None = None,
    html: bool = False,
    jobs: int,
    output: TextIO | None = None,
) -> list[RunReport]:
    """Run the planned procedures for one incident, ``jobs`` at a time.

    ``incident`` None opens a new incident before the first run starts. Prints a
    block per finished run and a final table to ``output`` (default stdout), and
    returns the reports in the order the runs finished, followed by the runs that
    never started because of SIGINT or SIGTERM.
    """
    from veerunbook.incident import incident_dir, open_or_update
    from veerunbook.journal import new_incident_id

    for name in _PRELOAD:
        importlib.import_module(name)
    existed = incident is not None and incident_dir(archive, incident).is_dir()
    incident_id = incident or new_incident_id()
    open_or_update(archive, incident_id, redactor=redactor)
    settings = GroupSettings(
        incident_id, existed, target, archive, redactor, timeout, cell_timeout, html
    )
    group = _Group(planned, settings, jobs, output or sys.stdout)
    reports = group.run()
    group.print_table(reports)
    return reports


@dataclass
class _Child:
    """A forked run in progress and the receiving end of its pipe."""

    planned: PlannedRun
    process: BaseProcess
    pipe: Connection


class _Group:
    """Start, watch and stop the children, and print each block when its run ends."""

    def __init__(
        self,
        planned: Sequence[PlannedRun],
        settings: GroupSettings,
        jobs: int,
        output: TextIO,
    ) -> None:
        self.pending = deque(planned)
        self.total = len(planned)
        self.settings = settings
        self.jobs = jobs
        self.output = output
        self.tty = output.isatty()
        self.running: list[_Child] = []
        self.skipped: list[PlannedRun] = []
        self.stop_signal: str | None = None
        self._parent_pid = os.getpid()
        self._context = multiprocessing.get_context("fork")

    def run(self) -> list[RunReport]:
        """Run every planned procedure and return the reports."""
        saved = {signum: signal.signal(signum, self._forward) for signum in _FORWARDED}
        reports: list[RunReport] = []
        try:
            self._progress(reports)
            while self.pending or self.running:
                self._start_allowed()
                for report in self._collect_finished():
                    reports.append(report)
                    self._print_block(report, reports)
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)
        if self.tty:
            self.output.write("\r\033[K")
        reports += [_never_started(run) for run in self.skipped]
        return reports

    def _start_allowed(self) -> None:
        if self.stop_signal is not None and self.pending:
            names = [run.procedure.name for run in self.pending]
            _log.warning(
                "%s received, so these procedures do not start: %s",
                self.stop_signal, ", ".join(names),
            )  # fmt: skip
            self.skipped += self.pending
            self.pending.clear()
        while self.pending and len(self.running) < self.jobs:
            self._start(self.pending.popleft())

    def _start(self, planned: PlannedRun) -> None:
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_child,
            args=(planned, self.settings, sender),
            name=f"veerunbook-run-{planned.procedure.name}",
        )
        # The child inherits the output buffer, so flush it before the fork.
        self.output.flush()
        # SIGINT and SIGTERM stay pending across the fork: the child unblocks them
        # once its own handlers are installed, and the parent once the child is
        # listed for forwarding, so neither loses one that arrives in between.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        try:
            process.start()
            sender.close()  # the child has its own copy; closing ours lets EOF show
            self.running.append(_Child(planned, process, receiver))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _log.debug("started %s in process %s", planned.procedure.name, process.pid)

    def _collect_finished(self) -> list[RunReport]:
        """Wait until at least one child has finished, and return their reports."""
        if not self.running:
            return []
        handles: list[Any] = [child.pipe for child in self.running]
        handles += [child.process.sentinel for child in self.running]
        ready = set(wait(handles))
        finished = [
            child
            for child in self.running
            if child.pipe in ready or child.process.sentinel in ready
        ]
        reports = []
        for child in finished:
            self.running.remove(child)
            reports.append(self._report_of(child))
        return reports

    def _report_of(self, child: _Child) -> RunReport:
        """Receive the child's report, or describe how it ended without one."""
        report: RunReport | None
        try:
            report = child.pipe.recv()
        except EOFError:
            report = None
        child.pipe.close()
        child.process.join()
        if report is not None:
            return report
        from veerunbook.run_group_text import died_report

        return died_report(child.planned, child.process, self.settings)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        """Forward SIGINT or SIGTERM to the running children, and start no new run."""
        if os.getpid() != self._parent_pid:
            return  # a child that has not yet installed its own handlers
        self.stop_signal = signal.Signals(signum).name
        for child in self.running:
            if child.process.pid is None:
                continue
            # A child that already ended has its report waiting in the pipe.
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.process.pid, signum)

    def _print_block(self, report: RunReport, reports: list[RunReport]) -> None:
        if self.tty:
            self.output.write("\r\033[K")
        self.output.write(self.settings.redactor.mask(report.text) + "\n\n")
        self._progress(reports)
        self.output.flush()

    def _progress(self, reports: list[RunReport]) -> None:
        """Show ``2/4 done: triage ok 3.1 s`` on a terminal, but not in cron output."""
        if not self.tty:
            return
        line = f"{len(reports)}/{self.total} done"
        if reports:
            last = reports[-1]
            line += f": {last.procedure} {last.status} {last.duration_s:.1f} s"
        self.output.write("\r\033[K" + line)
        self.output.flush()

    def print_table(self, reports: list[RunReport]) -> None:
        """Print one row per run: procedure, status, duration, checks, notebook."""
        from veerunbook.run_group_text import table_lines

        lines = table_lines(reports)
        self.output.write(self.settings.redactor.mask("\n".join(lines)) + "\n")
        self.output.flush()


def _never_started(planned: PlannedRun) -> RunReport:
    name = planned.procedure.name
    return RunReport(name, _NOT_STARTED, 3, 0.0, {}, "", None, "")
