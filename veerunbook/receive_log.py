"""A logging filter that lets a repeated message through once per interval.

A client that sends many bad requests, or a flood of connections that runs the
process out of file descriptors, would otherwise write one log line (with asyncio, one
traceback) per attempt and fill the disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

DEFAULT_INTERVAL_SECONDS = 60.0

# Maximum number of distinct messages tracked; beyond it the oldest are forgotten.
MAX_TRACKED = 1000


class RepeatFilter(logging.Filter):
    """Pass the first record of each message, then at most one per interval.

    Records are grouped by logger name and message template (``record.msg`` before
    its arguments are merged). A repeat within ``interval_seconds`` of the last
    record passed is counted and dropped, and the next record of the group that
    passes states how many were dropped. A count is lost if no record follows it.
    """

    def __init__(
        self,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.interval_seconds = interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # (logger name, template) -> (time last passed, repeats dropped since)
        self._groups: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Return whether ``record`` is logged; add the dropped count to it if so."""
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            passed_at, dropped = self._groups.get(key, (None, 0))
            if passed_at is not None and now - passed_at < self.interval_seconds:
                self._groups[key] = (passed_at, dropped + 1)
                return False
            self._groups.pop(key, None)
            self._groups[key] = (now, 0)
            while len(self._groups) > MAX_TRACKED:
                del self._groups[next(iter(self._groups))]
        if dropped:
            record.msg = (
                f"{record.msg} ({dropped} more like it not logged since the last one)"
            )
        return True
