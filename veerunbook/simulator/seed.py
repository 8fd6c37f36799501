"""Schema and sample data of the simulated VeeFore database.

Every address is from the documentation ranges (RFC 5737) and every e-mail address
is under example.com (RFC 2606), so the data can never point at a real host or user.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from datetime import UTC, datetime, timedelta

DEMO_EMAIL = "ana.silva@example.com"
DEMO_PASSWORD = "veefore-demo"
"""Password of every sample account: sample data, not a secret."""

# Low on purpose: only sample passwords are hashed, and logins should stay cheap.
PBKDF2_ITERATIONS = 2_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS migrations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    instagram_handle TEXT NOT NULL,
    plan TEXT NOT NULL,
    followers INTEGER NOT NULL,
    password_salt BLOB NOT NULL,
    password_hash BLOB NOT NULL,
    last_login_ip TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS posts (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    caption TEXT NOT NULL,
    media_url TEXT,
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'published', 'failed')),
    scheduled_at TEXT NOT NULL,
    published_at TEXT,
    instagram_media_id TEXT
);
CREATE INDEX IF NOT EXISTS posts_account_status ON posts (account_id, status);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'refunded', 'failed')),
    provider_ref TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deploys (
    id INTEGER PRIMARY KEY,
    version TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('succeeded', 'failed', 'rolled_back'))
);
"""

MIGRATIONS = (
    "0001_create_accounts",
    "0002_create_posts",
    "0003_create_payments",
    "0004_add_posts_account_status_index",
    "0005_create_deploys",
    "0006_add_accounts_plan",
    "0007_add_payments_provider_ref",
)

ACCOUNTS = (
    (DEMO_EMAIL, "Ana Silva", "ana.bakes", "pro", "203.0.113.24"),
    ("kofi.mensah@example.com", "Kofi Mensah", "kofi.runs", "starter", "198.51.100.7"),
    ("li.wei@example.com", "Li Wei", "liwei.studio", "business", "203.0.113.81"),
    (
        "maria.garcia@example.com",
        "Maria Garcia",
        "maria.travels",
        "pro",
        "198.51.100.52",
    ),
    ("sam.taylor@example.com", "Sam Taylor", "samtaylor.fit", "free", "203.0.113.140"),
)

# (version, days before now, status); the newest succeeded deploy is the running one.
DEPLOYS = (
    ("1.3.0", 21.0, "succeeded"),
    ("1.3.1", 14.2, "succeeded"),
    ("1.4.0", 6.5, "rolled_back"),
    ("1.4.1", 5.9, "succeeded"),
    ("1.4.2", 1.3, "succeeded"),
)

CAPTIONS = (
    "New sourdough recipe is live!",
    "Behind the scenes of today's shoot",
    "Five tips for better morning light",
    "Weekend giveaway: comment to enter",
    "Our spring collection drops Friday",
    "Thank you for 10k followers!",
)


def iso(moment: datetime) -> str:
    """Format ``moment`` as Express's ``Date.toJSON()`` does: UTC, milliseconds, Z."""
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def hash_password(password: str, salt: bytes) -> bytes:
    """Derive the stored PBKDF2-SHA256 hash of ``password``."""
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ITERATIONS)


def seed_database(connection: sqlite3.Connection, rng: random.Random) -> None:
    """Fill empty tables with sample accounts, posts, payments, migrations, deploys."""
    now = datetime.now(UTC)
    with connection:
        for number, name in enumerate(MIGRATIONS):
            applied = now - timedelta(days=60 - 8 * number)
            connection.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                (name, iso(applied)),
            )
        for email, display_name, handle, plan, address in ACCOUNTS:
            _insert_account(connection, rng, now, (email, display_name, handle, plan))
            connection.execute(
                "UPDATE accounts SET last_login_ip = ? WHERE email = ?",
                (address, email),
            )
        for account_id in range(1, len(ACCOUNTS) + 1):
            _insert_posts(connection, rng, now, account_id)
            _insert_payments(connection, rng, now, account_id)
        for version, days_ago, status in DEPLOYS:
            connection.execute(
                "INSERT INTO deploys (version, commit_sha, deployed_at, status) "
                "VALUES (?, ?, ?, ?)",
                (
                    version,
                    f"{rng.getrandbits(28):07x}",
                    iso(now - timedelta(days=days_ago)),
                    status,
                ),
            )


def _insert_account(
    connection: sqlite3.Connection,
    rng: random.Random,
    now: datetime,
    profile: tuple[str, str, str, str],
) -> None:
    email, display_name, handle, plan = profile
    salt = rng.randbytes(16)
    created = now - timedelta(days=rng.randint(90, 700))
    connection.execute(
        "INSERT INTO accounts (email, display_name, instagram_handle, plan, followers,"
        " password_salt, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            email,
            display_name,
            handle,
            plan,
            rng.randint(800, 48_000),
            salt,
            hash_password(DEMO_PASSWORD, salt),
            iso(created),
        ),
    )


def _insert_posts(
    connection: sqlite3.Connection, rng: random.Random, now: datetime, account_id: int
) -> None:
    # Five published posts from the last 20 days, three scheduled for the next week.
    for number in range(8):
        published = number < 5
        if published:
            moment = now - timedelta(hours=rng.uniform(2, 24 * 20))
            published_at: str | None = iso(moment)
            media_id: str | None = str(17_900_000_000_000_000 + rng.getrandbits(40))
        else:
            moment = now + timedelta(hours=rng.uniform(1, 24 * 7))
            published_at = media_id = None
        connection.execute(
            "INSERT INTO posts (account_id, caption, media_url, status, scheduled_at,"
            " published_at, instagram_media_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                account_id,
                rng.choice(CAPTIONS),
                f"https://cdn.example.com/media/{account_id}/{number}.jpg",
                "published" if published else "scheduled",
                iso(moment),
                published_at,
                media_id,
            ),
        )


def _insert_payments(
    connection: sqlite3.Connection, rng: random.Random, now: datetime, account_id: int
) -> None:
    for month in range(3):
        status = "succeeded" if rng.random() > 0.1 else "failed"
        created = now - timedelta(days=30 * month + rng.uniform(0, 3))
        connection.execute(
            "INSERT INTO payments (account_id, amount_cents, currency, status,"
            " provider_ref, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                account_id,
                rng.choice((900, 2900, 7900)),
                "usd",
                status,
                f"pi_{rng.getrandbits(64):016x}",
                iso(created),
            ),
        )
