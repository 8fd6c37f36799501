"""Incidents: one folder per incident in the archive.

``<archive>/<incident-id>/`` contains ``incident.json`` (the current state below),
``journal.jsonl`` with its ``journal.head`` and ``journal.lock``, and ``runs/`` for the
executed notebooks. ``open_or_update`` and ``escalate`` journal every change they
make themselves (``incident.opened``, then ``incident.updated``), so callers never
journal them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from veerunbook.errors import JournalError, UsageError
from veerunbook.journal import (
    Journal,
    file_lock,
    utc_timestamp,
    validate_incident_id,
    write_atomic,
)
from veerunbook.redact import Redactor
from veerunbook.severity import ESCALATION

ARCHIVE_ENV = "VEERUNBOOK_ARCHIVE"
DEFAULT_ARCHIVE = "outputs"
INCIDENT_FILE = "incident.json"
RUNS_DIR = "runs"
LOCK_FILE = "incident.lock"
SEVERITIES = ("P0", "P1", "P2", "P3")
MAX_TITLE_LENGTH = 200
MAX_PERSON_LENGTH = 100
# The contact roles of the escalation matrix, in the order a P0 engages them.
ESCALATION_ROLES = tuple(
    dict.fromkeys(role for rows in ESCALATION.values() for *_, role in rows if role)
)

_log = logging.getLogger("veerunbook.incident")


@dataclass(frozen=True)
class SeverityChange:
    """One severity assignment: when, the new severity and the one it replaced."""

    time: str
    severity: str
    previous: str | None


@dataclass
class Incident:
    """The state stored in ``incident.json``, with times as UTC ISO-8601 strings."""

    id: str
    title: str
    severity: str | None
    opened_at: str
    acknowledged_at: str | None
    resolved_at: str | None
    updated_at: str
    severity_history: list[SeverityChange] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Convert to the JSON object stored in ``incident.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        """Build from the object in ``incident.json``.

        Raises KeyError or TypeError when a field is missing or unknown.
        """
        history = [SeverityChange(**change) for change in data["severity_history"]]
        return cls(**{**data, "severity_history": history})


def archive_root(explicit: str | None = None) -> Path:
    """Return the archive root as an absolute path.

    The root is ``explicit``, else ``$VEERUNBOOK_ARCHIVE``, else ``./outputs``. It is
    made absolute so that a kernel started in another working folder writes there too.
    """
    chosen = explicit or os.environ.get(ARCHIVE_ENV) or DEFAULT_ARCHIVE
    return Path(chosen).expanduser().absolute()


def incident_dir(archive: Path, incident_id: str) -> Path:
    """Return the folder of an incident, which is guaranteed to be inside ``archive``.

    Raises UsageError for an invalid id, or when the folder is a symbolic link that
    leads out of the archive.
    """
    validate_incident_id(incident_id)
    root = Path(archive).resolve()
    folder = root / incident_id
    if not folder.resolve().is_relative_to(root):
        raise UsageError(
            f"incident folder {folder} leads outside the archive {root}: replace the "
            "symbolic link with a folder or choose another incident id."
        )
    return folder


def load_incident(directory: Path) -> Incident:
    """Read an incident folder's ``incident.json``.

    Raises UsageError when the incident does not exist and JournalError when the file
    cannot be read or does not have the expected fields.
    """
    path = Path(directory) / INCIDENT_FILE
    try:
        data = json.loads(path.read_bytes())
        return Incident.from_dict(data)
    except FileNotFoundError:
        raise UsageError(
            f"incident {Path(directory).name!r} not found because {path} does not "
            "exist: check the incident id and the archive path."
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise JournalError(
            f"{path} cannot be read as an incident ({exc.__class__.__name__}: {exc}). "
            "Restore it from a copy or run veerunbook verify on the incident."
        ) from exc


def open_or_update(
    archive: Path,
    incident_id: str,
    *,
    title: str | None = None,
    severity: str | None = None,
    acknowledge: bool = False,
    resolve: bool = False,
    reopen: bool = False,
    acknowledged_by: str | None = None,
    resolved_by: str | None = None,
    redactor: Redactor | None = None,
) -> Incident:
    """Create the incident or apply the given changes, journaling what changed.

    ``None`` and ``False`` leave a value as it is. A first acknowledgement or
    resolution is kept when repeated. ``acknowledged_by`` and ``resolved_by`` name
    the person, and a named acknowledgement or resolution is journaled every time:
    a repeated one journals the unchanged first time with the new name, so the
    timeline shows when each person acted and ``incident.json`` keeps the first
    time. ``reopen`` clears the
    resolution of a resolved incident and journals when that happened. Every change
    is journaled before ``incident.json`` is rewritten, so the journal never misses a
    change.
    """
    _check_severity(severity)
    if acknowledged_by is not None:
        acknowledged_by = check_person(acknowledged_by)
    if resolved_by is not None:
        resolved_by = check_person(resolved_by)
    if redactor is None:
        redactor = Redactor()
    if title is not None:
        title = redactor.mask(check_title(title))
    folder = incident_dir(archive, incident_id)
    (folder / RUNS_DIR).mkdir(parents=True, exist_ok=True)

    with file_lock(folder / LOCK_FILE):
        now = utc_timestamp()
        if (folder / INCIDENT_FILE).exists():
            incident = load_incident(folder)
            event = "incident.updated"
        else:
            incident = Incident(incident_id, "", None, now, None, None, now)
            event = "incident.opened"
        changes = _apply(incident, now, title, severity, acknowledge, resolve)
        if acknowledge and acknowledged_by:
            changes["acknowledged_at"] = incident.acknowledged_at
            changes["acknowledged_by"] = acknowledged_by
        if resolve and resolved_by:
            changes["resolved_at"] = incident.resolved_at
            changes["resolved_by"] = resolved_by
        if reopen and incident.resolved_at is not None and not resolve:
            changes["reopened_at"] = now
            changes["previous_resolved_at"] = incident.resolved_at
            incident.resolved_at = None
        if event == "incident.updated" and not changes:
            return incident

        incident.updated_at = now
        Journal(folder, redactor).append(event, incident=incident_id, **changes)
        data = json.dumps(incident.to_dict(), ensure_ascii=False, indent=2) + "\n"
        write_atomic(folder / INCIDENT_FILE, data.encode())
    if event == "incident.opened":
        fields = ", ".join(f"{key} {value}" for key, value in sorted(changes.items()))
        _log.info("%s %s%s", event, incident_id, f" ({fields})" if fields else "")
    else:
        _log.info("%s %s (changed: %s)", event, incident_id, ", ".join(sorted(changes)))
    return incident


def escalate(
    archive: Path,
    incident_id: str,
    role: str,
    *,
    by: str,
    redactor: Redactor | None = None,
) -> dict[str, Any]:
    """Journal that the incident was escalated to a contact role, and by whom.

    ``role`` is one of the escalation matrix's contact roles (``ESCALATION_ROLES``).
    Each call journals one ``incident.updated`` event with ``escalated_to`` and
    ``escalated_by``, because escalating twice to the same role is a fact worth
    keeping. Returns the journaled event. Raises UsageError for an unknown role or
    incident.
    """
    if role not in ESCALATION_ROLES:
        raise UsageError(
            f"unknown escalation role {role!r}: use one of "
            f"{', '.join(ESCALATION_ROLES)}."
        )
    by = check_person(by)
    if redactor is None:
        redactor = Redactor()
    folder = incident_dir(archive, incident_id)
    load_incident(folder)  # raises UsageError before the lock file is created
    with file_lock(folder / LOCK_FILE):
        incident = load_incident(folder)
        incident.updated_at = utc_timestamp()
        fields = {"escalated_to": role, "escalated_by": by}
        event = Journal(folder, redactor).append(
            "incident.updated", incident=incident_id, **fields
        )
        data = json.dumps(incident.to_dict(), ensure_ascii=False, indent=2) + "\n"
        write_atomic(folder / INCIDENT_FILE, data.encode())
    _log.info("incident.updated %s (changed: escalated_to %s)", incident_id, role)
    return event


def _apply(
    incident: Incident,
    now: str,
    title: str | None,
    severity: str | None,
    acknowledge: bool,
    resolve: bool,
) -> dict[str, Any]:
    """Apply the requested changes to ``incident`` and return the changed fields."""
    changes: dict[str, Any] = {}
    if title is not None and title != incident.title:
        incident.title = changes["title"] = title
    if severity is not None and severity != incident.severity:
        change = SeverityChange(now, severity, incident.severity)
        incident.severity_history.append(change)
        incident.severity = changes["severity"] = severity
        changes["previous_severity"] = change.previous
    if acknowledge and incident.acknowledged_at is None:
        incident.acknowledged_at = changes["acknowledged_at"] = now
    if resolve and incident.resolved_at is None:
        incident.resolved_at = changes["resolved_at"] = now
    return changes


def _check_severity(severity: str | None) -> None:
    if severity is not None and severity not in SEVERITIES:
        raise UsageError(
            f"invalid severity {severity!r}: use one of {', '.join(SEVERITIES)} "
            "(P0 is the most severe)."
        )


def check_person(name: str) -> str:
    """Return the stripped name of a responder, or raise UsageError if it is not
    one short line."""
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_PERSON_LENGTH:
        raise UsageError(
            f"invalid responder name {stripped[:40]!r}: use 1 to {MAX_PERSON_LENGTH} "
            "characters."
        )
    if any(ord(c) < 32 for c in stripped):
        raise UsageError(
            f"invalid responder name {stripped[:40]!r}: use one line without "
            "control characters."
        )
    return stripped


def check_title(title: str) -> str:
    """Return the stripped title, or raise UsageError if it is not one short line."""
    title = title.strip()
    if len(title) > MAX_TITLE_LENGTH or any(ord(c) < 32 for c in title):
        raise UsageError(
            f"invalid incident title {title[:40]!r}: use one line of at most "
            f"{MAX_TITLE_LENGTH} characters."
        )
    return title
