"""The run record that a procedure notebook writes into its incident's journal.

``start_run`` returns a ``RunContext`` in one of two modes:

- attached: the runner started the kernel and set ``VEERUNBOOK_RUN_ID``,
  ``VEERUNBOOK_INCIDENT`` and ``VEERUNBOOK_ARCHIVE``. The runner journals
  ``run.started`` and ``run.finished`` (with the saved notebook's SHA-256), so the
  context journals only checks, actions and notes.
- standalone: plain papermill or JupyterLab. The context opens the incident (a new one
  unless named), journals ``run.started``, and ``finish`` journals ``run.finished``
  with ``notebook: null`` because no saved notebook exists to hash yet.

Every journaled value passes through the redactor, which by default masks the secrets
that ``veerunbook.toml`` names.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from veerunbook.bounded import bounded
from veerunbook.errors import JournalError, UsageError
from veerunbook.incident import (
    INCIDENT_FILE,
    archive_root,
    incident_dir,
    open_or_update,
)
from veerunbook.journal import (
    Journal,
    new_incident_id,
    validate_incident_id,
)
from veerunbook.redact import MASK, Redactor

if TYPE_CHECKING:
    import pandas as pd

RUN_ID_ENV = "VEERUNBOOK_RUN_ID"
INCIDENT_ENV = "VEERUNBOOK_INCIDENT"
CHECK_STATUSES = ("pass", "warn", "fail", "error", "skip")
# "intent" is journaled before anything else of a guarded action; the others end it
# (see veerunbook.actions).
ACTION_MODES = ("intent", "dry-run", "refused", "already-done", "executed", "failed")
RUN_STATUSES = ("ok", "findings", "failed", "aborted")
FAILING_STATUSES = frozenset({"fail", "error"})

# Parameter names whose values are masked in run.started even when the redactor does
# not know the value. Names ending in _env hold a variable's name, not its value.
_SECRET_NAME = re.compile(r"token|secret|passw|api_?key|credential|dsn", re.IGNORECASE)

_log = logging.getLogger("veerunbook.record")


@dataclass(frozen=True)
class CheckRecord:
    """One journaled check, with its values as written (secrets masked)."""

    name: str
    status: str
    observed: Any
    unit: str | None
    expected: Any
    evidence: Any
    summary: str
    time: str
    seq: int

    def to_dict(self) -> dict[str, Any]:
        """Convert to a dict of plain JSON values."""
        return asdict(self)


class ProbeResult(Protocol):
    """The part of a probe result that ``RunContext.record_probe`` reads."""

    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def latency_ms(self) -> float | None: ...
    @property
    def http_status(self) -> int | None: ...
    def summary(self) -> str: ...
    def to_dict(self) -> Mapping[str, Any]: ...


def new_run_id(now: datetime | None = None) -> str:
    """Create a run id such as ``RUN-20261204-161530-3f9a2b`` (UTC, random suffix)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"RUN-{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def start_run(
    procedure: str,
    *,
    incident: str = "",
    params: Mapping[str, Any] | None = None,
    archive: str = "",
    redactor: Redactor | None = None,
) -> RunContext:
    """Start recording a run of ``procedure``, attached to the runner's run if any.

    Raises UsageError for an invalid procedure name or incident id.
    """
    _require_text("procedure", procedure)
    if redactor is None:
        redactor = _configured_redactor()
    run_id = os.environ.get(RUN_ID_ENV, "")
    if run_id:
        return _attach(run_id, procedure, incident, archive, redactor)

    # Standalone: open the incident, then journal the start of the run.
    root = archive_root(archive or None)
    incident_id = validate_incident_id(incident) if incident else new_incident_id()
    open_or_update(root, incident_id, redactor=redactor)
    journal = Journal(incident_dir(root, incident_id), redactor)
    context = RunContext(new_run_id(), procedure, incident_id, journal, standalone=True)

    context.journal.append(
        "run.started",
        run=context.run_id,
        procedure=procedure,
        params=_mask_secret_params(params or {}),
        operator=_operator(),
        host=socket.gethostname(),
        mode="standalone",
    )
    _log.info(
        "run %s of %s started in %s", context.run_id, procedure, context.incident_dir
    )
    return context


def _attach(
    run_id: str, procedure: str, incident: str, archive: str, redactor: Redactor
) -> RunContext:
    incident_id = os.environ.get(INCIDENT_ENV, "")
    if not incident_id:
        raise UsageError(
            f"{RUN_ID_ENV} is set but {INCIDENT_ENV} is empty: start the notebook "
            f"through veerunbook run, or unset {RUN_ID_ENV} to record standalone."
        )
    root = archive_root(None)
    if incident and incident != incident_id:
        _log.warning(
            "incident %r ignored: run %s records into %s", incident, run_id, incident_id
        )
    if archive and archive_root(archive) != root:
        _log.warning(
            "archive %s ignored: run %s records into %s", archive, run_id, root
        )

    folder = incident_dir(root, incident_id)
    if not (folder / INCIDENT_FILE).is_file():
        raise JournalError(
            f"incident folder {folder} of run {run_id} has no {INCIDENT_FILE}, but "
            "the runner must open the incident before it starts the kernel."
        )
    journal = Journal(folder, redactor)
    return RunContext(run_id, procedure, incident_id, journal, standalone=False)


class RunContext:
    """Record of one run, which journals checks, actions and notes and keeps the checks.

    Use it as a context manager to finish the run when the block ends: ``failed`` after
    an exception, ``aborted`` after an interrupt, else the verdict.
    """

    def __init__(
        self,
        run_id: str,
        procedure: str,
        incident_id: str,
        journal: Journal,
        *,
        standalone: bool,
    ) -> None:
        self.run_id = run_id
        self.procedure = procedure
        self.incident_id = incident_id
        self.journal = journal
        self.standalone = standalone
        self.checks: list[CheckRecord] = []
        self.actions: list[dict[str, Any]] = []
        self.status: str | None = None
        self._started = time.monotonic()

    @property
    def incident_dir(self) -> Path:
        """The incident folder that this run records into."""
        return self.journal.incident_dir

    def check(
        self,
        name: str,
        status: str,
        *,
        observed: Any = None,
        unit: str | None = None,
        expected: Any = None,
        evidence: Any = None,
        summary: str = "",
    ) -> CheckRecord:
        """Journal one check and keep it in ``checks``.

        ``status`` is one of pass, warn, fail, error or skip.
        """
        _require_text("check name", name)
        _require_choice("check status", status, CHECK_STATUSES)
        fields = {"name": name, "status": status, "observed": observed, "unit": unit}
        fields.update(expected=expected, evidence=evidence, summary=summary)
        record = self._append("check", fields)
        check = CheckRecord(
            **{key: record[key] for key in fields},
            time=record["time"],
            seq=record["seq"],
        )
        self.checks.append(check)
        return check

    def record_probe(self, result: ProbeResult) -> CheckRecord:
        """Journal a probe result as a check whose observed value is its latency."""
        evidence = dict(result.to_dict())
        evidence.setdefault("http_status", result.http_status)
        return self.check(
            result.name,
            result.status,
            observed=result.latency_ms,
            unit="ms",
            evidence=evidence,
            summary=result.summary(),
        )

    def note(self, text: str, **fields: Any) -> dict[str, Any]:
        """Journal a free-text note with optional structured fields."""
        if not isinstance(text, str):
            raise TypeError(f"note text must be a str, not {type(text).__name__}")
        return self._append("note", {**fields, "text": text})

    def action(self, name: str, mode: str, **fields: Any) -> dict[str, Any]:
        """Journal an action step; ``mode`` is one of ``ACTION_MODES``."""
        _require_text("action name", name)
        _require_choice("action mode", mode, ACTION_MODES)
        record = self._append("action", {**fields, "name": name, "mode": mode})
        self.actions.append(record)
        return record

    def checks_frame(self) -> pd.DataFrame:
        """Return the checks as a DataFrame with one row per check."""
        import pandas as pd  # imported here so that importing veerunbook stays fast

        columns = ["name", "status", "observed", "unit", "expected", "summary", "time"]
        rows = [[getattr(check, column) for column in columns] for check in self.checks]
        return pd.DataFrame(rows, columns=columns)

    def verdict(self) -> str:
        """Return ``findings`` when a check failed or errored, else ``ok``."""
        failed = any(check.status in FAILING_STATUSES for check in self.checks)
        return "findings" if failed else "ok"

    def finish(self, status: str | None = None) -> str:
        """End the run and return its status (default: the verdict).

        A standalone run journals ``run.finished``. Calling it again returns the first
        status and journals nothing.
        """
        if self.status is not None:
            return self.status
        verdict = self.verdict()
        status = status or verdict
        _require_choice("run status", status, RUN_STATUSES)
        duration = time.monotonic() - self._started
        if self.standalone:
            self._journal_finish(status, duration)
        elif status != verdict:
            # The runner writes run.finished from the journal, so this note carries
            # a status the procedure chose over the checks' verdict. An example is
            # "ok" once its change fixed what the failed checks found before it.
            text = (
                f"run status set by the procedure: {status} (the checks give {verdict})"
            )
            self._append("note", {"text": text, "end_status": status})
        self.status = status
        return status

    def __enter__(self) -> RunContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("aborted")
        else:
            self.finish("failed")

    def _journal_finish(self, status: str, duration: float) -> None:
        counts = dict.fromkeys(CHECK_STATUSES, 0)
        for check in self.checks:
            counts[check.status] += 1
        fields = {
            "procedure": self.procedure,
            "status": status,
            "counts": counts,
            "actions": len(self.actions),
            "duration_s": round(duration, 3),
            "notebook": None,
            "mode": "standalone",
        }
        self._append("run.finished", fields)
        message = "run %s of %s finished with status %s in %.1f s (%s)"
        where = self.incident_dir
        _log.info(message, self.run_id, self.procedure, status, duration, where)

    def _append(self, event: str, fields: dict[str, Any]) -> dict[str, Any]:
        if self.status is not None:
            raise UsageError(
                f"run {self.run_id} is already finished: call start_run() to record "
                "another run."
            )
        if "run" in fields:
            raise UsageError(
                "the field name 'run' is reserved for the run id, so rename it."
            )
        limited = {
            name: bounded(value, self.journal.redactor)
            for name, value in fields.items()
        }
        return self.journal.append(event, run=self.run_id, **limited)


def _configured_redactor() -> Redactor:
    from veerunbook.config import load_config

    return load_config().redactor()


def _mask_secret_params(params: Mapping[str, Any]) -> dict[str, Any]:
    masked = {}
    for name, value in params.items():
        key = str(name)
        secret = _SECRET_NAME.search(key) and not key.lower().endswith("_env")
        masked[key] = MASK if secret and value is not None and value != "" else value
    return masked


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER variable and no passwd entry (containers)
        return "unknown"


def _require_text(label: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{label} must be a non-empty string, not {value!r}.")


def _require_choice(label: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(f"invalid {label} {value!r}: use one of {', '.join(choices)}.")
