"""Verification of an incident's journal chain, head and run notebooks.

``verify`` re-reads the journal under a shared lock and checks every line's hash link,
its sequence number, the head file, and the SHA-256 of each run notebook that a
``run.finished`` line records and of each report file that a ``report.written`` line
records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from veerunbook.incident import INCIDENT_FILE
from veerunbook.journal import (
    GENESIS,
    HEAD_FILE,
    JOURNAL_FILE,
    LOCK_FILE,
    file_lock,
    sha256_file,
    sha256_line,
)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of ``verify``: the first problem found, or ``ok``.

    ``line`` is the journal line of the problem and ``path`` the file (relative to the
    incident folder) that has it. ``events`` counts the lines found intact before the
    first problem, or all lines when the journal is intact.
    """

    ok: bool
    problem: str | None
    line: int | None
    path: str | None
    events: int


class _Broken(Exception):
    def __init__(self, problem: str, path: str = JOURNAL_FILE) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = path


def verify(incident_dir: Path) -> VerifyResult:
    """Check the journal's hash chain, seq order, head, run files and incident.json.

    Every line must be strict JSON whose ``seq`` is its line number and whose ``prev``
    is the hash of the line before it. Every ``run.finished`` line with a ``notebook``
    needs that file, inside the incident folder, with the recorded ``notebook_sha256``,
    and likewise each file in its ``files`` mapping (path to SHA-256). Each file of a
    ``report.written`` line's ``files`` is checked against the last line that records
    it, because writing a report again replaces the file. The title,
    class, acknowledgement and resolution in ``incident.json`` must be the ones the
    ``incident.*`` events record.
    """
    incident_dir = Path(incident_dir)
    try:
        with file_lock(incident_dir / LOCK_FILE, shared=True):
            data = (incident_dir / JOURNAL_FILE).read_bytes()
            head = _read_head(incident_dir / HEAD_FILE)
    except FileNotFoundError:
        problem = f"{JOURNAL_FILE} not found in {incident_dir}"
        return VerifyResult(False, problem, None, JOURNAL_FILE, 0)

    lines = data.split(b"\n")
    complete, rest = lines[:-1], lines[-1]
    previous = GENESIS
    hashes = []
    latest = _latest_reports(complete)
    for number, line in enumerate(complete, start=1):
        try:
            _check_line(incident_dir, number, line, previous, latest)
        except _Broken as broken:
            return VerifyResult(False, broken.problem, number, broken.path, number - 1)
        previous = sha256_line(line)
        hashes.append(previous)

    count = len(complete)
    if rest:
        problem = f"line {count + 1} is incomplete: it does not end with a line feed"
        return VerifyResult(False, problem, count + 1, JOURNAL_FILE, count)
    head_problem = _check_head(head, hashes)
    if head_problem:
        return VerifyResult(False, head_problem, None, HEAD_FILE, count)
    incident_problem = _check_incident(incident_dir, complete)
    if incident_problem:
        return VerifyResult(False, incident_problem, None, INCIDENT_FILE, count)
    return VerifyResult(True, None, None, None, count)


# Fields of incident.json that only incident.* journal events may change.
_INCIDENT_FIELDS = ("title", "severity", "acknowledged_at", "resolved_at")


def _check_incident(incident_dir: Path, lines: list[bytes]) -> str | None:
    """Compare incident.json with the state the incident.* events add up to."""
    expected: dict[str, Any] = dict.fromkeys(_INCIDENT_FIELDS)
    expected["title"] = ""
    seen = False
    for line in lines:
        record = json.loads(line)
        if not str(record.get("event", "")).startswith("incident."):
            continue
        seen = True
        expected.update({k: record[k] for k in _INCIDENT_FIELDS if k in record})
    exists = (incident_dir / INCIDENT_FILE).exists()
    if not seen:
        if exists:
            return f"{INCIDENT_FILE} exists but the journal has no incident.opened line"
        return None
    try:
        actual = json.loads((incident_dir / INCIDENT_FILE).read_bytes())
    except FileNotFoundError:
        return f"{INCIDENT_FILE} is missing"
    except ValueError:
        return f"{INCIDENT_FILE} is not valid JSON"
    for name in _INCIDENT_FIELDS:
        if actual.get(name) != expected[name]:
            return (
                f"{INCIDENT_FILE} has {name} {actual.get(name)!r}, but the journal "
                f"records {expected[name]!r}"
            )
    return None


def _latest_reports(lines: list[bytes]) -> dict[str, int]:
    """Map each report file to the last ``report.written`` line that records it.

    Writing a report again replaces the file, so only its last record must match.
    """
    latest: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if b'"report.written"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        files = record.get("files") if isinstance(record, dict) else None
        if record.get("event") == "report.written" and isinstance(files, dict):
            latest.update(dict.fromkeys(files, number))
    return latest


def _check_line(
    incident_dir: Path,
    number: int,
    line: bytes,
    previous: str,
    latest_reports: dict[str, int],
) -> None:
    try:
        record = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError as exc:
        raise _Broken(f"line {number} is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(record, dict):
        raise _Broken(f"line {number} is not a JSON object")
    seq = record.get("seq")
    if seq != number or isinstance(seq, bool):
        raise _Broken(
            f"line {number} has seq {seq!r}, expected {number}: "
            "a line was removed, inserted or moved"
        )
    if record.get("prev") != previous:
        raise _Broken(
            f"line {number} has prev {str(record.get('prev'))[:12]!r}..., expected the "
            f"SHA-256 of line {number - 1} ({previous[:12]}...): the line before it "
            "was changed, or a line was removed, inserted or moved"
        )
    if not isinstance(record.get("event"), str) or not isinstance(
        record.get("time"), str
    ):
        raise _Broken(f"line {number} has no event name or time")
    label = _FILE_EVENTS.get(record["event"])
    if label is None:
        return
    if record.get("notebook") is not None:
        _check_file(
            incident_dir,
            number,
            record["notebook"],
            record.get("notebook_sha256"),
            label,
        )
    files = record.get("files")
    report = record["event"] == "report.written"
    if report and not isinstance(files, dict):
        raise _Broken(f"line {number} records a report without its files")
    if isinstance(files, dict):
        for name, expected in files.items():
            if report and latest_reports.get(name, number) != number:
                continue  # a later report.written records this file again
            _check_file(incident_dir, number, name, expected, label)


# Journal events that record files with their SHA-256, and what the files are.
_FILE_EVENTS = {"run.finished": "run file", "report.written": "report file"}


def _check_file(
    incident_dir: Path, number: int, name: Any, expected: Any, label: str
) -> None:
    if not isinstance(name, str) or not isinstance(expected, str):
        raise _Broken(f"line {number} records a {label} without a path and SHA-256")
    relative = PurePath(name)
    inside = (incident_dir / relative).resolve().is_relative_to(incident_dir.resolve())
    if relative.is_absolute() or ".." in relative.parts or not inside:
        raise _Broken(f"line {number} records {label} {name!r} outside the incident")
    try:
        actual = sha256_file(incident_dir / relative)
    except FileNotFoundError:
        raise _Broken(
            f"{label} {name} recorded on line {number} is missing", name
        ) from None
    except OSError as exc:
        raise _Broken(
            f"{label} {name} recorded on line {number} cannot be read "
            f"({exc.strerror or exc.__class__.__name__})",
            name,
        ) from None
    if actual != expected:
        raise _Broken(
            f"{label} {name} recorded on line {number} was changed: its SHA-256 "
            f"is {actual[:12]}..., the journal records {expected[:12]}...",
            name,
        )


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in strict JSON")


def _read_head(path: Path) -> dict[str, Any] | None:
    try:
        head = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        return {}
    return head if isinstance(head, dict) else {}


def _check_head(head: dict[str, Any] | None, hashes: list[str]) -> str | None:
    """Compare the head with the chain.

    A head one line behind the journal passes, because a crash between the journal
    write and the head write leaves exactly that. Every append writes the head, so a
    journal with lines and no head has lost its tail or its head file.
    """
    count = len(hashes)
    if head is None:
        return f"{HEAD_FILE} is missing" if count else None
    seq, digest = head.get("seq"), head.get("sha256")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return f"{HEAD_FILE} has no valid seq"
    if not isinstance(digest, str):
        return f"{HEAD_FILE} has no sha256"
    if seq > count:
        return (
            f"{HEAD_FILE} records line {seq} but the journal ends at line {count}: "
            "lines were removed from the end"
        )
    if seq < count - 1 or hashes[seq - 1] != digest:
        return (
            f"{HEAD_FILE} does not match line {seq}: the last lines of the journal "
            "were changed or replaced"
        )
    return None
