"""The simulated service's database: one SQLite file and the queries the routes run.

The connection is shared by the server thread and the callers of ``ping``, so every
statement runs under one lock. WAL mode lets other processes, such as the database
procedures and ``veerunbook.simulator.ops``, read the file while the service writes
to it. Their writes reach the service too: it rereads the current version whenever
SQLite's ``data_version`` shows that another connection changed the file.
"""

from __future__ import annotations

import hmac
import random
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veerunbook.simulator import releases
from veerunbook.simulator.integrity import (
    PaymentFinding,
    count_payments,
    find_invalid_payments,
)
from veerunbook.simulator.migrations import apply_pending, write_transaction
from veerunbook.simulator.security import (
    AUTOMATIC_BLOCK_PREFIX,
    BlockedAddress,
    SecurityEvent,
)
from veerunbook.simulator.seed import SCHEMA, hash_password, iso, seed_database

DATABASE_FILENAME = "veefore.sqlite3"


@dataclass(frozen=True)
class Account:
    """An account row without its password hash."""

    id: int
    email: str
    display_name: str
    instagram_handle: str
    plan: str
    followers: int
    last_login_ip: str | None
    created_at: str

    def to_json(self) -> dict[str, Any]:
        """Render the account as the ``/api/user`` body."""
        return {
            "id": self.id,
            "email": self.email,
            "displayName": self.display_name,
            "plan": self.plan,
            "instagram": {
                "handle": self.instagram_handle,
                "connected": True,
                "followers": self.followers,
            },
            "lastLoginIp": self.last_login_ip,
            "createdAt": self.created_at,
        }


class Store:
    """Thread-safe access to the simulated database file."""

    def __init__(self, path: Path, rng: random.Random) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, check_same_thread=False, timeout=2.0)
        self._connection.row_factory = sqlite3.Row
        self._version: tuple[int, str] | None = None
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL syncs at checkpoints only and still never corrupts.
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.executescript(SCHEMA)
            (accounts,) = self._connection.execute(
                "SELECT COUNT(*) FROM accounts"
            ).fetchone()
            if accounts == 0:
                seed_database(self._connection, rng)
            apply_pending(self._connection)

    def close(self) -> None:
        """Close the connection; later calls raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            self._connection.close()

    def ping(self) -> None:
        """Run ``SELECT 1``; raise ``sqlite3.Error`` if the file cannot be queried."""
        self._fetch_one("SELECT 1")

    def current_version(self) -> str:
        """Return the version of the newest succeeded deploy, or ``"0.0.0"``.

        The version is cached until this store or another connection writes.
        """
        with self._lock:
            (data_version,) = self._connection.execute("PRAGMA data_version").fetchone()
            if self._version is None or self._version[0] != data_version:
                version = releases.current_version(self._connection)
                self._version = (data_version, version)
            return self._version[1]

    def recent_deploys(self, limit: int) -> list[dict[str, Any]]:
        """Return up to ``limit`` deploys, newest first."""
        rows = self._fetch_all(
            "SELECT id, version, commit_sha, deployed_at, status, note FROM deploys"
            " ORDER BY deployed_at DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "id": row["id"],
                "version": row["version"],
                "commitSha": row["commit_sha"],
                "deployedAt": row["deployed_at"],
                "status": row["status"],
                "note": row["note"],
            }
            for row in rows
        ]

    def record_deploy(self, version: str, commit_sha: str) -> None:
        """Record a succeeded deploy of ``version`` made now."""
        with self._lock:
            self._version = None
            releases.record_deploy(self._connection, version, commit_sha, None)

    def rollback(self, version: str) -> releases.Rollback:
        """Make ``version`` current again; raise UsageError if it was never deployed."""
        with self._lock:
            self._version = None
            return releases.rollback(self._connection, version)

    def validate_payments(self) -> tuple[list[PaymentFinding], int]:
        """Validate the payments rows; return the failing ones and the rows checked."""
        with self._lock:
            findings = find_invalid_payments(self._connection)
            return findings, count_payments(self._connection)

    def tamper_payments(self, count: int, rng: random.Random) -> list[int]:
        """Change the amounts of ``count`` payments rows without their checksums.

        Every third changed amount becomes negative. Returns the changed ids.
        """
        with self._lock, write_transaction(self._connection):
            rows = self._connection.execute(
                "SELECT id, amount_cents FROM payments ORDER BY id"
            ).fetchall()
            sample = rng.sample(rows, min(count, len(rows)))
            chosen = sorted(sample, key=lambda row: int(row[0]))
            for number, (payment_id, amount) in enumerate(chosen):
                changed = -amount if number % 3 == 0 else amount + rng.choice((1, 100))
                self._connection.execute(
                    "UPDATE payments SET amount_cents = ? WHERE id = ?",
                    (changed, payment_id),
                )
        return [int(row[0]) for row in chosen]

    def save_security_event(self, event: SecurityEvent) -> None:
        """Store a high-severity event for audits from outside the process."""
        record = event.to_json()
        self._execute(
            "INSERT INTO security_events (time, type, ip, severity, detail)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                record["time"],
                record["type"],
                record["ip"],
                record["severity"],
                record["detail"],
            ),
        )

    def save_blocked_address(self, entry: BlockedAddress) -> None:
        """Store a blocked address.

        A manual block replaces a stored automatic block of the login limiter. Any
        other address stored already is kept as it is.
        """
        record = entry.to_json()
        automatic = f"{AUTOMATIC_BLOCK_PREFIX}%"
        self._execute(
            "INSERT INTO blocked_ips (ip, reason, blocked_at) VALUES (?, ?, ?)"
            " ON CONFLICT (ip) DO UPDATE SET reason = excluded.reason,"
            " blocked_at = excluded.blocked_at"
            " WHERE blocked_ips.reason LIKE ? AND excluded.reason NOT LIKE ?",
            (record["ip"], record["reason"], record["blockedAt"], automatic, automatic),
        )

    def authenticate(self, email: str, password: str, client_ip: str) -> Account | None:
        """Return the account if ``password`` matches, recording the login address."""
        row = self._fetch_one(
            "SELECT id, password_salt, password_hash FROM accounts WHERE email = ?",
            (email,),
        )
        if row is None:
            return None
        candidate = hash_password(password, bytes(row["password_salt"]))
        if not hmac.compare_digest(candidate, bytes(row["password_hash"])):
            return None
        self._execute(
            "UPDATE accounts SET last_login_ip = ? WHERE id = ?", (client_ip, row["id"])
        )
        return self.get_account(int(row["id"]))

    def get_account(self, account_id: int) -> Account | None:
        """Return the account with ``account_id``, or None."""
        row = self._fetch_one(
            "SELECT id, email, display_name, instagram_handle, plan, followers,"
            " last_login_ip, created_at FROM accounts WHERE id = ?",
            (account_id,),
        )
        return Account(**dict(row)) if row else None

    def list_posts(
        self, account_id: int, status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Return the account's posts, newest first, optionally of one status."""
        query = "SELECT * FROM posts WHERE account_id = ?"
        parameters: tuple[Any, ...] = (account_id,)
        if status is not None:
            query += " AND status = ?"
            parameters += (status,)
        query += " ORDER BY scheduled_at DESC LIMIT ?"
        rows = self._fetch_all(query, (*parameters, limit))
        return [_post_json(row) for row in rows]

    def schedule_post(
        self, account_id: int, caption: str, media_url: str | None, when: datetime
    ) -> dict[str, Any]:
        """Insert a scheduled post and return it."""
        post_id = self._execute(
            "INSERT INTO posts (account_id, caption, media_url, status, scheduled_at)"
            " VALUES (?, ?, ?, 'scheduled', ?)",
            (account_id, caption, media_url, iso(when)),
        )
        return self.get_post(account_id, post_id) or {}

    def get_post(self, account_id: int, post_id: int) -> dict[str, Any] | None:
        """Return one of the account's posts, or None."""
        row = self._fetch_one(
            "SELECT * FROM posts WHERE account_id = ? AND id = ?", (account_id, post_id)
        )
        return _post_json(row) if row else None

    def publish_post(self, account_id: int, post_id: int, media_id: str) -> None:
        """Mark a post published now with its Instagram media id."""
        self._execute(
            "UPDATE posts SET status = 'published', published_at = ?,"
            " instagram_media_id = ? WHERE account_id = ? AND id = ?",
            (iso(datetime.now(UTC)), media_id, account_id, post_id),
        )

    def count_posts(self, account_id: int) -> dict[str, int]:
        """Count the account's posts per status."""
        rows = self._fetch_all(
            "SELECT status, COUNT(*) AS n FROM posts WHERE account_id = ?"
            " GROUP BY status",
            (account_id,),
        )
        return {str(row["status"]): int(row["n"]) for row in rows}

    def _fetch_one(self, query: str, parameters: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            return self._connection.execute(query, parameters).fetchone()

    def _fetch_all(self, query: str, parameters: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._connection.execute(query, parameters).fetchall()

    def _execute(self, query: str, parameters: tuple[Any, ...]) -> int:
        with self._lock, self._connection:
            cursor = self._connection.execute(query, parameters)
            return int(cursor.lastrowid or 0)


def _post_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "caption": row["caption"],
        "mediaUrl": row["media_url"],
        "status": row["status"],
        "scheduledAt": row["scheduled_at"],
        "publishedAt": row["published_at"],
        "instagramMediaId": row["instagram_media_id"],
    }
