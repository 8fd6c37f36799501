"""The sample store's rule-state and outbox tables, and their SQL.

``rule_states`` keeps each rule's last journaled alert state, and ``outbox`` the
notification lines not yet accepted by the webhook. ``commit_states`` writes a rule's
new state and its transition's line in one transaction, so a line lost on the way is
sent by a later check. ``SampleStore`` calls these functions on its connection and
raises their SQLite failures as ``StoreError``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

STATE_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS rule_states (
    rule TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    since REAL,
    changed REAL NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    text TEXT NOT NULL
)
""",
)


@dataclass(frozen=True)
class RuleState:
    """A rule's last journaled alert state.

    ``since`` is when the alert became active (None while inactive), and ``changed``
    when the state was stored, both Unix seconds.
    """

    rule: str
    state: str
    since: float | None
    changed: float


@dataclass(frozen=True)
class OutboxEntry:
    """A notification line not yet accepted by the webhook, with its transition's
    time (Unix seconds)."""

    id: int
    time: float
    text: str


def read_rule_states(connection: sqlite3.Connection) -> dict[str, RuleState]:
    """Return each rule's last stored alert state, by rule name."""
    cursor = connection.execute("SELECT rule, state, since, changed FROM rule_states")
    return {row[0]: RuleState(*row) for row in cursor.fetchall()}


def write_rule_state(connection: sqlite3.Connection, state: RuleState) -> None:
    """Store ``state`` as its rule's last journaled state."""
    connection.execute(
        "INSERT OR REPLACE INTO rule_states (rule, state, since, changed)"
        " VALUES (?, ?, ?, ?)",
        (state.rule, state.state, state.since, state.changed),
    )


def commit_states(
    connection: sqlite3.Connection,
    states: Sequence[RuleState],
    lines: Sequence[tuple[float, str]],
) -> None:
    """Store rule states and queue notification lines in one transaction.

    ``lines`` are (transition time, text) pairs for the outbox.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.executemany(
            "INSERT OR REPLACE INTO rule_states (rule, state, since, changed)"
            " VALUES (?, ?, ?, ?)",
            [(s.rule, s.state, s.since, s.changed) for s in states],
        )
        connection.executemany("INSERT INTO outbox (time, text) VALUES (?, ?)", lines)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def read_outbox(connection: sqlite3.Connection) -> list[OutboxEntry]:
    """Return the queued notification lines, oldest first."""
    cursor = connection.execute("SELECT id, time, text FROM outbox ORDER BY time, id")
    return [OutboxEntry(*row) for row in cursor.fetchall()]


def delete_outbox(connection: sqlite3.Connection, ids: Iterable[int]) -> None:
    """Delete the outbox entries ``ids``, once sent or dropped."""
    connection.executemany(
        "DELETE FROM outbox WHERE id = ?", [(entry,) for entry in ids]
    )
