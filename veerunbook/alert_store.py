"""SQLite store of scraped signal samples, kept under the archive for alert evaluation.

Each target has its own database, ``<archive>/alerts/<slug>/samples.sqlite3`` in WAL
mode, so readers do not block the single writer that appends one scrape at a time.
Besides the samples it keeps the latest scrapes' exposition bodies, from which the next
check computes its window signals, each rule's last journaled alert state, and an
outbox of notification lines not yet accepted by the webhook. A rule's new state and
its transition's line are committed in one transaction, so a notification lost on the
way (a hanging or failing webhook, a killed process) is sent by a later check. The
rule-state and outbox tables and their SQL are in ``veerunbook.alert_outbox``.

Every SQLite or file system failure is raised as ``StoreError`` with the path.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

from veerunbook import alert_outbox
from veerunbook.alert_eval import SignalSample
from veerunbook.alert_outbox import OutboxEntry, RuleState
from veerunbook.alert_rules import Signal
from veerunbook.errors import StoreError, UsageError

__all__ = [
    "DEFAULT_RETENTION_SECONDS",
    "KEPT_SCRAPES",
    "OutboxEntry",
    "RuleState",
    "SampleStore",
    "StoredScrape",
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
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class StoredScrape:
    """One stored exposition body and its scrape time (Unix seconds)."""

    time: float
    body: str


_P = ParamSpec("_P")
_R = TypeVar("_R")

# Fixes named in a StoreError. After a damaged file is moved aside, the next check
# creates a new, empty store.
_FIX_DAMAGED = "Move the file aside; the next check starts a new store"
_FIX_ACCESS = (
    "Make its folder writable with free space, or move the file aside;"
    " the next check starts a new store"
)


def _store_error(path: Path, error: sqlite3.Error | OSError) -> StoreError:
    damaged = isinstance(error, sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.OperationalError
    )
    reason = str(error) or error.__class__.__name__
    if isinstance(error, OSError):
        reason = f"{error.strerror or error.__class__.__name__}: {error.filename}"
    return StoreError(str(path), reason, _FIX_DAMAGED if damaged else _FIX_ACCESS)


def _guarded(
    method: Callable[Concatenate[SampleStore, _P], _R],
) -> Callable[Concatenate[SampleStore, _P], _R]:
    """Raise a store method's SQLite or OSError failure as ``StoreError``."""

    @functools.wraps(method)
    def wrapper(store: SampleStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(store, *args, **kwargs)
        except (sqlite3.Error, OSError) as error:
            logger.debug("sample store %s failed: %s", store.path, error)
            raise _store_error(store.path, error) from error

    return wrapper


def target_slug(target_name: str) -> str:
    """Return a folder name for ``target_name``: safe characters plus a short hash.

    Characters other than letters, digits and ``-_.`` become ``-``. The first 8 hex
    digits of the name's SHA-256 keep two names that map to the same text apart.
    """
    digest = hashlib.sha256(target_name.encode("utf-8")).hexdigest()[:8]
    readable = _UNSAFE.sub("-", target_name).strip("-.")[:60] or "target"
    return f"{readable}-{digest}"


def store_path(archive: Path, target_name: str) -> Path:
    """Return the path of ``target_name``'s sample database under ``archive``."""
    return archive / "alerts" / target_slug(target_name) / "samples.sqlite3"


class SampleStore:
    """Signal samples of successive scrapes, one row per signal and scrape time.

    A value of None records a missing sample or a failed scrape, which alert
    evaluation treats as a failed evaluation.
    """

    def __init__(self, archive: Path, target_name: str) -> None:
        self.path = store_path(archive, target_name)
        self._open()

    @_guarded
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

    @_guarded
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

    @_guarded
    def read(self, signal: Signal, start: float, end: float) -> list[SignalSample]:
        """Return the samples of ``signal`` with start <= time <= end, oldest first."""
        cursor = self._connection.execute(
            "SELECT time, value FROM samples"
            " WHERE signal = ? AND time >= ? AND time <= ? ORDER BY time",
            (Signal(signal).value, start, end),
        )
        return [SignalSample(time, value) for time, value in cursor.fetchall()]

    @_guarded
    def has_samples_at(self, time: float) -> bool:
        """Return whether a scrape at ``time`` is already stored."""
        row = self._connection.execute(
            "SELECT 1 FROM samples WHERE time = ? LIMIT 1", (time,)
        ).fetchone()
        return row is not None

    @_guarded
    def prune(self, before: float) -> int:
        """Delete the samples older than ``before`` (Unix seconds); return how many."""
        cursor = self._connection.execute(
            "DELETE FROM samples WHERE time < ?", (before,)
        )
        if cursor.rowcount:
            logger.debug("pruned %d samples older than %s", cursor.rowcount, before)
        return cursor.rowcount

    @_guarded
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

    @_guarded
    def last_scrape(self, before: float) -> StoredScrape | None:
        """Return the newest stored scrape taken before ``before``, if any."""
        row = self._connection.execute(
            "SELECT time, body FROM scrapes WHERE time < ? ORDER BY time DESC LIMIT 1",
            (before,),
        ).fetchone()
        return None if row is None else StoredScrape(row[0], row[1])

    @_guarded
    def rule_states(self) -> dict[str, RuleState]:
        """Return each rule's last stored alert state, by rule name."""
        return alert_outbox.read_rule_states(self._connection)

    @_guarded
    def set_rule_state(self, state: RuleState) -> None:
        """Store ``state`` as its rule's last journaled state."""
        alert_outbox.write_rule_state(self._connection, state)

    @_guarded
    def newest_time(self) -> float | None:
        """Return the time of the newest stored sample, None when there is none."""
        row = self._connection.execute("SELECT max(time) FROM samples").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    @_guarded
    def commit_states(
        self, states: Sequence[RuleState], lines: Sequence[tuple[float, str]]
    ) -> None:
        """Store rule states and queue notification lines in one transaction.

        ``lines`` are (transition time, text) pairs for the outbox.
        """
        alert_outbox.commit_states(self._connection, states, lines)

    @_guarded
    def outbox(self) -> list[OutboxEntry]:
        """Return the queued notification lines, oldest first."""
        return alert_outbox.read_outbox(self._connection)

    @_guarded
    def delete_outbox(self, ids: Iterable[int]) -> None:
        """Delete the outbox entries ``ids``, once sent or dropped."""
        alert_outbox.delete_outbox(self._connection, ids)

    @_guarded
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
