"""The incident journal: an append-only, hash-chained JSON Lines log.

Each line of ``<incident>/journal.jsonl`` is one JSON object with sorted keys: ``seq``
(1-based line number), ``time`` (UTC, ISO-8601 with microseconds and ``Z``),
``event``, ``prev`` and the event's own fields. ``prev`` is the SHA-256 (hex) of the
previous line's UTF-8 bytes without its line feed, and 64 zeros on the first line, so an
edited, deleted, inserted or reordered line breaks the chain at the line after it.

Lines removed from the end leave no broken link, so each append also records the seq and
hash of the new last line in ``journal.head``. ``verify`` accepts a head that lags the
journal by one line, which is what a crash between the two writes leaves.

NOTE: the chain is tamper-evident, not tamper-proof. A user with write access to the
folder can recompute every line after an edit and the head to match. Only a copy of the
head hash kept elsewhere detects that.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path, PurePath
from typing import Any

from veerunbook.errors import JournalError, UsageError
from veerunbook.redact import Redactor

JOURNAL_FILE = "journal.jsonl"
HEAD_FILE = "journal.head"
LOCK_FILE = "journal.lock"
GENESIS = "0" * 64
RESERVED_FIELDS = frozenset({"seq", "time", "event", "prev"})

# One journal line may be at most 1 MiB, so a runaway evidence blob (a whole response
# body) is rejected instead of bloating every later read of the journal.
MAX_LINE_BYTES = 1 << 20

_INCIDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
_EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*", re.ASCII)
_TAIL_BLOCK = 4096

_log = logging.getLogger("veerunbook.journal")


def validate_incident_id(value: str) -> str:
    """Return ``value`` if it is a safe incident id, else raise UsageError.

    An incident id names a folder in the archive, so it is 1 to 64 ASCII letters,
    digits, ``.``, ``_`` or ``-``, starts with a letter or digit and never contains
    ``..``. That rules out path separators, ``.``, ``..``, NUL and hidden folders.
    """
    if not isinstance(value, str):
        raise TypeError(f"incident id must be a str, not {type(value).__name__}")
    if _INCIDENT_ID.fullmatch(value) and ".." not in value:
        return value
    quoted = repr(value[:40]) + ("..." if len(value) > 40 else "")
    raise UsageError(
        f"invalid incident id {quoted}: use 1 to 64 ASCII letters, digits, '.', '_' "
        "or '-', starting with a letter or digit and without '..', "
        "for example INC-20261204-161530-3f9a."
    )


def new_incident_id(now: datetime | None = None) -> str:
    """Create an id such as ``INC-20261204-161530-3f9a`` (UTC time, random suffix).

    A naive ``now`` is taken as UTC.
    """
    moment = _as_utc(now or datetime.now(UTC))
    return f"INC-{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def utc_timestamp(now: datetime | None = None) -> str:
    """Format ``now`` (default: the current time) as ``2026-12-04T16:15:30.123456Z``."""
    moment = _as_utc(now or datetime.now(UTC))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def sha256_file(path: Path | str) -> str:
    """Compute the SHA-256 (hex) of a file's content, reading it in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def sha256_line(line: bytes) -> str:
    """Compute the chain hash of one journal line given without its line feed."""
    return hashlib.sha256(line).hexdigest()


@contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an ``fcntl.flock`` on ``path`` for the duration of the block.

    An exclusive lock creates the lock file. A shared lock only opens it, so readers
    work in a read-only archive, and it locks nothing when the file does not exist.
    """
    if shared and not path.exists():
        yield
        return
    flags = os.O_RDONLY if shared else os.O_RDWR | os.O_CREAT
    fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` through a synced temporary file beside it.

    The temporary file is removed if anything fails before the rename.
    """
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 because the name outlives it
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def to_json_value(value: Any) -> Any:
    """Convert ``value`` to plain JSON types, with None for NaN and infinities.

    Datetimes, dates and paths become strings, and numpy or pandas values are
    converted through their ``tolist()``. Other types raise UsageError.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(item) for item in value]
    if isinstance(value, datetime):
        return utc_timestamp(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return to_json_value(tolist())
    raise UsageError(
        f"cannot record a value of type {type(value).__name__} in the journal: "
        "pass str, int, float, bool, None, or lists and mappings of them."
    )


def encode_line(record: Mapping[str, Any]) -> bytes:
    """Encode one record as a strict, sorted, single-line JSON document (no line feed).

    U+2028 and U+2029 are escaped because ``str.splitlines`` treats them as line breaks.
    """
    text = json.dumps(
        record,
        allow_nan=False,
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


class Journal:
    """The journal of one incident folder, which masks every field before hashing it."""

    def __init__(
        self, incident_dir: Path | str, redactor: Redactor | None = None
    ) -> None:
        self.incident_dir = Path(incident_dir)
        self.path = self.incident_dir / JOURNAL_FILE
        self.redactor = redactor if redactor is not None else Redactor()

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event under the journal lock and return the record as written.

        Raises UsageError for an invalid event name, a reserved or unsupported field or
        an oversized line, and JournalError when the journal cannot be appended to.
        """
        if not _EVENT_NAME.fullmatch(event):
            raise UsageError(
                f"invalid journal event name {event!r}: use lowercase dotted words "
                "such as run.started."
            )
        clash = sorted(RESERVED_FIELDS.intersection(fields))
        if clash:
            raise UsageError(
                f"journal fields {clash} are reserved for the chain, so rename them."
            )
        plain = to_json_value(fields)
        # Checked before masking too, so an oversized value is rejected without the cost
        # of masking it.
        _check_line_size(event, len(encode_line(plain)))
        masked = self.redactor.mask_obj(plain)
        if not self.incident_dir.is_dir():
            raise JournalError(
                f"incident folder {self.incident_dir} not found: open the incident "
                "before journaling into it."
            )
        try:
            with file_lock(self.incident_dir / LOCK_FILE):
                return self._append_locked(event, masked)
        except OSError as exc:
            raise JournalError(
                f"cannot append to {self.path} ({exc.strerror or exc}): check that "
                "the archive is writable and has free space."
            ) from exc

    def _append_locked(self, event: str, fields: dict[str, Any]) -> dict[str, Any]:
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o644)
        try:
            last = _read_last_line(fd, self.path)
            seq = 1 if last is None else _seq_of(last, self.path) + 1
            prev = GENESIS if last is None else sha256_line(last)
            record = {**fields, "seq": seq, "time": utc_timestamp()}
            record.update(event=event, prev=prev)
            line = encode_line(record)
            _check_line_size(event, len(line))
            written = os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        if written != len(line) + 1:
            raise JournalError(
                f"short write to {self.path} ({written} of {len(line) + 1} bytes). "
                "The last line is incomplete, so restore the journal from a copy."
            )
        head = {"seq": seq, "sha256": sha256_line(line)}
        write_atomic(self.incident_dir / HEAD_FILE, encode_line(head) + b"\n")
        _log.debug("journaled %s as line %d of %s", event, seq, self.path)
        return record

    def events(self) -> list[dict[str, Any]]:
        """Read every record of the journal, or none when it does not exist yet."""
        try:
            with file_lock(self.incident_dir / LOCK_FILE, shared=True):
                data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        records = []
        for number, line in enumerate(data.splitlines(), start=1):
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise JournalError(
                    f"line {number} of {self.path} is not valid JSON ({exc}). "
                    "Run veerunbook verify on the incident to see what changed."
                ) from exc
        return records


def _check_line_size(event: str, size: int) -> None:
    if size >= MAX_LINE_BYTES:
        raise UsageError(
            f"journal {event} event is {size} bytes but the limit is "
            f"{MAX_LINE_BYTES} bytes, so record an excerpt of the evidence."
        )


def _read_last_line(fd: int, path: Path) -> bytes | None:
    """Return the journal's last line without its line feed, reading from the end."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    if os.pread(fd, 1, size - 1) != b"\n":
        raise JournalError(
            f"the last line of {path} is incomplete (no line feed at the end). "
            "Run veerunbook verify on the incident before appending."
        )
    position = size - 1
    tail = b""
    while position > 0:
        start = max(0, position - _TAIL_BLOCK)
        block = os.pread(fd, position - start, start)
        position = start
        tail = block + tail
        newline = block.rfind(b"\n")
        if newline >= 0:
            return tail[newline + 1 :]
    return tail


def _seq_of(line: bytes, path: Path) -> int:
    try:
        seq = json.loads(line)["seq"]
    except (ValueError, TypeError, KeyError) as exc:
        raise JournalError(
            f"the last line of {path} has no readable seq. "
            "Run veerunbook verify on the incident before appending."
        ) from exc
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise JournalError(f"the last line of {path} has a non-integer seq {seq!r}.")
    return seq


def readable_events(path: Path) -> list[dict[str, Any]]:
    """Parse the journal line by line, skipping lines that are not valid JSON.

    A damaged line from earlier must not cost this run its record; ``verify``
    reports the damage.
    """
    events = []
    with open(path, "rb") as journal:
        for number, line in enumerate(journal, start=1):
            try:
                event = json.loads(line)
            except ValueError:
                _log.warning("journal %s line %d is not valid JSON", path, number)
                continue
            if isinstance(event, dict):
                events.append(event)
    return events
