"""The lock that lets one alert check of a target run at a time.

A scheduled check that outlives its interval must not race the next one over the
same sample store and rule states. The lock is ``fcntl.flock`` on the store's
folder, taken without blocking. The kernel releases it when the holder's process
exits, so a crashed check never leaves a stale lock behind. The folder is locked
rather than a lock file in it, because a second check would create and lock a new
file after someone deleted the old one. After taking the lock, the check compares the
locked folder's (st_dev, st_ino) with the path's, and retries when the folder was
replaced in between. ``check.lock`` in the folder contains the holder's pid and
start time, which a skipped check reports.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from veerunbook.errors import StoreError

_log = logging.getLogger("veerunbook.alert_check_lock")

LOCK_FILENAME = "check.lock"
# Attempts to lock a folder that another process keeps replacing.
LOCK_ATTEMPTS = 5


@dataclass(frozen=True)
class LockHeld:
    """Another check holds the lock; ``holder`` is what its lock file contains."""

    path: Path
    holder: str

    def reason(self) -> str:
        """Return one line saying who holds the lock."""
        who = self.holder or "a holder that wrote no pid yet"
        return f"another alert check of this target holds {self.path} ({who})"


@contextmanager
def check_lock(folder: Path) -> Iterator[LockHeld | None]:
    """Hold the check lock of ``folder`` for the block, or yield who holds it.

    Yields None when this process got the lock, else a ``LockHeld``, and then the
    block must skip the check. Raises StoreError when the folder cannot be created
    or opened, or is replaced ``LOCK_ATTEMPTS`` times in a row.
    """
    path = folder / LOCK_FILENAME
    for _ in range(LOCK_ATTEMPTS):
        descriptor = _open_folder(folder)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held = LockHeld(path, _read_holder(path))
                _log.warning("alert check skipped: %s", held.reason())
                yield held
                return
            if not _same_folder(descriptor, folder):
                _log.warning("%s was replaced while locking it; retrying", folder)
                continue
            _write_holder(path)
            try:
                yield None
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)
            return
        finally:
            os.close(descriptor)
    raise StoreError(
        str(folder),
        f"the folder was replaced during each of {LOCK_ATTEMPTS} attempts to lock it",
        "Stop the process that recreates it, then check again",
    )


def _open_folder(folder: Path) -> int:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        reason = f"{error.strerror or error.__class__.__name__}: {error.filename}"
        raise StoreError(
            str(folder), reason, "Make the folder writable or choose another archive"
        ) from error


def _same_folder(descriptor: int, folder: Path) -> bool:
    """Return whether the locked descriptor is still the folder at ``folder``."""
    opened = os.fstat(descriptor)
    try:
        current = os.stat(folder)
    except FileNotFoundError:
        return False
    return (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino)


def _write_holder(path: Path) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        # Written after locking, so only the holder writes the file.
        path.write_text(f"pid {os.getpid()}, started {started}\n")
    except OSError as error:
        # The text only names the holder for a skipped check; the lock still holds.
        _log.warning("failed to write %s: %s", path, error)


def _read_holder(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[:200].strip()
    except OSError:
        return ""
