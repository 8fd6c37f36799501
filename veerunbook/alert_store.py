"""SQLite store of scraped signal samples, kept under the archive for alert evaluation.

Each target has its own database, ``<archive>/alerts/<slug>/samples.sqlite3`` in WAL
mode, so readers do not block the single writer that appends one scrape at a time.
Besides the samples it keeps the latest scrapes' exposition bodies, from which the next
check computes its window signals, each rule's last journaled alert state, and an
outbox of notification lines not yet accepted by the webhook. A rule's new state and
its transition's line are committed in one transaction, so a notification lost on the
way (a hanging or failing webhook, a killed process) is sent by a later check. The
rule-state and outbox tables and their SQL are in ``veerunbook.alert_outbox``.

Every SQLite or file system failure is raised as ``StoreError`` with the path
(``veerunbook.alert_store_errors``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from veerunbook import alert_outbox
from veerunbook.alert_eval import SignalSample
from veerunbook.alert_outbox import OutboxEntry, RuleState
from veerunbook.alert_rules import Signal
from veerunbook.alert_store_errors import guarded
from veerunbook.alert_store_path import store_path, target_slug
from veerunbook.errors import UsageError

__all__ = [
    "DEFAULT_RETENTION_SECONDS",
    "KEPT_SCRAPES",
    "OutboxEntry",
    "RuleState",
    "SampleStore",
    "StoredScrape",
    "StoredSpan",
    "store_path",
    "target_slug",
]

logger = logging.getLogger("veerunbook.alert_store")

# Seconds a write waits for another connection's write lock before failing.
_BUSY_TIMEOUT_SECONDS = 5.0

# How long samples are kept: two days, far beyond the longest rule's 15 min hold time
# plus its window, so a replay or a look back over yesterday still finds them.
DEFAULT_RETENTION_SECONDS = 2 * 24 * 3600.0
# Exposition bodies kept, newest first. The next check needs only the latest.
KEPT_SCRAPES = 3

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS samples (
    time REAL NOT NULL,
    signal TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (signal, time)
) WITHOUT ROWID
""",
    """
CREATE TABLE IF NOT EXISTS scrapes (
    time REAL PRIMARY KEY,
    body TEXT NOT NULL
)
""",
    *alert_outbox.STATE_SCHEMA,
)


@dataclass(frozen=True)
class StoredScrape:
    """One stored exposition body and its scrape time (Unix seconds)."""

    time: float
    body: str


@dataclass(frozen=True)
class StoredSpan:
    """Stored checks within a span of time: how many sample times, and the first
    and last of them (Unix seconds)."""

    checks: int
    first: float
    last: float


class SampleStore:
    """Signal samples of successive scrapes, one row per signal and scrape time.

    A value of None records a missing sample or a failed scrape, which alert
    evaluation treats as a failed evaluation.
    """

    def __init__(self, archive: Path, target_name: str) -> None:
        self.path = store_path(archive, target_name)
        self._open()

    @guarded
    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(
            self.path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None
        )
        try:
            self._connection.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                self._connection.execute(statement)
        except BaseException:
            self._connection.close()
            raise
        logger.debug("opened sample store %s", self.path)

    @guarded
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

    @guarded
    def read(self, signal: Signal, start: float, end: float) -> list[SignalSample]:
        """Return the samples of ``signal`` with start <= time <= end, oldest first."""
        cursor = self._connection.execute(
            "SELECT time, value FROM samples"
            " WHERE signal = ? AND time >= ? AND time <= ? ORDER BY time",
            (Signal(signal).value, start, end),
        )
        return [SignalSample(time, value) for time, value in cursor.fetchall()]

    @guarded
    def has_samples_at(self, time: float) -> bool:
        """Return whether a scrape at ``time`` is already stored."""
        row = self._connection.execute(
            "SELECT 1 FROM samples WHERE time = ? LIMIT 1", (time,)
        ).fetchone()
        return row is not None

    @guarded
    def prune(self, before: float) -> int:
        """Delete the samples older than ``before`` (Unix seconds); return how many."""
        cursor = self._connection.execute(
            "DELETE FROM samples WHERE time < ?", (before,)
        )
        if cursor.rowcount:
            logger.debug("pruned %d samples older than %s", cursor.rowcount, before)
        return cursor.rowcount

    @guarded
    def save_scrape(self, time: float, body: str) -> None:
        """Store an exposition body scraped at ``time``, keeping the newest few."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            self._connection.execute(
                "INSERT OR REPLACE INTO scrapes (time, body) VALUES (?, ?)",
                (time, body),
            )
            self._connection.execute(
                "DELETE FROM scrapes WHERE time NOT IN"
                " (SELECT time FROM scrapes ORDER BY time DESC LIMIT ?)",
                (KEPT_SCRAPES,),
            )
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    @guarded
    def last_scrape(self, before: float) -> StoredScrape | None:
        """Return the newest stored scrape taken before ``before``, if any."""
        row = self._connection.execute(
            "SELECT time, body FROM scrapes WHERE time < ? ORDER BY time DESC LIMIT 1",
            (before,),
        ).fetchone()
        return None if row is None else StoredScrape(row[0], row[1])

    @guarded
    def rule_states(self) -> dict[str, RuleState]:
        """Return each rule's last stored alert state, by rule name."""
        return alert_outbox.read_rule_states(self._connection)

    @guarded
    def set_rule_state(self, state: RuleState) -> None:
        """Store ``state`` as its rule's last journaled state."""
        alert_outbox.write_rule_state(self._connection, state)

    @guarded
    def newest_time(self, at_most: float | None = None) -> float | None:
        """Return the time of the newest stored sample, None when there is none.

        With ``at_most`` (Unix seconds), samples after that time are left out.
        """
        limit = float("inf") if at_most is None else at_most
        row = self._connection.execute(
            "SELECT max(time) FROM samples WHERE time <= ?", (limit,)
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    @guarded
    def span_after(self, after: float) -> StoredSpan | None:
        """Return the checks whose samples are stored after ``after``, if any."""
        row = self._connection.execute(
            "SELECT count(DISTINCT time), min(time), max(time) FROM samples"
            " WHERE time > ?",
            (after,),
        ).fetchone()
        if row is None or not row[0]:
            return None
        return StoredSpan(int(row[0]), float(row[1]), float(row[2]))

    @guarded
    def delete_after(self, after: float) -> StoredSpan | None:
        """Delete the samples and scrapes stored after ``after`` in one transaction;
        return the checks whose samples were deleted, if any."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            span = self.span_after(after)
            self._connection.execute("DELETE FROM samples WHERE time > ?", (after,))
            self._connection.execute("DELETE FROM scrapes WHERE time > ?", (after,))
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")
        return span

    @guarded
    def commit_states(
        self, states: Sequence[RuleState], lines: Sequence[tuple[float, str]]
    ) -> None:
        """Store rule states and queue notification lines in one transaction.

        ``lines`` are (transition time, text) pairs for the outbox.
        """
        alert_outbox.commit_states(self._connection, states, lines)

    @guarded
    def outbox(self) -> list[OutboxEntry]:
        """Return the queued notification lines, oldest first."""
        return alert_outbox.read_outbox(self._connection)

    @guarded
    def delete_outbox(self, ids: Iterable[int]) -> None:
        """Delete the outbox entries ``ids``, once sent or dropped."""
        alert_outbox.delete_outbox(self._connection, ids)

    @guarded
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
