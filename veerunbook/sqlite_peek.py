"""Read a SQLite file's header and look for a write lock on it, in a child process.

``peek_database`` runs this file as a script in a separate Python process, which
prints one JSON object. The work happens in a child because closing any descriptor
of a file drops every POSIX lock that the closing process holds on that file (see
"How To Corrupt An SQLite Database File", section 2.2, on sqlite.org). Opening the
database or its ``-shm`` file here and closing it again would strip the locks of a
SQLite connection that this process has open on it, such as the demo target's.

The locks are read with ``fcntl(F_GETLK)``, as SQLite's own ``tool/getlock.c`` does,
because no library reads them. The byte offsets are those of SQLite's default unix
VFS, which takes POSIX advisory locks. In a rollback-journal database, a connection
that writes holds a write lock on the RESERVED byte (0x40000001), and while it
commits also on the PENDING byte (0x40000000) and the SHARED range (510 bytes from
0x40000002). In a WAL database it holds a write lock on byte 120 of the ``-shm``
file. A connection that uses another VFS (``unix-dotfile``, ``unix-flock``) takes
none of these locks.

The script is run with ``-I -S``, so it imports nothing but the standard library.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HEADER_BYTES = 100
PENDING_BYTE = 0x40000000
# The PENDING byte, the RESERVED byte and the 510 bytes of the SHARED range.
DATABASE_LOCK_BYTES = 2 + 510
WAL_WRITE_LOCK_BYTE = 120
# struct flock on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid, padding.
_FLOCK = "hhqqi4x"


@dataclass(frozen=True)
class LockHolder:
    """A write lock that another process holds: the file, the byte and the pid.

    ``pid`` is the holder's process id as ``F_GETLK`` reports it. It is -1 for an
    open file description lock, which no single process owns.
    """

    file: str
    offset: int
    pid: int

    def describe(self) -> str:
        """Return the holder in words, for a check's summary."""
        if self.file.endswith("-shm"):
            byte = "the WAL write-lock byte"
        elif self.offset == PENDING_BYTE + 1:
            byte = "the RESERVED byte"
        elif self.offset == PENDING_BYTE:
            byte = "the PENDING byte"
        else:
            byte = "the SHARED range"
        owner = f"process {self.pid}" if self.pid > 0 else "another process"
        return f"{owner} holds a write lock on {byte} of {self.file}"


@dataclass(frozen=True)
class Peek:
    """The database header and the write lock found in each attempt.

    ``holder`` is the lock found in the last attempt, and None as soon as one
    attempt finds no write lock. ``error`` is why the file could not be read, and
    ``lock_error`` why its locks could not be.
    """

    header: bytes = b""
    attempts: int = 0
    holder: LockHolder | None = None
    error: str | None = None
    lock_error: str | None = None


def peek_database(
    path: Path, *, attempts: int, interval_s: float, timeout_s: float
) -> Peek:
    """Read the header of ``path`` and look for a write lock up to ``attempts`` times.

    The attempts are ``interval_s`` apart and stop at the first that finds no write
    lock; with ``attempts`` 0 only the header is read. The child is killed after
    ``timeout_s`` seconds. Never raises for the file's state.
    """
    command = [
        sys.executable,
        "-I",
        "-S",
        str(Path(__file__).resolve()),
        str(path),
        str(attempts),
        str(interval_s),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return Peek(
            error=f"reading the header and locks of {path} timed out after "
            f"{timeout_s:g} s"
        )
    except OSError as exc:
        return Peek(error=f"cannot start {sys.executable}: {exc}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Peek(
            error=f"reading the header and locks of {path} failed with exit code "
            f"{done.returncode}: {last}"
        )
    return _from_json(json.loads(done.stdout))


def _from_json(found: dict[str, Any]) -> Peek:
    holder = found.get("holder")
    return Peek(
        header=bytes.fromhex(found.get("header", "")),
        attempts=int(found.get("attempts", 0)),
        holder=LockHolder(**holder) if holder else None,
        error=found.get("error"),
        lock_error=found.get("lock_error"),
    )


def _open_regular(path: str) -> int:
    # O_NONBLOCK: opening a FIFO that replaced the file returns at once.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    descriptor = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OSError(f"{path} is no longer a regular file")
    return descriptor


def _write_lock(
    descriptor: int, name: str, start: int, length: int
) -> LockHolder | None:
    # Asking for a read lock finds only the write locks that would block it.
    query = struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, start, length, 0)
    answer = fcntl.fcntl(descriptor, fcntl.F_GETLK, query)
    kind, _, found_start, _, pid = struct.unpack(_FLOCK, answer)
    if kind == fcntl.F_UNLCK:
        return None
    return LockHolder(name, found_start, pid)


def _find_holder(database: int, shm: int | None, name: str) -> LockHolder | None:
    holder = _write_lock(database, name, PENDING_BYTE, DATABASE_LOCK_BYTES)
    if holder is None and shm is not None:
        holder = _write_lock(shm, f"{name}-shm", WAL_WRITE_LOCK_BYTE, 1)
    return holder


def _look_for_holder(
    database: int, shm: int | None, name: str, attempts: int, interval_s: float
) -> dict[str, Any]:
    if attempts and not sys.platform.startswith("linux"):
        return {"lock_error": "reading SQLite's locks needs Linux's struct flock"}
    holder = None
    done = 0
    for done in range(1, attempts + 1):
        if done > 1:
            time.sleep(interval_s)
        holder = _find_holder(database, shm, name)
        if holder is None:
            break
    return {"attempts": done, "holder": asdict(holder) if holder else None}


def _peek(path: str, attempts: int, interval_s: float) -> dict[str, Any]:
    database = _open_regular(path)
    shm: int | None = None
    try:
        with contextlib.suppress(FileNotFoundError):
            shm = _open_regular(f"{path}-shm")
        header = os.pread(database, HEADER_BYTES, 0)
        name = os.path.basename(path)
        found = _look_for_holder(database, shm, name, attempts, interval_s)
    finally:
        os.close(database)
        if shm is not None:
            os.close(shm)
    return {"header": header.hex(), **found}


def main(argv: list[str]) -> int:
    """Print the header and the lock state of the database ``argv[0]`` as JSON."""
    path, attempts, interval = argv[0], int(argv[1]), float(argv[2])
    try:
        found = _peek(path, attempts, interval)
    except OSError as exc:
        found = {"error": f"cannot read {path}: {exc.strerror or exc}"}
    print(json.dumps(found))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
