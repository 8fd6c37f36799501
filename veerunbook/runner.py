"""Runs of procedures: validate, journal, execute with papermill, archive.

A run's files land in ``<archive>/<incident>/runs/`` under the stem
``<UTC YYYYmmddTHHMMSS.ffffffZ>-<procedure>``: the executed notebook (``.ipynb``, kept
after a failure too), papermill's log with the kernel's stderr (``.log``) and, on
request, an HTML copy. The redactor masks every file before it reaches the archive.

Exit codes follow the run status: 0 ``ok``, 1 ``findings`` (a check failed or
errored), 3 ``failed`` (cell error, timeout, dead kernel) or ``aborted`` (SIGINT or
SIGTERM).
"""

from __future__ import annotations

import getpass
import importlib.metadata
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veerunbook.errors import UsageError
from veerunbook.execution import (
    ExecutionResult,
    InterruptGuard,
    engine_versions,
    execute_notebook,
)
from veerunbook.incident import ARCHIVE_ENV, RUNS_DIR, incident_dir, open_or_update
from veerunbook.journal import (
    JOURNAL_FILE,
    Journal,
    new_incident_id,
    readable_events,
    sha256_file,
    validate_incident_id,
)
from veerunbook.nbstate import annotate, assess_execution, write_archive
from veerunbook.params import (
    STANDARD_PARAMETERS,
    ResolvedParameters,
    check_confirmation,
    read_parameters,
    validate_values,
)
from veerunbook.procedures import Procedure, find_procedure
from veerunbook.record import (
    CHECK_STATUSES,
    FAILING_STATUSES,
    INCIDENT_ENV,
    RUN_ID_ENV,
    new_run_id,
)
from veerunbook.redact import Redactor

__all__ = ["EXIT_CODES", "RunOutcome", "run_procedure"]

_log = logging.getLogger("veerunbook.runner")

EXIT_CODES = {"ok": 0, "findings": 1, "failed": 3, "aborted": 3}


@dataclass(frozen=True)
class RunOutcome:
    """Result of one run, with the absolute path of the archived notebook."""

    run_id: str
    incident: str
    procedure: str
    status: str
    exit_code: int
    notebook: Path
    reason: str | None
    failing_cell: int | None
    duration_s: float
    counts: dict[str, int]


@dataclass(frozen=True)
class _Run:
    """Identity and archive location of the run in progress."""

    procedure: Procedure
    incident: str
    target: str
    archive: Path
    journal: Journal
    run_id: str = field(default_factory=new_run_id)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    clock: float = field(default_factory=time.monotonic)

    @property
    def base(self) -> Path:
        """The archive path of the run's files, without a suffix."""
        stem = f"{self.started:%Y%m%dT%H%M%S.%fZ}-{self.procedure.name}"
        return self.journal.incident_dir / RUNS_DIR / stem

    def relative(self, path: Path) -> str:
        """Return ``path`` relative to the incident folder, as journaled."""
        return path.relative_to(self.journal.incident_dir).as_posix()


def run_procedure(
    procedure: str,
    *,
    incident: str | None,
    target: str,
    params: Mapping[str, Any],
    archive: Path,
    redactor: Redactor,
    timeout: float | None = None,
    cell_timeout: float | None = None,
    html: bool = False,
) -> RunOutcome:
    """Execute a procedure for an incident and archive the masked result.

    ``incident`` None opens a new incident. ``timeout`` limits the whole run and
    ``cell_timeout`` each cell, both in seconds. Raises UsageError (nothing written)
    for an invalid incident id, procedure or parameter, including a ``confirm``
    that is not the id given as ``incident``, and ValueError for a non-positive
    timeout. A failed or aborted run is returned, not raised.
    """
    # Validate everything before anything is written.
    incident_id = new_incident_id() if incident is None else incident
    validate_incident_id(incident_id)
    found = find_procedure(procedure)
    values = _checked_parameters(found, params)
    check_confirmation(values, incident)
    _check_timeouts(timeout, cell_timeout)
    guard = InterruptGuard(timeout)
    root = Path(archive).absolute()
    folder = incident_dir(root, incident_id)
    sources = params.provenance() if isinstance(params, ResolvedParameters) else {}

    # Open the incident. From here on a signal ends the run in an orderly way.
    open_or_update(root, incident_id, redactor=redactor)
    run = _Run(found, incident_id, target, root, Journal(folder, redactor))
    with guard:
        _journal_start(run, values, sources)

        # Everything unmasked stays in a private folder that is removed afterwards.
        # A runner killed with SIGKILL cannot remove its folder, so the next run does.
        remove_orphaned_private_dirs()
        with tempfile.TemporaryDirectory(prefix=PRIVATE_PREFIX) as private:
            (Path(private) / OWNER_FILE).write_text(str(os.getpid()))
            standard = {"incident": incident_id, "target": target, "archive": str(root)}
            result = execute_notebook(
                found.path,
                Path(private),
                {**values, **standard},
                kernel_env=_kernel_env(run),
                redactor=redactor,
                guard=guard,
                cell_timeout=cell_timeout,
            )
            interrupted = isinstance(result.error, KeyboardInterrupt)
            nb = _load_output(result, found)
            assessment = assess_execution(
                nb,
                result.error,
                cell_timeout=cell_timeout,
                reason=guard.cause if interrupted else None,
            )

            # Decide the status, then archive the notebook and log masked.
            counts, declared = _count_checks(run)
            aborted = interrupted and not guard.timed_out
            status = _status(assessment.completed, aborted, counts, declared)
            duration = round(time.monotonic() - run.clock, 3)
            provenance = {"status": status, "duration_s": duration}
            annotate(nb, assessment, _provenance(run, sources) | provenance)
            files = write_archive(run.base, nb, result.log_text(), redactor, html=html)

        notebook = files[0]
        run.journal.append(
            "run.finished",
            run=run.run_id,
            procedure=found.name,
            status=status,
            reason=assessment.reason,
            failing_cell=assessment.failing_cell,
            duration_s=duration,
            notebook=run.relative(notebook),
            notebook_sha256=sha256_file(notebook),
            files={run.relative(path): sha256_file(path) for path in files},
            counts=counts,
        )

    reason = redactor.mask(assessment.reason) if assessment.reason else None
    _log.info(
        "run %s of %s finished with status %s%s in %.1f s: %s",
        run.run_id, found.name, status, f" ({reason})" if reason else "", duration,
        notebook,
    )  # fmt: skip
    return RunOutcome(
        run.run_id,
        incident_id,
        found.name,
        status,
        EXIT_CODES[status],
        notebook,
        reason,
        assessment.failing_cell,
        duration,
        counts,
    )


def _checked_parameters(found: Procedure, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``params`` against the procedure's declarations and standard names."""
    specs = read_parameters(json.loads(found.path.read_text(encoding="utf-8")))
    declared = {spec.name for spec in specs}
    missing = [name for name in STANDARD_PARAMETERS if name not in declared]
    if missing:
        raise UsageError(
            f"procedure {found.name!r} does not declare the standard parameters "
            f"{', '.join(missing)}; add them to its parameters cell."
        )
    return validate_values(specs, params)


def _check_timeouts(timeout: float | None, cell_timeout: float | None) -> None:
    for name, value in (("timeout", timeout), ("cell_timeout", cell_timeout)):
        if value is not None and not value > 0:
            raise ValueError(
                f"{name} must be a positive number of seconds, not {value!r}"
            )


def _journal_start(
    run: _Run, values: Mapping[str, Any], sources: Mapping[str, Any]
) -> None:
    run.journal.append(
        "run.started",
        run=run.run_id,
        procedure=run.procedure.name,
        target=run.target,
        parameters=dict(values),
        parameter_sources=dict(sources),
        operator=_operator(),
        host=socket.gethostname(),
        pid=os.getpid(),
        papermill=importlib.metadata.version("papermill"),
    )
    _log.info(
        "run %s of %s started (incident %s)",
        run.run_id,
        run.procedure.name,
        run.incident,
    )


def _kernel_env(run: _Run) -> dict[str, str]:
    """Return the variables that attach the kernel's run record to this run."""
    return {
        RUN_ID_ENV: run.run_id,
        INCIDENT_ENV: run.incident,
        ARCHIVE_ENV: str(run.archive),
    }


def _load_output(result: ExecutionResult, found: Procedure) -> dict[str, Any]:
    """Load papermill's output, or the procedure itself when papermill saved none."""
    path = result.notebook if result.notebook.is_file() else found.path
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(nb, dict)
    return nb


def _count_checks(run: _Run) -> tuple[dict[str, int], str | None]:
    """Count the checks that the notebook journaled for this run, by status.

    Also return the status the procedure set over the checks' verdict, if any (see
    ``RunContext.finish``).
    """
    counts = dict.fromkeys(CHECK_STATUSES, 0)
    declared = None
    path = run.journal.incident_dir / JOURNAL_FILE
    for event in readable_events(path):
        if event.get("run") != run.run_id:
            continue
        if event.get("event") == "check":
            status = event.get("status")
            if status in counts:
                counts[status] += 1
        elif event.get("event") == "note" and event.get("end_status") in _DECLARABLE:
            declared = str(event["end_status"])
    return counts, declared


# A procedure may judge its own end state, but only a completed run is ok or findings.
_DECLARABLE = ("ok", "findings")


PRIVATE_PREFIX = "veerunbook-"
OWNER_FILE = "owner.pid"


def remove_orphaned_private_dirs() -> list[Path]:
    """Remove private run folders whose runner process no longer exists.

    Such a folder contains an unmasked notebook and the kernel's connection file. Only
    folders with an owner file written by a runner are considered. Returns the
    folders removed.
    """
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(PRIVATE_PREFIX + "*"):
        try:
            owner = int((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if owner == os.getpid() or _process_exists(owner):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        _log.warning("removed %s left behind by runner process %d", folder, owner)
        removed.append(folder)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _status(
    completed: bool, aborted: bool, counts: Mapping[str, int], declared: str | None
) -> str:
    if aborted:
        return "aborted"
    if not completed:
        return "failed"
    if declared is not None:
        return declared
    if any(counts[name] for name in FAILING_STATUSES):
        return "findings"
    return "ok"


def _provenance(run: _Run, sources: Mapping[str, Any]) -> dict[str, Any]:
    """Return the run's fields for the notebook's ``metadata.veerunbook`` block."""
    return {
        "run_id": run.run_id,
        "incident": run.incident,
        "procedure": run.procedure.name,
        "target": run.target,
        "started": run.started.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "parameter_sources": dict(sources),
        "versions": engine_versions(),
    }


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER variable and no passwd entry (containers)
        return "unknown"
