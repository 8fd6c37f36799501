"""SQLite store of scraped signal samples, kept under the archive for alert evaluation.

The database is ``<archive>/alerts/samples.sqlite3`` in WAL mode, so readers do not
block the single writer that appends one scrape at a time.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from veerunbook.alert_eval import SignalSample
from veerunbook.alert_rules import Signal
from veerunbook.errors import UsageError

logger = logging.getLogger("veerunbook.alert_store")

# Seconds a write waits for another connection's write lock before failing.
_BUSY_TIMEOUT_SECONDS = 5.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    time REAL NOT NULL,
    signal TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (signal, time)
) WITHOUT ROWID
"""


def store_path(archive: Path) -> Path:
    """Return the path of the sample database under ``archive``."""
    return archive / "alerts" / "samples.sqlite3"


class SampleStore:
    """Signal samples of successive scrapes, one row per signal and scrape time.

    A value of None records a missing sample or a failed scrape, which alert
    evaluation treats as a failed evaluation.
    """

    def __init__(self, archive: Path) -> None:
        self.path = store_path(archive)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(
            self.path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None
        )
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute(_SCHEMA)
        logger.debug("opened sample store %s", self.path)

    def append(self, time: float, values: Mapping[Signal, float | None]) -> None:
        """Insert one scrape's signal values at ``time`` (Unix seconds) atomically.

        Raises UsageError when a value for one of the signals at ``time`` is already
        stored, and then stores none of the scrape's values.
        """
        rows = [(time, Signal(signal).value, value) for signal, value in values.items()]
        # BEGIN IMMEDIATE takes the write lock first, so a second writer waits for
        # the busy timeout instead of failing halfway through the scrape.
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            self._connection.executemany(
                "INSERT INTO samples (time, signal, value) VALUES (?, ?, ?)", rows
            )
        except sqlite3.IntegrityError as error:
            self._connection.execute("ROLLBACK")
            raise UsageError(
                f"a sample at time {time} is already stored for one of"
                f" {sorted(str(signal) for signal in values)}; append each scrape once."
            ) from error
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def read(self, signal: Signal, start: float, end: float) -> list[SignalSample]:
        """Return the samples of ``signal`` with start <= time <= end, oldest first."""
        cursor = self._connection.execute(
            "SELECT time, value FROM samples"
            " WHERE signal = ? AND time >= ? AND time <= ? ORDER BY time",
            (Signal(signal).value, start, end),
        )
        return [SignalSample(time, value) for time, value in cursor.fetchall()]

    def journal_mode(self) -> str:
        """Return SQLite's journal mode of the open database, ``wal`` once opened."""
        row = self._connection.execute("PRAGMA journal_mode").fetchone()
        return str(row[0])

    def close(self) -> None:
        """Close the database connection."""
        self._connection.close()

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
