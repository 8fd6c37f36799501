"""Look at a SQLite database path before opening it, and open it without side effects.

``inspect_sqlite_file`` only calls ``stat``. It resolves a symlink, reports what the
path is and rejects anything but a regular file, because opening a FIFO for reading
blocks until a writer appears and a directory or a device is no database. The
``-journal``, ``-wal`` and ``-shm`` files beside it must be regular files too.

``open_read_only`` then picks the URI that reads the database without creating or
changing any file beside it:

- a rollback-journal database: ``mode=ro``, which creates no file;
- a WAL database with its ``-wal`` and ``-shm`` files: ``mode=ro&readonly_shm=1``.
  A plain ``mode=ro`` reader writes its read mark into the ``-shm`` file, and
  ``readonly_shm=1`` makes SQLite's unix VFS open that file read-only instead. The
  parameter is missing from sqlite.org's list of URI parameters; the tests check
  its effect on the SQLite that Python links;
- a WAL database without a ``-wal`` file: ``mode=ro&immutable=1``. Any other mode
  would create the ``-wal`` and ``-shm`` files. Skipping them is safe: without a
  ``-wal`` file every committed transaction is in the main file;
- a ``-wal`` file without its ``-shm`` file is not opened, because SQLite would have
  to create the ``-shm`` file to read the ``-wal`` file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from veerunbook.sqlite_peek import peek_database

_log = logging.getLogger("veerunbook.sqlite")

SIDECAR_SUFFIXES = ("-journal", "-wal", "-shm")
SQLITE_MAGIC = b"SQLite format 3\x00"
# Bytes 18 and 19 of the header, the file format write and read versions, are 2
# in a WAL database and 1 in a rollback-journal one.
_VERSION_BYTES = slice(18, 20)
WAL_VERSION = 2


@dataclass(frozen=True)
class FileState:
    """Size in bytes, modification time in nanoseconds and inode of one file."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, result: os.stat_result) -> FileState:
        """Return the state recorded in a ``stat`` result."""
        return cls(result.st_size, result.st_mtime_ns, result.st_ino)


@dataclass(frozen=True)
class SqliteFile:
    """A database path after ``inspect_sqlite_file``.

    ``resolved`` is the path with every symlink resolved, and SQLite opens that
    path. ``problem`` is the reason the file must not be opened, and None for a
    regular file. ``sidecars`` maps each existing ``-journal``, ``-wal`` or
    ``-shm`` suffix to the state of that file.
    """

    path: Path
    resolved: Path
    kind: str
    problem: str | None = None
    symlink: bool = False
    state: FileState | None = None
    sidecars: dict[str, FileState] = field(default_factory=dict)

    def sidecar(self, suffix: str) -> Path:
        """Return the path of the ``-journal``, ``-wal`` or ``-shm`` file."""
        return self.resolved.with_name(self.resolved.name + suffix)


@dataclass(frozen=True)
class OpenPlan:
    """The query string of the ``file:`` URI that opens a database read-only."""

    query: str

    @property
    def immutable(self) -> bool:
        """True when SQLite reads the file without locks and ignores its journal."""
        return "immutable=1" in self.query


def describe_mode(mode: int) -> str:
    """Return the kind of file that ``st_mode`` ``mode`` describes, with an article."""
    kinds = (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symlink"),
    )
    return next((kind for test, kind in kinds if test(mode)), "an unknown file type")


def inspect_sqlite_file(path: Path) -> SqliteFile:
    """Stat ``path`` and the files beside it, and record any reason not to open it.

    Nothing is opened. A symlink is resolved and reported, and the file it points
    to must be a regular file that this process can read.
    """
    path = Path(os.path.abspath(path))
    try:
        symlink = stat.S_ISLNK(os.lstat(path).st_mode)
        resolved = Path(os.path.realpath(path, strict=True))
        result = os.stat(resolved)
    except OSError as exc:
        kind = "missing" if isinstance(exc, FileNotFoundError) else "unknown"
        return SqliteFile(path, path, kind, _stat_problem(path, exc))
    kind = describe_mode(result.st_mode)
    subject = (
        f"{path} is a symlink to {resolved}, which is" if symlink else f"{path} is"
    )
    problem = None
    if not stat.S_ISREG(result.st_mode):
        problem = f"not a regular file: {subject} {kind}"
    elif not os.access(resolved, os.R_OK):
        problem = f"permission denied: cannot read {resolved}"
    file = SqliteFile(path, resolved, kind, problem, symlink, FileState.of(result))
    return file if problem else _with_sidecars(file)


def _stat_problem(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) and os.path.islink(path):
        target = os.readlink(path)
        return f"file not found: {path} is a symlink to {target}, which does not exist"
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {path}"
    if isinstance(exc, PermissionError):
        return f"permission denied: cannot look up {path}"
    return f"cannot stat {path}: {exc.strerror or exc}"


def _with_sidecars(file: SqliteFile) -> SqliteFile:
    sidecars = {}
    for suffix in SIDECAR_SUFFIXES:
        sidecar = file.sidecar(suffix)
        try:
            result = os.lstat(sidecar)
        except FileNotFoundError:
            continue
        except OSError as exc:
            problem = f"cannot stat {sidecar}: {exc.strerror or exc}"
            return dataclasses.replace(file, problem=problem)
        if not stat.S_ISREG(result.st_mode):
            kind = describe_mode(result.st_mode)
            problem = f"not opened: {sidecar} is {kind}, not a regular file"
            return dataclasses.replace(file, problem=problem)
        sidecars[suffix] = FileState.of(result)
    return dataclasses.replace(file, sidecars=sidecars)


def plan_read_only(file: SqliteFile, header: bytes) -> OpenPlan:
    """Choose the URI query that reads ``file`` without creating or changing a file.

    ``header`` is the file's first 100 bytes. Raises ``OSError`` for a ``-wal``
    file without its ``-shm`` file, which no read-only mode can read.
    """
    wal_header = header[:16] == SQLITE_MAGIC and WAL_VERSION in header[_VERSION_BYTES]
    # SQLite reads an existing -wal file whatever the header contains.
    if "-wal" in file.sidecars and "-shm" in file.sidecars:
        return OpenPlan("mode=ro&readonly_shm=1")
    if "-wal" in file.sidecars:
        wal, shm = file.sidecar("-wal"), file.sidecar("-shm")
        raise OSError(
            f"not opened: {wal} exists without {shm}, and SQLite would create {shm} "
            "to read it"
        )
    if wal_header:
        return OpenPlan("mode=ro&immutable=1")
    return OpenPlan("mode=ro")


@contextlib.contextmanager
def connect_read_only(
    file: SqliteFile, plan: OpenPlan, timeout_s: float
) -> Iterator[sqlite3.Connection]:
    """Open ``file`` with the query of ``plan``; ``timeout_s`` bounds each busy wait.

    NOTE: a file swapped for a FIFO between ``inspect_sqlite_file`` and this open
    still blocks here; the window is the time between the two calls. And while a
    ``readonly_shm=1`` connection is this process's only one to the database, a
    connection that this process opens to it meanwhile shares the read-only
    ``-shm`` mapping and cannot write.
    """
    uri = f"{file.resolved.as_uri()}?{plan.query}"
    connection = sqlite3.connect(uri, uri=True, timeout=timeout_s)
    try:
        yield connection
    finally:
        connection.close()


def changes_since(file: SqliteFile, plan: OpenPlan) -> list[str]:
    """Return the changes beside ``file`` since it was inspected, in words.

    None of the read-only modes creates a file, so a new ``-wal``, ``-shm`` or
    ``-journal`` file comes from another connection. A main file that changed under
    ``immutable=1``, which reads without locks, may have been read half old, half
    new.
    """
    changes = []
    for suffix in SIDECAR_SUFFIXES:
        sidecar = file.sidecar(suffix)
        if suffix not in file.sidecars and os.path.lexists(sidecar):
            changes.append(f"{sidecar.name} appeared: another connection opened it")
    if plan.immutable:
        try:
            now: FileState | None = FileState.of(os.stat(file.resolved))
        except OSError:
            now = None
        if now != file.state:
            changes.append(
                f"{file.resolved.name} changed while it was read without locks, so "
                "the findings may mix its old and new content"
            )
    return changes


@contextlib.contextmanager
def open_read_only(path: Path, timeout_s: float) -> Iterator[sqlite3.Connection]:
    """Inspect ``path`` and open it read-only, creating and changing no file.

    Raises ``OSError`` when ``path`` is not a regular file or cannot be read
    safely, and ``sqlite3.Error`` when SQLite cannot open it.
    """
    file = inspect_sqlite_file(path)
    if file.problem:
        raise OSError(file.problem)
    peek = peek_database(file.resolved, attempts=0, interval_s=0, timeout_s=timeout_s)
    if peek.error:
        raise OSError(peek.error)
    plan = plan_read_only(file, peek.header)
    with connect_read_only(file, plan, timeout_s) as connection:
        yield connection
    for change in changes_since(file, plan):
        _log.warning("while reading %s: %s", file.resolved, change)
