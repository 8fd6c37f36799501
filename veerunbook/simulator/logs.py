"""The simulated service's application log, kept in memory as pino records.

Records follow pino and pino-http: numeric ``level`` (30 info, 40 warn, 50 error),
epoch-millisecond ``time``, ``msg``, and for requests ``req``, ``res``,
``responseTime`` and, on 5xx, ``err`` with ``type``, ``message`` and ``stack``.
Warnings and errors are kept in a ring of their own, so that a flood of info
records cannot push the last hour's errors out.
"""

from __future__ import annotations

import heapq
import os
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from veerunbook.simulator.model import ErrorSignature

LEVELS = {"trace": 10, "debug": 20, "info": 30, "warn": 40, "error": 50, "fatal": 60}
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_DURATION_SECONDS = 7 * 86400.0
HOSTNAME = "veefore-api-sim"

# At 20 requests per second the info ring covers about 15 minutes. The ring of
# warnings and errors covers an hour of the error-spike scenario's 5 errors/s.
INFO_CAPACITY = 20_000
PROBLEM_CAPACITY = 20_000


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One record; the request fields are None for records not tied to a request."""

    level: int
    time_ms: int
    msg: str
    correlation_id: str | None = None
    method: str | None = None
    url: str | None = None
    remote_address: str | None = None
    status_code: int | None = None
    response_time_ms: float | None = None
    error: ErrorSignature | None = None

    def to_record(self) -> dict[str, Any]:
        """Render the entry as the JSON object pino would print."""
        record: dict[str, Any] = {
            "level": self.level,
            "time": self.time_ms,
            "pid": os.getpid(),
            "hostname": HOSTNAME,
        }
        if self.correlation_id is not None:
            record["correlationId"] = self.correlation_id
        if self.method is not None:
            record["req"] = {
                "method": self.method,
                "url": self.url,
                "remoteAddress": self.remote_address,
            }
            record["res"] = {"statusCode": self.status_code}
            record["responseTime"] = self.response_time_ms
        if self.error is not None:
            record["err"] = {
                "type": self.error.type,
                "message": self.error.message,
                "stack": self.error.stack,
            }
        record["msg"] = self.msg
        return record


class LogBook:
    """Bounded, thread-safe store of recent log entries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._info: deque[LogEntry] = deque(maxlen=INFO_CAPACITY)
        self._problems: deque[LogEntry] = deque(maxlen=PROBLEM_CAPACITY)

    def append(self, entry: LogEntry) -> None:
        """Store ``entry``, dropping the oldest entry of its ring when full."""
        ring = self._problems if entry.level >= LEVELS["warn"] else self._info
        with self._lock:
            ring.append(entry)

    def query(self, min_level: int, since_ms: int, limit: int) -> list[LogEntry]:
        """Return up to ``limit`` entries at ``min_level`` or above, newest first."""
        with self._lock:
            sources: list[Iterable[LogEntry]] = [reversed(self._problems)]
            if min_level < LEVELS["warn"]:
                sources.append(reversed(self._info))
            newest_first = heapq.merge(*sources, key=lambda entry: -entry.time_ms)
            return list(_take(newest_first, min_level, since_ms, limit))


def _take(
    entries: Iterator[LogEntry], min_level: int, since_ms: int, limit: int
) -> Iterator[LogEntry]:
    returned = 0
    for entry in entries:
        if entry.time_ms < since_ms or returned >= limit:
            return
        if entry.level >= min_level:
            returned += 1
            yield entry


def parse_level(text: str) -> int:
    """Parse a pino level name or number; raise ValueError if it is neither."""
    name = text.strip().lower()
    if name == "warning":
        name = "warn"
    if name in LEVELS:
        return LEVELS[name]
    if name.isdigit() and 0 <= int(name) <= 100:
        return int(name)
    names = ", ".join(LEVELS)
    raise ValueError(f"invalid level {text!r}: use one of {names} or a number")


def parse_duration(text: str) -> float:
    """Parse a duration such as ``300s``, ``15m`` or ``1h`` into seconds.

    Raises ValueError for another form, zero, or more than 7 days.
    """
    match = re.fullmatch(r"(\d{1,9})(ms|s|m|h|d)", text.strip())
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit (ms, s, m, h, d)"
        )
    seconds = int(match.group(1)) * DURATION_UNITS[match.group(2)]
    if not 0 < seconds <= MAX_DURATION_SECONDS:
        raise ValueError(
            f"invalid duration {text!r}: it must be above 0 and at most 7d"
        )
    return seconds
