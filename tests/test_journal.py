"""Tests for the hash-chained incident journal and its verification."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from veerunbook.errors import JournalError, UsageError
from veerunbook.journal import (
    GENESIS,
    HEAD_FILE,
    JOURNAL_FILE,
    Journal,
    new_incident_id,
    sha256_file,
    validate_incident_id,
    write_atomic,
)
from veerunbook.redact import Redactor
from veerunbook.verify import verify

TIME_FORMAT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def make_journal(folder: Path, events: int = 3) -> Journal:
    folder.mkdir(parents=True, exist_ok=True)
    journal = Journal(folder)
    for index in range(events):
        journal.append("note", text=f"step {index}", index=index)
    return journal


def journal_lines(folder: Path) -> list[bytes]:
    return (folder / JOURNAL_FILE).read_bytes().splitlines()


def write_lines(folder: Path, lines: list[bytes]) -> None:
    (folder / JOURNAL_FILE).write_bytes(b"".join(line + b"\n" for line in lines))


def test_first_line_links_to_zeros(tmp_path: Path) -> None:
    make_journal(tmp_path, 1)
    first = json.loads(journal_lines(tmp_path)[0])
    assert first["prev"] == GENESIS
    assert first["seq"] == 1


def test_each_line_links_to_previous(tmp_path: Path) -> None:
    make_journal(tmp_path, 4)
    lines = journal_lines(tmp_path)
    for before, line in itertools.pairwise(lines):
        assert json.loads(line)["prev"] == hashlib.sha256(before).hexdigest()


def test_line_format_is_sorted_compact_json(tmp_path: Path) -> None:
    make_journal(tmp_path, 1)
    line = journal_lines(tmp_path)[0].decode()
    record = json.loads(line)
    assert list(record) == sorted(record)
    assert line == json.dumps(record, sort_keys=True, separators=(",", ":"))
    assert TIME_FORMAT.fullmatch(record["time"])


def test_append_returns_record_as_written(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 2)
    record = journal.append("check", name="health", status="pass")
    assert record == json.loads(journal_lines(tmp_path)[-1])
    assert record["seq"] == 3


def test_non_finite_numbers_become_null(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 0)
    journal.append("check", nan=float("nan"), values=[float("inf"), -float("inf"), 1.5])
    line = journal_lines(tmp_path)[0]
    assert b"NaN" not in line
    assert b"Infinity" not in line
    assert json.loads(line)["values"] == [None, None, 1.5]


def test_unicode_kept_and_line_separators_escaped(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 0)
    journal.append("note", text="café\u2028next")
    line = journal_lines(tmp_path)[0]
    assert "café".encode() in line
    assert b"\\u2028" in line
    assert len((tmp_path / JOURNAL_FILE).read_text().splitlines()) == 1


def test_datetimes_and_paths_become_strings(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 0)
    moment = datetime(2026, 12, 4, 17, 15, 30, tzinfo=timezone(timedelta(hours=1)))
    record = journal.append("note", at=moment, where=Path("runs/a.ipynb"))
    assert record["at"] == "2026-12-04T16:15:30.000000Z"
    assert record["where"] == "runs/a.ipynb"


def test_unsupported_value_rejected(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 0)
    with pytest.raises(UsageError, match="type object"):
        journal.append("note", value=object())


def test_reserved_field_rejected(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 0)
    with pytest.raises(UsageError, match="reserved"):
        journal.append("note", seq=7)


def test_invalid_event_name_rejected(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 0)
    with pytest.raises(UsageError, match="event name"):
        journal.append("Run Started")


def test_oversized_line_rejected(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 0)
    with pytest.raises(UsageError, match="limit"):
        journal.append("check", evidence="x" * (1 << 20))
    assert not (tmp_path / JOURNAL_FILE).exists()


def test_append_needs_incident_folder(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="not found"):
        Journal(tmp_path / "missing").append("note", text="x")


def test_append_after_incomplete_line_fails(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 1)
    with (tmp_path / JOURNAL_FILE).open("ab") as stream:
        stream.write(b'{"seq":2')
    with pytest.raises(JournalError, match="incomplete"):
        journal.append("note", text="after")


def test_append_after_long_line(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 1)
    journal.append("note", text="long line " * 2_000)
    record = journal.append("note", text="after")
    assert record["seq"] == 3
    assert record["prev"] == hashlib.sha256(journal_lines(tmp_path)[1]).hexdigest()


def test_events_reads_every_record(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 3)
    assert [event["index"] for event in journal.events()] == [0, 1, 2]


def test_events_of_new_incident_empty(tmp_path: Path) -> None:
    assert Journal(tmp_path).events() == []


def test_redactor_masks_before_hashing(tmp_path: Path) -> None:
    secret = "vbtok_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    journal = Journal(tmp_path, Redactor([secret]))
    record = journal.append("note", text=f"token {secret}", header={"auth": secret})
    data = (tmp_path / JOURNAL_FILE).read_bytes()
    assert secret.encode() not in data
    assert record["text"] == "token ***"
    assert verify(tmp_path).ok


def test_default_redactor_masks_url_password(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append("note", text="postgres://app:Xk9pw-2026@127.0.0.1:5432/app failed")
    assert b"Xk9pw-2026" not in (tmp_path / JOURNAL_FILE).read_bytes()


def test_verify_intact_journal(tmp_path: Path) -> None:
    make_journal(tmp_path, 5)
    result = verify(tmp_path)
    assert result.ok
    assert result.events == 5
    assert result.problem is None


def test_verify_missing_journal(tmp_path: Path) -> None:
    result = verify(tmp_path)
    assert not result.ok
    assert result.path == JOURNAL_FILE


def test_verify_detects_every_byte_edit(tmp_path: Path) -> None:
    make_journal(tmp_path, 3)
    original = (tmp_path / JOURNAL_FILE).read_bytes()
    undetected = []
    for position in range(len(original)):
        edited = bytearray(original)
        edited[position] ^= 0x01
        (tmp_path / JOURNAL_FILE).write_bytes(bytes(edited))
        if verify(tmp_path).ok:
            undetected.append(position)
    assert undetected == []


def test_verify_detects_every_head_edit(tmp_path: Path) -> None:
    make_journal(tmp_path, 2)
    original = (tmp_path / HEAD_FILE).read_bytes()
    undetected = []
    for position in range(len(original) - 1):  # the final line feed is not content
        edited = bytearray(original)
        edited[position] ^= 0x01
        (tmp_path / HEAD_FILE).write_bytes(bytes(edited))
        if verify(tmp_path).ok:
            undetected.append(position)
    assert undetected == []


def test_verify_names_line_after_edit(tmp_path: Path) -> None:
    make_journal(tmp_path, 3)
    lines = journal_lines(tmp_path)
    lines[1] = lines[1].replace(b"step 1", b"step 9")
    write_lines(tmp_path, lines)
    result = verify(tmp_path)
    assert result.line == 3
    assert result.problem is not None
    assert "line 3" in result.problem
    assert result.events == 2


def test_verify_detects_deleted_line(tmp_path: Path) -> None:
    make_journal(tmp_path, 4)
    lines = journal_lines(tmp_path)
    write_lines(tmp_path, lines[:1] + lines[2:])
    result = verify(tmp_path)
    assert not result.ok
    assert result.line == 2


def test_verify_detects_deleted_last_line(tmp_path: Path) -> None:
    make_journal(tmp_path, 4)
    write_lines(tmp_path, journal_lines(tmp_path)[:-1])
    result = verify(tmp_path)
    assert not result.ok
    assert result.path == HEAD_FILE
    assert result.problem is not None
    assert "removed from the end" in result.problem


def test_verify_detects_emptied_journal(tmp_path: Path) -> None:
    make_journal(tmp_path, 2)
    (tmp_path / JOURNAL_FILE).write_bytes(b"")
    assert not verify(tmp_path).ok


def test_verify_detects_deleted_head(tmp_path: Path) -> None:
    make_journal(tmp_path, 2)
    (tmp_path / HEAD_FILE).unlink()
    result = verify(tmp_path)
    assert not result.ok
    assert result.path == HEAD_FILE


def test_verify_detects_inserted_line(tmp_path: Path) -> None:
    make_journal(tmp_path, 3)
    lines = journal_lines(tmp_path)
    write_lines(tmp_path, [lines[0], lines[0], *lines[1:]])
    result = verify(tmp_path)
    assert not result.ok
    assert result.line == 2


def test_verify_detects_swapped_lines(tmp_path: Path) -> None:
    make_journal(tmp_path, 4)
    lines = journal_lines(tmp_path)
    write_lines(tmp_path, [lines[0], lines[2], lines[1], lines[3]])
    result = verify(tmp_path)
    assert not result.ok
    assert result.line == 2


def test_verify_detects_incomplete_last_line(tmp_path: Path) -> None:
    make_journal(tmp_path, 2)
    with (tmp_path / JOURNAL_FILE).open("ab") as stream:
        stream.write(b'{"seq":3')
    result = verify(tmp_path)
    assert not result.ok
    assert result.line == 3


def test_verify_accepts_head_one_line_behind(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 2)
    head_before = (tmp_path / HEAD_FILE).read_bytes()
    journal.append("note", text="written before a crash")
    (tmp_path / HEAD_FILE).write_bytes(head_before)
    assert verify(tmp_path).ok


def test_verify_rejects_head_two_lines_behind(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 2)
    head_before = (tmp_path / HEAD_FILE).read_bytes()
    journal.append("note", text="three")
    journal.append("note", text="four")
    (tmp_path / HEAD_FILE).write_bytes(head_before)
    assert not verify(tmp_path).ok


def finish_run(tmp_path: Path) -> Path:
    notebook = tmp_path / "runs" / "RUN-1-triage.ipynb"
    notebook.parent.mkdir(parents=True)
    notebook.write_text('{"cells": []}\n')
    journal = make_journal(tmp_path, 1)
    journal.append(
        "run.finished",
        run="RUN-1",
        status="ok",
        notebook="runs/RUN-1-triage.ipynb",
        notebook_sha256=sha256_file(notebook),
    )
    journal.append("note", text="after the run")
    return notebook


def test_verify_accepts_recorded_notebook(tmp_path: Path) -> None:
    finish_run(tmp_path)
    assert verify(tmp_path).ok


def test_verify_detects_changed_notebook(tmp_path: Path) -> None:
    notebook = finish_run(tmp_path)
    notebook.write_text('{"cells": [1]}\n')
    result = verify(tmp_path)
    assert not result.ok
    assert result.path == "runs/RUN-1-triage.ipynb"
    assert result.line == 2
    assert result.problem is not None
    assert "changed" in result.problem


def test_verify_detects_missing_notebook(tmp_path: Path) -> None:
    notebook = finish_run(tmp_path)
    notebook.unlink()
    result = verify(tmp_path)
    assert not result.ok
    assert result.path == "runs/RUN-1-triage.ipynb"
    assert result.problem is not None
    assert "missing" in result.problem


def test_verify_rejects_notebook_outside_incident(tmp_path: Path) -> None:
    folder = tmp_path / "INC-1"
    (tmp_path / "other.ipynb").write_text("{}")
    journal = make_journal(folder, 0)
    digest = sha256_file(tmp_path / "other.ipynb")
    journal.append("run.finished", notebook="../other.ipynb", notebook_sha256=digest)
    result = verify(folder)
    assert not result.ok
    assert result.problem is not None
    assert "outside" in result.problem


def test_verify_ignores_standalone_run_without_notebook(tmp_path: Path) -> None:
    journal = make_journal(tmp_path, 1)
    journal.append("run.finished", run="RUN-2", status="ok", notebook=None)
    assert verify(tmp_path).ok


# Each worker process appends 50 notes tagged with its number.
WORKER = """
import sys
from veerunbook.journal import Journal

journal = Journal(sys.argv[1])
for index in range(50):
    journal.append("note", worker=int(sys.argv[2]), index=index)
"""


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(number)])
        for number in range(20)
    ]
    exit_codes = [worker.wait(timeout=300) for worker in workers]
    events = Journal(tmp_path).events()
    result = verify(tmp_path)

    assert exit_codes == [0] * 20
    assert len(events) == 1000
    assert [event["seq"] for event in events] == list(range(1, 1001))
    assert {(e["worker"], e["index"]) for e in events} == {
        (worker, index) for worker in range(20) for index in range(50)
    }
    assert result.ok, result.problem
    assert result.events == 1000


@pytest.mark.parametrize(
    "value",
    [
        "../x",
        "a/b",
        "a\\b",
        ".",
        "..",
        "a..b",
        "x" * 65,
        "",
        "inc\x00",
        ".hidden",
        "-leading-dash",
        "INC-é",
        "INC 1",
        "INC-1\n",
        "/etc",
    ],
)
def test_invalid_incident_id_rejected(value: str) -> None:
    with pytest.raises(UsageError, match="invalid incident id"):
        validate_incident_id(value)


@pytest.mark.parametrize(
    "value", ["INC-20261204-161530-3f9a", "a", "x" * 64, "db_outage.2", "7"]
)
def test_valid_incident_id_accepted(value: str) -> None:
    assert validate_incident_id(value) == value


def test_invalid_id_message_truncates_value() -> None:
    with pytest.raises(UsageError) as caught:
        validate_incident_id("y" * 500)
    assert "y" * 41 not in str(caught.value)
    assert "letters, digits" in str(caught.value)


def test_new_incident_id_uses_utc_time() -> None:
    moment = datetime(2026, 12, 4, 17, 15, 30, tzinfo=timezone(timedelta(hours=1)))
    value = new_incident_id(moment)
    assert re.fullmatch(r"INC-20261204-161530-[0-9a-f]{4}", value)
    assert validate_incident_id(value) == value


def test_new_incident_ids_differ() -> None:
    moment = datetime(2026, 12, 4, tzinfo=UTC)
    assert len({new_incident_id(moment) for _ in range(20)}) > 1


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"runbook" * 400_000)
    assert sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_write_atomic_replaces_file(tmp_path: Path) -> None:
    target = tmp_path / "incident.json"
    target.write_text("old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["incident.json"]


def test_write_atomic_failure_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "incident.json"
    target.mkdir()
    (target / "keep").write_text("a non-empty folder cannot be replaced")
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["incident.json"]
