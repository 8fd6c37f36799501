"""Report files written from an incident's journal, such as its timeline.

A report written into the incident folder is journaled as ``report.written`` with
``report`` (what it is, such as ``timeline``), ``format`` and ``files``, a mapping of
each file's path relative to the incident folder to its SHA-256. ``veerunbook verify``
checks those files as it checks run notebooks, so a report changed afterwards is
detected. A report written outside the incident folder is not journaled.
"""

from __future__ import annotations

import logging
from pathlib import Path

from veerunbook.errors import UsageError
from veerunbook.journal import Journal, sha256_file, write_atomic
from veerunbook.redact import Redactor

REPORTS_DIR = "reports"
REPORT_EVENT = "report.written"

_log = logging.getLogger("veerunbook.reports")


def default_report_path(folder: Path, name: str) -> Path:
    """Return ``<incident>/reports/<name>``."""
    return Path(folder) / REPORTS_DIR / name


def write_report(
    folder: Path,
    path: Path,
    data: bytes,
    *,
    report: str,
    fmt: str,
    redactor: Redactor | None = None,
) -> Path:
    """Write ``data`` to ``path`` atomically; journal it when inside ``folder``.

    ``folder`` is the incident folder. Returns the absolute path written. Raises
    UsageError when the file cannot be written, and JournalError when the journal
    cannot be appended to.
    """
    target = Path(path).absolute()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, data)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise UsageError(
            f"failed to write the {report} report {str(target)!r} ({reason}): "
            "choose a writable path with -o."
        ) from None
    relative = inside_incident(folder, target)
    if relative is None:
        _log.info("wrote the %s report to %s (outside the incident)", report, target)
        return target
    files = {relative: sha256_file(target)}
    Journal(folder, redactor).append(
        REPORT_EVENT, report=report, format=fmt, files=files
    )
    _log.info("wrote the %s report to %s and journaled it", report, target)
    return target


def inside_incident(folder: Path, path: Path) -> str | None:
    """Return ``path`` relative to the incident folder, or None when outside it."""
    root = Path(folder).resolve()
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root):
        return None
    return resolved.relative_to(root).as_posix()
