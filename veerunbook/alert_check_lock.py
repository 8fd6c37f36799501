"""The lock that lets one alert check of a target run at a time.

A scheduled check that outlives its interval must not race the next one over the
same sample store and rule states. The lock is ``fcntl.flock`` on ``check.lock``
beside the store, taken without blocking. The kernel releases it when the holder's
process exits, so a crashed check never leaves a stale lock behind. The file contains
the holder's pid and start time, which a skipped check reports.
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

_log = logging.getLogger("veerunbook.alert_check_lock")

LOCK_FILENAME = "check.lock"


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
    block must skip the check. The lock file is kept after release.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILENAME
    # O_RDWR without O_TRUNC, so a waiting process does not erase the holder's text.
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = LockHeld(path, _read_holder(descriptor))
            _log.warning("alert check skipped: %s", held.reason())
            yield held
            return
        _write_holder(descriptor)
        try:
            yield None
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def _write_holder(descriptor: int) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"pid {os.getpid()}, started {started}\n".encode(), 0)


def _read_holder(descriptor: int) -> str:
    return os.pread(descriptor, 200, 0).decode("utf-8", "replace").strip()
