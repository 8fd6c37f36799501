"""The full state of an embedded target, to compare before and after a procedure.

``snapshot(running)`` returns a canonical, JSON-compatible dump of everything a
guarded action may change on the simulated service:

- ``tables``: every table of the SQLite file with its columns and its rows sorted;
  blobs become hex text;
- ``schema``: every ``sqlite_master`` entry (type, name, SQL), sorted;
- ``version``: the running version, the newest succeeded deploy;
- ``scenario``: the active scenario's name;
- ``blocked_ips``: the addresses the service rejects, from its in-memory list;
- ``backups``: every file of the ``backups/`` folder with its size and SHA-256.

Left out, because the service changes them on its own or on every request:

- the table ``security_events``: a log table. Background traffic and the attack
  scenario append failed logins of high severity to it several times a second;
- automatic blocks, whose reason starts with ``rate limit exceeded:``, in the
  ``blocked_ips`` table and the in-memory list. The attack scenario's login limiter
  adds them as long as the attack runs, so only blocks made through the admin API
  or an operation are kept;
- the column ``accounts.last_login_ip``: every successful login request writes the
  client address into it, including the login user flow that procedures probe;
- request counters, latency histograms, the in-memory log buffer and the bearer
  tokens of open sessions, which live only in memory and grow with every request;
- the SQLite ``-wal`` and ``-shm`` files beside the database, whose content is
  already part of ``tables``.

``difference(before, after)`` lists what changed, row by row for tables, so a test
can assert exactly the intended change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from veerunbook.simulator import RunningTarget
from veerunbook.simulator.backups import BACKUPS_DIRNAME
from veerunbook.simulator.releases import current_version

LOG_TABLES = frozenset({"security_events"})
AUTOMATIC_BLOCK_PREFIX = "rate limit exceeded:"
PER_REQUEST_COLUMNS = {"accounts": frozenset({"last_login_ip"})}


def snapshot(running: RunningTarget) -> dict[str, Any]:
    """Dump the state of ``running`` that actions may change; see the module doc."""
    with contextlib.closing(_open_read_only(running.database_path)) as connection:
        tables = {
            name: _dump_table(connection, name)
            for name in _table_names(connection)
            if name not in LOG_TABLES
        }
        schema = sorted(
            [str(kind), str(name), str(sql or "")]
            for kind, name, sql in connection.execute(
                "SELECT type, name, sql FROM sqlite_master"
            )
        )
        version = current_version(connection)
    return {
        "tables": tables,
        "schema": schema,
        "version": version,
        "scenario": running.scenario,
        "blocked_ips": _blocked_in_memory(running),
        "backups": _list_backups(running.data_dir / BACKUPS_DIRNAME),
    }


def difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Return what changed between two snapshots; empty when they are equal.

    A changed table appears as ``tables.NAME`` with the rows ``added`` and
    ``removed`` (an updated row is both), every other changed key with its
    ``before`` and ``after`` values.
    """
    changes: dict[str, Any] = {}
    for name in sorted(set(before["tables"]) | set(after["tables"])):
        old = before["tables"].get(name, {"columns": [], "rows": []})
        new = after["tables"].get(name, {"columns": [], "rows": []})
        if old == new:
            continue
        changes[f"tables.{name}"] = {
            "added": [row for row in new["rows"] if row not in old["rows"]],
            "removed": [row for row in old["rows"] if row not in new["rows"]],
        }
        if old["columns"] != new["columns"]:
            changes[f"tables.{name}"]["columns"] = [old["columns"], new["columns"]]
    for key in sorted(set(before) | set(after)):
        if key != "tables" and before.get(key) != after.get(key):
            changes[key] = {"before": before.get(key), "after": after.get(key)}
    return changes


def _open_read_only(path: Path) -> sqlite3.Connection:
    # Read only, so taking a snapshot can never change the state it records.
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)


def _table_names(connection: sqlite3.Connection) -> list[str]:
    rows = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'"
        " AND name NOT LIKE 'sqlite_%' ORDER BY name"
    )
    return [str(name) for (name,) in rows]


def _dump_table(connection: sqlite3.Connection, table: str) -> dict[str, Any]:
    cursor = connection.execute(f'SELECT * FROM "{table}"')
    columns = [str(description[0]) for description in cursor.description]
    ignored = PER_REQUEST_COLUMNS.get(table, frozenset())
    kept = [index for index, column in enumerate(columns) if column not in ignored]
    rows = []
    for row in cursor:
        values = [_plain(row[index]) for index in kept]
        if table == "blocked_ips" and _automatic(row[columns.index("reason")]):
            continue
        rows.append(values)
    rows.sort(key=lambda values: json.dumps(values, sort_keys=True))
    return {"columns": [columns[index] for index in kept], "rows": rows}


def _plain(value: object) -> object:
    return value.hex() if isinstance(value, bytes) else value


def _automatic(reason: object) -> bool:
    return isinstance(reason, str) and reason.startswith(AUTOMATIC_BLOCK_PREFIX)


def _blocked_in_memory(running: RunningTarget) -> list[str]:
    # RunningTarget has no public accessor for the list the service enforces, and
    # the audit endpoint would add a request to the state being recorded.
    entries = running._service.security.blocked()
    return sorted(entry.ip for entry in entries if not _automatic(entry.reason))


def _list_backups(folder: Path) -> list[dict[str, Any]]:
    if not folder.is_dir():
        return []
    listing = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            data = path.read_bytes()
            listing.append(
                {
                    "name": path.name,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
            )
    return listing
